/**
 * The on-disk format: header, index, sections. Pure functions over bytes; FORMAT.md is the
 * prose version of this directory.
 */
import { createRequire } from 'node:module';
import { codeblobError } from '../errors.js';
import { decodeHeader, type Header } from './header.js';
import { sha256 } from './hash.js';
import { decodeIndex, type DecodedIndex } from './index-codec.js';
import { checkSections } from './layout.js';

export { HEADER_SIZE, FORMAT_VERSION, MAGIC, encodeHeader, decodeHeader, type Header } from './header.js';
export { CJS_PREFIX, CJS_SUFFIX, INDEX_TAG, EntryTable, encodeIndex, decodeIndex, isValidKey, plainEntry } from './index-codec.js';
export type { DecodedIndex, Entry, EntryKind, Index, SourceEncoding } from './index-codec.js';
export { layoutBlob, checkSections, fitsLatin1, alignUp } from './layout.js';
export type { BlobPlan, BlobLayoutStats, SectionInput } from './layout.js';
export { sha256, entryHash, provideSha256, ENTRY_HASH_BYTES } from './hash.js';
export {
  RESOLUTION_TAG, RESOLUTION_TAG_V2, ROOT_REQUEST, GUARD_ABSENT, GUARD_DIR, GUARD_FILE, GUARD_REAL, GUARD_IS_FILE, GUARD_IS_DIR, encodeResolutions, decodeResolutions,
  recheckOf, type Answer, type DecodedResolutions, type Guard, type GuardKind, type ResolutionTable,
} from './resolution-codec.js';
export {
  SUFFIXES, FACT_ABSENT, FACT_FILE, FACT_DIR, FACT_UNRECORDED, encodeRecheck, decodeRecheck,
  type DecodedRecheck, type FactState, type ListedName, type Recheck,
} from './recheck-codec.js';

export interface Compatibility {
  /** False when the caches were made by another V8 (tag), arch or platform: sources still serve. */
  cachesUsable: boolean;
  /** Why not, in words; undefined when usable. */
  reason?: string;
}

/** Can this process use the blob's code caches? (Sources are usable everywhere.) */
/**
 * V8 before 12 (Node 20) keeps, in a code cache, the name of the file it was made from: a script
 * compiled from the cache names that file in its stack traces, wherever the module now lives.
 */
export function cachesNameTheirFile(v8Version: string = process.versions.v8): boolean {
  return Number(v8Version.split('.')[0]) < 12;
}

/**
 * Whether this process can use the header's caches. `tag`: this process's
 * `v8.cachedDataVersionTag()`, if the caller has it (node:v8 is loaded otherwise).
 */
export function compatibility(header: Header, tag?: number): Compatibility {
  const problems: string[] = [];
  if (header.platform !== process.platform) problems.push(`platform ${header.platform} ≠ ${process.platform}`);
  if (header.arch !== process.arch) problems.push(`arch ${header.arch} ≠ ${process.arch}`);
  tag ??= (createRequire(import.meta.url)('node:v8') as typeof import('node:v8')).cachedDataVersionTag();
  if (header.v8Tag !== tag) {
    problems.push(
      `V8 cache tag ${header.v8Tag} ≠ ${tag} (packed with Node ${header.nodeVersion}, running ${process.version}; ` +
        'a different Node version or different V8 flags)',
    );
  }
  return problems.length === 0 ? { cachesUsable: true } : { cachesUsable: false, reason: problems.join('; ') };
}

/**
 * Reads and validates the header and index of a whole blob: magic, version, checksum, sizes
 * against the real length, index hash, every entry's fields, every section's bounds, alignment
 * and overlaps. Throws a typed error (ERR_CODEBLOB_BAD_FORMAT, ...) on the first problem.
 */
export function readMeta(bytes: Uint8Array): { header: Header; index: DecodedIndex; resolutionsAt?: { offset: number; length: number } } {
  const header = decodeHeader(bytes, bytes.byteLength);
  const indexBytes = readIndex(bytes, header);
  const index = decodeIndex(indexBytes, header.entryCount);
  checkSections(header, index.table);
  // Where the resolution table sits in the file: a reader can keep that instead of the table (a
  // view into this copy, which would keep the whole index alive) and read it again with readIndex.
  const r = index.resolutions;
  const resolutionsAt =
    r && r.buffer === indexBytes.buffer
      ? { offset: header.indexOffset + (r.byteOffset - indexBytes.byteOffset), length: r.byteLength }
      : undefined;
  return resolutionsAt ? { header, index, resolutionsAt } : { header, index };
}

/**
 * A private copy of the index, hash-checked against the header: hash and decode the same copy,
 * so the file cannot change between the two.
 */
export function readIndex(bytes: Uint8Array, header: Header): Buffer {
  const indexBytes = Buffer.from(bytes.subarray(header.indexOffset, header.indexOffset + header.indexLength));
  if (!sha256(indexBytes).equals(header.indexHash)) {
    throw codeblobError('ERR_CODEBLOB_BAD_FORMAT', 'index hash mismatch');
  }
  return indexBytes;
}
