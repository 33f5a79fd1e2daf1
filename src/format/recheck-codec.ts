/**
 * The resolution table's recheck section (FORMAT.md 3.4): what a loader checks when a guard's
 * time no longer matches, so that content, not time, decides. A copy that resets every mtime
 * (`cp -r`, an artifact upload, a multi-stage image build) or a symlink re-created in
 * node_modules changes the times the guards recorded, not what Node would answer:
 *
 * - a directory guard (inside node_modules a folder's mtime stands for its listing) lists the
 *   names it stood for — each name probed in that folder, with each suffix Node tried (`''`,
 *   `.js`, `.json`, `.node`) — and what each was: absent, a file or a directory; and, for one
 *   that existed, its realpath when that was not the path itself. When all still hold, the guard
 *   holds;
 * - a file guard (a package.json Node read) carries the file's content hash: same size and same
 *   hash, the guard holds.
 *
 * It is a `bin` at the end of the resolution table, in a fixed little-endian layout of its own
 * (no msgpack): a loader decodes it only when a guard's time changed, so it costs nothing when
 * nothing did. Layout (every count and index a u32):
 *
 *   magic "CBRC", version 1
 *   listingCount, nameCount, realCount, contentCount, namesBytes, pathsBytes
 *   listings  3 × listingCount: guard index, first name, name count (names of a listing are consecutive)
 *   reals     2 × realCount: name slot (name index × 4 + suffix), path index of the realpath
 *   contents  contentCount: guard index
 *   masks     nameCount bytes: per name, 2 bits per suffix (bits 2k..2k+1 for SUFFIXES[k]):
 *             0 absent, 1 a file, 2 a directory, 3 not recorded
 *   padding   zero bytes to a multiple of 4
 *   hashes    16 bytes per content guard: entry hash (FORMAT.md 6) of the file's bytes
 *   names     namesBytes of UTF-8: the names, NUL-separated (a name holds no `/` and no NUL)
 *   paths     pathsBytes of UTF-8: paths this section adds, NUL-separated, relative to the root
 *             like the table's own; their indices continue the table's path indices
 *
 * Decoding checks the shape (magic, version, lengths); indices are checked when used, and a
 * guard whose recheck data is out of range stays broken.
 */
import { codeblobError } from '../errors.js';
import { ENTRY_HASH_BYTES } from './hash.js';

/** The suffixes Node tries after a name, in the order of a mask's bit pairs. */
export const SUFFIXES = ['', '.js', '.json', '.node'] as const;

export const FACT_ABSENT = 0;
export const FACT_FILE = 1;
export const FACT_DIR = 2;
export const FACT_UNRECORDED = 3;
export type FactState = typeof FACT_ABSENT | typeof FACT_FILE | typeof FACT_DIR | typeof FACT_UNRECORDED;

const MAGIC = 0x43524243; // "CBRC" little-endian
const VERSION = 1;
const HEAD_WORDS = 8;

/** One name a directory guard stood for. `states[k]` is for `name + SUFFIXES[k]`. */
export interface ListedName {
  name: string;
  states: readonly [FactState, FactState, FactState, FactState];
  /** Per suffix, the path index of its realpath when that is not the path itself. */
  reals?: readonly (number | undefined)[];
}

/** The writer's view. */
export interface Recheck {
  /** Paths this section adds; index `firstPath + i` names `paths[i]`. */
  paths: string[];
  listings: { guard: number; names: ListedName[] }[];
  contents: { guard: number; hash: Uint8Array }[];
}

/** The reader's view: flat arrays, as decoded (copies, not views of the bytes). */
export interface DecodedRecheck {
  paths: string[];
  /** 3 per listing: guard, first name, name count. */
  listings: Uint32Array;
  names: string[];
  masks: Uint8Array;
  /** 2 per real: name slot (name × 4 + suffix), path index. */
  reals: Uint32Array;
  contentGuards: Uint32Array;
  /** 16 bytes per content guard. */
  contentHashes: Uint8Array;
}

const pad4 = (n: number) => (n + 3) & ~3;

