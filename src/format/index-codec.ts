/**
 * The index: a msgpack array `[INDEX_TAG, root, entries]`, `[INDEX_TAG, root, entries,
 * resolutions]` or `[INDEX_TAG, root, entries, resolutions | nil, tracedRoot]`, each entry a
 * fixed-order tuple, the resolution table an opaque `bin`.
 * Tuples (not maps) keep the index small and fast to decode, and leave no object keys for a
 * hostile file to play with (`__proto__`); maps decode as `Map` and are rejected.
 */
import { decode, encoder } from './msgpack.js';
import { codeblobError } from '../errors.js';
import { ENTRY_HASH_BYTES } from './hash.js';

export const INDEX_TAG = 'codeblob-index/1';

export type EntryKind = 'cjs' | 'esm' | 'json' | 'asset';
/** How the section's bytes encode text: one byte per char, UTF-16LE, or raw bytes (assets). */
export type SourceEncoding = 'latin1' | 'utf16le' | 'binary';

const KINDS: readonly EntryKind[] = ['cjs', 'esm', 'json', 'asset'];
const ENCODINGS: readonly SourceEncoding[] = ['latin1', 'utf16le', 'binary'];

/** The text prepended/appended to a CommonJS source in its stored section (see FORMAT.md). */
export const CJS_PREFIX = '(function (exports, require, module, __filename, __dirname) { ';
export const CJS_SUFFIX = '\n})';

const FLAG_SHEBANG = 1;
/**
 * The source is the file's TypeScript with its types stripped by the packing Node (Node's own
 * stripper, with the `//# sourceURL=` tail Node's loader adds): the text Node would compile.
 * The file on disk (size, mtime, content hash) is still what freshness checks.
 */
const FLAG_TYPESCRIPT = 2;
/** An ES module the traced run loaded only through require(esm), never through `import`. */
const FLAG_REQUIRED_ONLY = 4;
const KNOWN_FLAGS = FLAG_SHEBANG | FLAG_TYPESCRIPT | FLAG_REQUIRED_ONLY;

export interface Entry {
  /** Path of the file relative to the blob's root, with `/` separators. */
  readonly key: string;
  readonly kind: EntryKind;
  readonly encoding: SourceEncoding;
  /** Characters of the original text (bytes for `binary`). */
  readonly chars: number;
  /** Wrapper characters before/after the text inside the source section (CommonJS only). */
  readonly prefixChars: number;
  readonly suffixChars: number;
  /** The file began with `#!`; inside the wrapped section those two chars read `//`. */
  readonly shebang: boolean;
  /** The source is the file's stripped TypeScript, not the file itself (`.ts`, `.mts`, `.cts`). */
  readonly typescript: boolean;
  /**
   * An ES module the traced run loaded only through require(esm), never through `import`
   * (the ES module loader): a loader serves it without module hooks. Optional for writers.
   */
  readonly requiredOnly?: boolean;
  readonly sourceOffset: number;
  readonly sourceLength: number;
  readonly sourceHash: Buffer;
  /** 0 length: no code cache. */
  readonly cacheOffset: number;
  readonly cacheLength: number;
  readonly cacheHash: Buffer | null;
  /** The original file when packed, for staleness checks. */
  readonly fileSize: number;
  readonly mtimeMs: number;
  readonly contentHash: Buffer;
  /** Position in the traced run's first-load order; -1 for files added without running. */
  readonly order: number;
}

export interface Index {
  /** The packed app's root directory, relative to the directory holding the blob. */
  readonly root: string;
  readonly entries: readonly Entry[];
  /** The encoded resolution table (resolution-codec.ts), when the packer recorded one. */
  readonly resolutions?: Uint8Array;
  /**
   * The root's absolute path when the app was traced, recorded only for blobs whose code
   * caches carry it: V8 before 12 (Node 20) keeps the file name a cache was made with, and
   * stack traces of a script compiled from it name that file wherever the app now lives.
   */
  readonly tracedRoot?: string;
}

type Tuple = [
  string, number, number, number, number, number, number,
  number, number, Uint8Array, number, number, Uint8Array | null,
  number, number, Uint8Array, number,
];

const pack = encoder({ useRecords: false, variableMapSize: true });

export function encodeIndex(index: Index): Buffer {
  const tuples: Tuple[] = index.entries.map((e) => [
    e.key, KINDS.indexOf(e.kind), ENCODINGS.indexOf(e.encoding), e.chars, e.prefixChars,
    e.suffixChars, (e.shebang ? FLAG_SHEBANG : 0) | (e.typescript ? FLAG_TYPESCRIPT : 0) | (e.requiredOnly ? FLAG_REQUIRED_ONLY : 0), e.sourceOffset, e.sourceLength, e.sourceHash,
    e.cacheOffset, e.cacheLength, e.cacheHash, e.fileSize, e.mtimeMs, e.contentHash, e.order,
  ]);
  if (index.tracedRoot !== undefined) return pack([INDEX_TAG, index.root, tuples, index.resolutions ?? null, index.tracedRoot]);
  return pack(index.resolutions ? [INDEX_TAG, index.root, tuples, index.resolutions] : [INDEX_TAG, index.root, tuples]);
}

