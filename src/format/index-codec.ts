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
  return Buffer.from(v);
}

/** Keys are relative, normalised POSIX paths: no `..`, no empty or `.` segments, no NUL. */
export function isValidKey(key: string): boolean {
  if (key.length === 0 || key.length > 4096 || key.includes('\0') || key.includes('\\')) return false;
  return key.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

function decodeEntry(t: unknown, i: number): Entry {
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
  const e: Entry = {
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
    sourceHash: hash(sh, `${where} source hash`),
    cacheOffset: uint(co, `${where} cache offset`),
    cacheLength,
    cacheHash: cacheLength === 0 ? (ch === null ? null : hash(ch, `${where} cache hash`)) : hash(ch, `${where} cache hash`),
    fileSize: uint(size, `${where} file size`),
    mtimeMs: mtime,
    contentHash: hash(content, `${where} content hash`),
    order,
  };
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
  return e;
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
  const entries = tuples.map(decodeEntry);
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