export function encodeRecheck(r: Recheck): Buffer {
  const names: string[] = [];
  const masks: number[] = [];
  const listings: number[] = [];
  const reals: number[] = [];
  for (const l of r.listings) {
    listings.push(l.guard, names.length, l.names.length);
    for (const n of l.names) {
      if (n.name.includes('\0') || n.name.includes('/')) throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', `a listed name holds NUL or /: ${JSON.stringify(n.name)}`);
      n.reals?.forEach((p, k) => p !== undefined && reals.push(names.length * 4 + k, p));
      masks.push(n.states[0] | (n.states[1] << 2) | (n.states[2] << 4) | (n.states[3] << 6));
      names.push(n.name);
    }
  }
  for (const p of r.paths) if (p.includes('\0')) throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', `a path holds NUL: ${JSON.stringify(p)}`);
  const nameBytes = Buffer.from(names.join('\0'), 'utf8');
  const pathBytes = Buffer.from(r.paths.join('\0'), 'utf8');
  const words = HEAD_WORDS + listings.length + reals.length + r.contents.length;
  const hashesAt = pad4(words * 4 + masks.length);
  const out = Buffer.alloc(hashesAt + r.contents.length * ENTRY_HASH_BYTES + nameBytes.length + pathBytes.length);
  let at = 0;
  const u32 = (v: number) => {
    out.writeUInt32LE(v, at);
    at += 4;
  };
  [MAGIC, VERSION, r.listings.length, names.length, reals.length / 2, r.contents.length, nameBytes.length, pathBytes.length].forEach(u32);
  listings.forEach(u32);
  reals.forEach(u32);
  r.contents.forEach((c) => u32(c.guard));
  Buffer.from(masks).copy(out, at);
  at = hashesAt;
  for (const c of r.contents) {
    if (c.hash.byteLength !== ENTRY_HASH_BYTES) throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', `a content hash is ${c.hash.byteLength} bytes, not ${ENTRY_HASH_BYTES}`);
    out.set(c.hash, at);
    at += ENTRY_HASH_BYTES;
  }
  nameBytes.copy(out, at);
  pathBytes.copy(out, at + nameBytes.length);
  return out;
}

const bad = (detail: string) => codeblobError('ERR_CODEBLOB_BAD_FORMAT', `resolution table recheck section: ${detail}`);

export function decodeRecheck(bytes: Uint8Array): DecodedRecheck {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < HEAD_WORDS * 4) throw bad('shorter than its header');
  const head = Array.from({ length: HEAD_WORDS }, (_, i) => b.readUInt32LE(i * 4));
  const [magic, version, listingCount, nameCount, realCount, contentCount, namesBytes, pathsBytes] = head as [number, number, number, number, number, number, number, number];
  if (magic !== MAGIC) throw bad('bad magic');
  if (version !== VERSION) throw bad(`version ${version} is not ${VERSION}`);
  // Lengths are checked as sums of safe integers (each is below 2^32, so the sums are exact).
  const words = HEAD_WORDS + 3 * listingCount + 2 * realCount + contentCount;
  const hashesAt = pad4(words * 4 + nameCount);
  const end = hashesAt + contentCount * ENTRY_HASH_BYTES + namesBytes + pathsBytes;
  if (end !== b.length) throw bad(`${b.length} bytes where its counts need ${end}`);
  const words32 = (from: number, count: number) => {
    const out = new Uint32Array(count);
    for (let i = 0; i < count; i++) out[i] = b.readUInt32LE(from + i * 4);
    return out;
  };
  let at = HEAD_WORDS * 4;
  const listings = words32(at, 3 * listingCount);
  at += listings.byteLength;
  const reals = words32(at, 2 * realCount);
  at += reals.byteLength;
  const contentGuards = words32(at, contentCount);
  at += contentGuards.byteLength;
  const masks = new Uint8Array(b.subarray(at, at + nameCount));
  at = hashesAt;
  const contentHashes = new Uint8Array(b.subarray(at, at + contentCount * ENTRY_HASH_BYTES));
  at += contentHashes.byteLength;
  const namesText = b.toString('utf8', at, at + namesBytes);
  const pathsText = b.toString('utf8', at + namesBytes, end);
  const names = nameCount === 0 ? [] : namesText.split('\0');
  if (names.length !== nameCount) throw bad(`${names.length} names where ${nameCount} are counted`);
  return { paths: pathsBytes === 0 ? [] : pathsText.split('\0'), listings, names, masks, reals, contentGuards, contentHashes };
}