const bad = (detail: string) => codeblobError('ERR_CODEBLOB_BAD_FORMAT', detail);

function uint(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(`${what} is not a non-negative integer`);
  return v;
}

function hash(v: unknown, what: string): Buffer {
  if (!(v instanceof Uint8Array) || v.byteLength !== ENTRY_HASH_BYTES) throw bad(`${what} is not a ${ENTRY_HASH_BYTES}-byte hash`);
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength); // a view: the caller copies it
}

/** Keys are relative, normalised POSIX paths: no `..`, no empty or `.` segments, no NUL. */
export function isValidKey(key: string): boolean {
  if (key.length === 0 || key.length > 4096 || key.includes('\0') || key.includes('\\')) return false;
  return key.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

/** Bytes of one entry's hashes in an index's shared hash buffer: source, cache, content. */
const HASH_SLOT = 3 * ENTRY_HASH_BYTES;

/**
 * An entry as decoded. Its three hashes live in one buffer shared by every entry of the index
 * and are handed out as views when asked for (the loader asks for one the first time it checks
 * a section or a changed file): three Buffer objects per entry, kept for the life of every
 * worker, were about 280 bytes an entry (2.8 MiB at 10,000 modules).
 */
class DecodedEntry implements Entry {
  readonly key: string;
  readonly kind: EntryKind;
  readonly encoding: SourceEncoding;
  readonly chars: number;
  readonly prefixChars: number;
  readonly suffixChars: number;
  readonly shebang: boolean;
  readonly typescript: boolean;
  readonly requiredOnly: boolean;
  readonly sourceOffset: number;
  readonly sourceLength: number;
  readonly cacheOffset: number;
  readonly cacheLength: number;
  readonly fileSize: number;
  readonly mtimeMs: number;
  readonly order: number;
  readonly #hashes: Buffer;
  /** Where this entry's hashes start in #hashes; negative (-1 - start) when it has no cache hash. */
  readonly #at: number;

  constructor(fields: Omit<Entry, 'sourceHash' | 'cacheHash' | 'contentHash'>, hashes: Buffer, at: number, hasCacheHash: boolean) {
    this.key = fields.key;
    this.kind = fields.kind;
    this.encoding = fields.encoding;
    this.chars = fields.chars;
    this.prefixChars = fields.prefixChars;
    this.suffixChars = fields.suffixChars;
    this.shebang = fields.shebang;
    this.typescript = fields.typescript;
    this.requiredOnly = fields.requiredOnly === true;
    this.sourceOffset = fields.sourceOffset;
    this.sourceLength = fields.sourceLength;
    this.cacheOffset = fields.cacheOffset;
    this.cacheLength = fields.cacheLength;
    this.fileSize = fields.fileSize;
    this.mtimeMs = fields.mtimeMs;
    this.order = fields.order;
    this.#hashes = hashes;
    this.#at = hasCacheHash ? at : -1 - at;
  }

  get sourceHash(): Buffer {
    const at = this.#at < 0 ? -1 - this.#at : this.#at;
    return this.#hashes.subarray(at, at + ENTRY_HASH_BYTES);
  }

  get cacheHash(): Buffer | null {
    if (this.#at < 0) return null;
    return this.#hashes.subarray(this.#at + ENTRY_HASH_BYTES, this.#at + 2 * ENTRY_HASH_BYTES);
  }

  get contentHash(): Buffer {
    const at = this.#at < 0 ? -1 - this.#at : this.#at;
    return this.#hashes.subarray(at + 2 * ENTRY_HASH_BYTES, at + 3 * ENTRY_HASH_BYTES);
  }

  /** The hashes as own properties too, for JSON (a getter on the prototype is not serialised). */
  toJSON(): Entry {
    return plainEntry(this);
  }
}

/** An entry with every field as an own property (to spread, compare or re-encode it). */
export function plainEntry(e: Entry): Entry {
  // Every other field is an own property already (DecodedEntry's are public fields).
  return { ...e, sourceHash: e.sourceHash, cacheHash: e.cacheHash, contentHash: e.contentHash };
}

function decodeEntry(t: unknown, i: number, hashes: Buffer): Entry {
  if (!Array.isArray(t) || t.length !== 17) throw bad(`index entry ${i} is not a 17-field tuple`);
  const [key, kind, enc, chars, pre, suf, flags, so, sl, sh, co, cl, ch, size, mtime, content, order] = t;
  if (typeof key !== 'string' || !isValidKey(key)) throw bad(`index entry ${i} has an invalid key`);
  const where = `entry "${key}"`;
  const kindName = KINDS[uint(kind, `${where} kind`)];
  const encName = ENCODINGS[uint(enc, `${where} encoding`)];
  if (kindName === undefined) throw bad(`${where} has an unknown kind`);
  if (encName === undefined) throw bad(`${where} has an unknown encoding`);
  if ((kindName === 'asset') !== (encName === 'binary')) throw bad(`${where}: kind ${kindName} cannot use encoding ${encName}`);
  const f = uint(flags, `${where} flags`);
  if ((f & ~KNOWN_FLAGS) !== 0) throw bad(`${where} has unknown flags`);
  if (typeof mtime !== 'number' || !Number.isFinite(mtime) || mtime < 0) throw bad(`${where} mtime is invalid`);
  if (typeof order !== 'number' || !Number.isSafeInteger(order) || order < -1) throw bad(`${where} order is invalid`);
  const cacheLength = uint(cl, `${where} cache length`);
  const e = {
    key,
    kind: kindName,
    encoding: encName,
    chars: uint(chars, `${where} chars`),
    prefixChars: uint(pre, `${where} prefix`),
    suffixChars: uint(suf, `${where} suffix`),
    shebang: (f & FLAG_SHEBANG) !== 0,
    typescript: (f & FLAG_TYPESCRIPT) !== 0,
    requiredOnly: (f & FLAG_REQUIRED_ONLY) !== 0,
    sourceOffset: uint(so, `${where} source offset`),
    sourceLength: uint(sl, `${where} source length`),
    cacheOffset: uint(co, `${where} cache offset`),
    cacheLength,
    fileSize: uint(size, `${where} file size`),
    mtimeMs: mtime,
    order,
  };
  // Checked, in tuple order, as before: the source hash, then the cache hash, then the content hash.
  const at = i * HASH_SLOT;
  hash(sh, `${where} source hash`).copy(hashes, at);
  const cacheHash = cacheLength === 0 ? (ch === null ? null : hash(ch, `${where} cache hash`)) : hash(ch, `${where} cache hash`);
  if (cacheHash) cacheHash.copy(hashes, at + ENTRY_HASH_BYTES);
  hash(content, `${where} content hash`).copy(hashes, at + 2 * ENTRY_HASH_BYTES);
  const unitChars = e.prefixChars + e.chars + e.suffixChars;
  const bytesPerChar = e.encoding === 'utf16le' ? 2 : 1;
  if (e.sourceLength !== unitChars * bytesPerChar) throw bad(`${where} source length does not match its character count`);
  if (e.kind !== 'cjs' && (e.prefixChars !== 0 || e.suffixChars !== 0 || e.shebang)) throw bad(`${where}: only CommonJS entries are wrapped`);
  if (e.shebang && e.chars < 2) throw bad(`${where} is flagged as starting with #! but has ${e.chars} chars`);
  if (e.requiredOnly && e.kind !== 'esm') throw bad(`${where}: only ES module entries are flagged as loaded by require() only`);
  if (e.kind === 'cjs' && (e.prefixChars !== CJS_PREFIX.length || e.suffixChars !== CJS_SUFFIX.length)) {
    throw bad(`${where} has an unexpected CommonJS wrapper`);
  }
  if (e.typescript && e.kind !== 'cjs' && e.kind !== 'esm') throw bad(`${where}: only CommonJS and ES module entries can be stripped TypeScript`);
  if (e.cacheLength > 0 && e.kind !== 'cjs') throw bad(`${where}: only CommonJS entries carry a code cache`);
  return new DecodedEntry(e, hashes, at, cacheHash !== null);
}

/** Decodes an index whose hash has already been checked. Structural rules only. */
export function decodeIndex(bytes: Uint8Array, expectedEntries: number): Index {
  let raw: unknown;
  try {
    raw = decode(bytes);
  } catch (cause) {
    throw codeblobError('ERR_CODEBLOB_BAD_FORMAT', `index is not valid msgpack (${(cause as Error).message})`, cause);
  }
  if (!Array.isArray(raw) || raw.length < 3 || raw.length > 5 || raw[0] !== INDEX_TAG) throw bad('index does not start with the codeblob index tag');
  const [, root, tuples, resolutions, tracedRoot] = raw as [unknown, unknown, unknown, unknown, unknown];
  if (raw.length >= 4 && !(resolutions instanceof Uint8Array) && !(raw.length === 5 && resolutions === null)) throw bad('index resolution table is not binary');
  if (raw.length === 5 && (typeof tracedRoot !== 'string' || !tracedRoot.startsWith('/') || tracedRoot.includes('\0'))) throw bad('index traced root is not an absolute path');
  if (typeof root !== 'string' || root.includes('\0')) throw bad('index root is not a string');
  if (!Array.isArray(tuples)) throw bad('index entries are not an array');
  if (tuples.length !== expectedEntries) throw bad(`index has ${tuples.length} entries, header says ${expectedEntries}`);
  // One buffer for every entry's hashes, outside Node's pool (it lives as long as the index).
  const hashes = Buffer.allocUnsafeSlow(tuples.length * HASH_SLOT);
  const entries = tuples.map((t, i) => decodeEntry(t, i, hashes));
  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.key)) throw bad(`duplicate key "${e.key}"`);
    seen.add(e.key);
  }
  return {
    root,
    entries,
    ...(resolutions instanceof Uint8Array && { resolutions }),
    ...(typeof tracedRoot === 'string' && { tracedRoot }),
  };
}
