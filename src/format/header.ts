/**
 * The fixed 256-byte header at offset 0. Little-endian; layout documented in FORMAT.md.
 * Pure: buffers in, buffers out.
 */
import { codeblobError } from '../errors.js';
import { sha256 } from './hash.js';

export const MAGIC = 'CODEBLOB';
export const FORMAT_VERSION = 2;
export const HEADER_SIZE = 256;
const HEADER_HASHED = 224;

/** Flags stored in the header. */
export const FLAG_CACHES = 1;

export interface Header {
  formatVersion: number;
  /** Page size the layout was planned for (4096, 16384 or 65536). */
  pageSize: number;
  /** Every data section starts on a multiple of this (the page size, or 8 when packed dense). */
  alignment: number;
  flags: number;
  /** `v8.cachedDataVersionTag()` of the process that produced the caches. */
  v8Tag: number;
  entryCount: number;
  fileSize: number;
  indexOffset: number;
  indexLength: number;
  indexHash: Buffer;
  nodeVersion: string;
  arch: string;
  platform: string;
  toolVersion: string;
}

const TEXT_FIELDS = [
  ['nodeVersion', 96],
  ['arch', 112],
  ['platform', 128],
  ['toolVersion', 144],
] as const;
const TEXT_WIDTH = 16;

export function encodeHeader(h: Header): Buffer {
  const b = Buffer.alloc(HEADER_SIZE);
  b.write(MAGIC, 0, 'latin1');
  b.writeUInt32LE(h.formatVersion, 8);
  b.writeUInt32LE(HEADER_SIZE, 12);
  b.writeUInt32LE(h.pageSize, 16);
  b.writeUInt32LE(h.alignment, 20);
  b.writeUInt32LE(h.flags, 24);
  b.writeUInt32LE(h.v8Tag >>> 0, 28);
  b.writeUInt32LE(h.entryCount, 32);
  b.writeBigUInt64LE(BigInt(h.fileSize), 40);
  b.writeBigUInt64LE(BigInt(h.indexOffset), 48);
  b.writeBigUInt64LE(BigInt(h.indexLength), 56);
  if (h.indexHash.length !== 32) throw new RangeError('indexHash must be 32 bytes');
  h.indexHash.copy(b, 64);
  for (const [name, at] of TEXT_FIELDS) {
    const text = h[name];
    if (!/^[\x20-\x7e]*$/.test(text) || text.length > TEXT_WIDTH) {
      throw new RangeError(`header field ${name} must be printable ASCII of at most ${TEXT_WIDTH} chars`);
    }
    b.write(text, at, 'latin1');
  }
  sha256(b.subarray(0, HEADER_HASHED)).copy(b, HEADER_HASHED);
  return b;
}

function u64(b: Uint8Array, at: number, what: string): number {
  const v = Buffer.from(b.buffer, b.byteOffset, b.byteLength).readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw codeblobError('ERR_CODEBLOB_BAD_FORMAT', `${what} is out of range`);
  return Number(v);
}

function readText(b: Buffer, at: number, name: string): string {
  const raw = b.subarray(at, at + TEXT_WIDTH);
  const end = raw.indexOf(0);
  const text = raw.subarray(0, end === -1 ? TEXT_WIDTH : end).toString('latin1');
  if (!/^[\x20-\x7e]*$/.test(text) || (end !== -1 && raw.subarray(end).some((c) => c !== 0))) {
    throw codeblobError('ERR_CODEBLOB_BAD_FORMAT', `header field ${name} is not printable ASCII`);
  }
  return text;
}

const isPowerOfTwo = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;

/**
 * Decodes and checks the header against the real file length. Throws ERR_CODEBLOB_BAD_FORMAT
 * (or ERR_CODEBLOB_UNSUPPORTED_VERSION) with the rule that failed.
 */
export function decodeHeader(bytes: Uint8Array, actualFileSize: number): Header {
  if (bytes.byteLength < HEADER_SIZE) {
    throw codeblobError('ERR_CODEBLOB_BAD_FORMAT', `file is ${bytes.byteLength} bytes, shorter than the ${HEADER_SIZE}-byte header`);
  }
  // Copy: the checks below must all see the same bytes, even if the file changes under us.
  const b = Buffer.from(bytes.subarray(0, HEADER_SIZE));
  if (b.toString('latin1', 0, 8) !== MAGIC) {
    throw codeblobError('ERR_CODEBLOB_BAD_FORMAT', 'bad magic (this is not a codeblob file)');
  }
  if (!sha256(b.subarray(0, HEADER_HASHED)).equals(b.subarray(HEADER_HASHED, HEADER_SIZE))) {
    throw codeblobError('ERR_CODEBLOB_BAD_FORMAT', 'header checksum mismatch');
  }
  const formatVersion = b.readUInt32LE(8);
  if (formatVersion !== FORMAT_VERSION) {
    throw codeblobError('ERR_CODEBLOB_UNSUPPORTED_VERSION', `${formatVersion} (this codeblob reads version ${FORMAT_VERSION}: pack the app again with it)`);
  }
  if (b.readUInt32LE(12) !== HEADER_SIZE) {
    throw codeblobError('ERR_CODEBLOB_BAD_FORMAT', `header size ${b.readUInt32LE(12)} is not ${HEADER_SIZE}`);
  }
  const h: Header = {
    formatVersion,
    pageSize: b.readUInt32LE(16),
    alignment: b.readUInt32LE(20),
    flags: b.readUInt32LE(24),
    v8Tag: b.readUInt32LE(28),
    entryCount: b.readUInt32LE(32),
    fileSize: u64(b, 40, 'fileSize'),
    indexOffset: u64(b, 48, 'indexOffset'),
    indexLength: u64(b, 56, 'indexLength'),
    indexHash: Buffer.from(b.subarray(64, 96)),
    nodeVersion: readText(b, 96, 'nodeVersion'),
    arch: readText(b, 112, 'arch'),
    platform: readText(b, 128, 'platform'),
    toolVersion: readText(b, 144, 'toolVersion'),
  };
  if (!isPowerOfTwo(h.pageSize) || h.pageSize < 4096 || h.pageSize > 65536) {
    throw codeblobError('ERR_CODEBLOB_BAD_FORMAT', `page size ${h.pageSize} is not a power of two in [4096, 65536]`);
  }
  if (!isPowerOfTwo(h.alignment) || h.alignment < 8 || h.alignment > h.pageSize) {
    throw codeblobError('ERR_CODEBLOB_BAD_FORMAT', `alignment ${h.alignment} is not a power of two in [8, page size]`);
  }
  if (b.readUInt32LE(36) !== 0 || b.subarray(160, HEADER_HASHED).some((c) => c !== 0)) {
    throw codeblobError('ERR_CODEBLOB_BAD_FORMAT', 'reserved header bytes are not zero');
  }
  if ((h.flags & ~FLAG_CACHES) !== 0) {
    throw codeblobError('ERR_CODEBLOB_BAD_FORMAT', `unknown header flags 0x${h.flags.toString(16)}`);
  }
  if (h.fileSize !== actualFileSize) {
    throw codeblobError(
      'ERR_CODEBLOB_BAD_FORMAT',
      `header says ${h.fileSize} bytes but the file has ${actualFileSize} (truncated or appended to)`,
    );
  }
  if (h.indexOffset !== HEADER_SIZE || h.indexLength === 0 || h.indexOffset + h.indexLength > h.fileSize) {
    throw codeblobError('ERR_CODEBLOB_BAD_FORMAT', `index range [${h.indexOffset}, +${h.indexLength}) is out of bounds`);
  }
  return h;
}
