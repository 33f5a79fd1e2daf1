/**
 * The index: a msgpack array `[INDEX_TAG, root, count, keys, numbers, small, hashes,
 * resolutions | nil]` or the same with `tracedRoot` after it (FORMAT.md, section 3). The
 * entries are columns: every key in one string, every number in one binary block, every hash
 * in another. Decoding makes a few typed arrays and one string, whatever the entry count, and
 * an entry object only for an entry asked for (a module loaded). An index of 1,462 tuples
 * decoded into 1,462 arrays, objects, key strings and hash views cost a worker thread that
 * loaded nothing from it 7.7 MiB of process memory (its young generation grown, optimised
 * decode loops); the columns cost 0.7 MiB.
 * No maps either: no object keys for a hostile file to play with (`__proto__`).
 */
import { decode, encoder } from './msgpack.js';
import { codeblobError } from '../errors.js';
import { ENTRY_HASH_BYTES } from './hash.js';

export const INDEX_TAG = 'codeblob-index/2';

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

/** Float64 fields per entry in the `numbers` column, in this order. */
const N_CHARS = 0;
const N_SOURCE_OFFSET = 1;
const N_CACHE_OFFSET = 2;
const N_CACHE_LENGTH = 3;
const N_FILE_SIZE = 4;
const N_MTIME = 5;
const NUMBERS = 6;
/** Int32 fields per entry in the `small` column: order, then kind | encoding << 2 | flags << 4. */
const SMALL = 2;
/** Bytes of one entry's hashes in the `hashes` column: source, cache (zeros without one), content. */
const HASH_SLOT = 3 * ENTRY_HASH_BYTES;
const MAX_KEY = 4096;

const pack = encoder({ useRecords: false, variableMapSize: true });
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const prefixOf = (kind: EntryKind) => (kind === 'cjs' ? CJS_PREFIX.length : 0);
const suffixOf = (kind: EntryKind) => (kind === 'cjs' ? CJS_SUFFIX.length : 0);

export function encodeIndex(index: Index): Buffer {
  const entries = [...index.entries].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const n = entries.length;
  const numbers = Buffer.alloc(n * NUMBERS * 8);
  const small = Buffer.alloc(n * SMALL * 4);
  const hashes = Buffer.alloc(n * HASH_SLOT);
  entries.forEach((e, i) => {
    if (e.prefixChars !== prefixOf(e.kind) || e.suffixChars !== suffixOf(e.kind)) throw new Error(`encodeIndex: entry "${e.key}" has a wrapper its kind does not have`);
    if (e.sourceLength !== (e.prefixChars + e.chars + e.suffixChars) * (e.encoding === 'utf16le' ? 2 : 1)) throw new Error(`encodeIndex: entry "${e.key}" has a source length its characters do not give`);
    if (!Number.isInteger(e.order) || e.order < -1 || e.order > 0x7fffffff) throw new Error(`encodeIndex: entry "${e.key}" has order ${e.order} (an int32 of at least -1)`);
    for (const h of [e.sourceHash, e.cacheHash ?? Buffer.alloc(ENTRY_HASH_BYTES), e.contentHash]) {
      if (h.byteLength !== ENTRY_HASH_BYTES) throw new Error(`encodeIndex: entry "${e.key}" has a hash of ${h.byteLength} bytes`);
    }
    [e.chars, e.sourceOffset, e.cacheOffset, e.cacheLength, e.fileSize, e.mtimeMs].forEach((v, k) => numbers.writeDoubleLE(v, (i * NUMBERS + k) * 8));
    const flags = (e.shebang ? FLAG_SHEBANG : 0) | (e.typescript ? FLAG_TYPESCRIPT : 0) | (e.requiredOnly ? FLAG_REQUIRED_ONLY : 0);
    small.writeInt32LE(e.order, i * SMALL * 4);
    small.writeInt32LE(KINDS.indexOf(e.kind) | (ENCODINGS.indexOf(e.encoding) << 2) | (flags << 4), i * SMALL * 4 + 4);
    Buffer.from(e.sourceHash).copy(hashes, i * HASH_SLOT);
    if (e.cacheHash) Buffer.from(e.cacheHash).copy(hashes, i * HASH_SLOT + ENTRY_HASH_BYTES);
    Buffer.from(e.contentHash).copy(hashes, i * HASH_SLOT + 2 * ENTRY_HASH_BYTES);
  });
  const keys = entries.map((e) => e.key).join('\0');
  const value: unknown[] = [INDEX_TAG, index.root, n, keys, numbers, small, hashes, index.resolutions ?? null];
  if (index.tracedRoot !== undefined) value.push(index.tracedRoot);
  return pack(value);
}

const bad = (detail: string) => codeblobError('ERR_CODEBLOB_BAD_FORMAT', detail);

/** Keys are relative, normalised POSIX paths: no `..`, no empty or `.` segments, no NUL. */
export function isValidKey(key: string): boolean {
  if (key.length === 0 || key.length > MAX_KEY || key.includes('\0') || key.includes('\\')) return false;
  return key.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

/** In keys joined by NUL: a `\`, or a segment that is empty, `.` or `..`. */
const BAD_SEGMENT = /\\|(?:^|[\0/])\.{0,2}(?=[\0/]|$)/;

/**
 * An entry as handed out: its fields are own properties, its three hashes views into the
 * index's hash column made when asked for (the loader asks the first time it checks a section
 * or a changed file). Made the first time the entry is asked for, and kept by the table, so one
 * entry is always the same object.
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
  readonly #table: EntryTable;
  readonly #i: number;

  constructor(table: EntryTable, i: number) {
    this.#table = table;
    this.#i = i;
    this.key = table.key(i);
    this.kind = table.kind(i);
    this.encoding = table.encoding(i);
    this.chars = table.chars(i);
    this.prefixChars = prefixOf(this.kind);
    this.suffixChars = suffixOf(this.kind);
    this.shebang = (table.flags(i) & FLAG_SHEBANG) !== 0;
    this.typescript = table.typescript(i);
    this.requiredOnly = table.requiredOnly(i);
    this.sourceOffset = table.sourceOffset(i);
    this.sourceLength = table.sourceLength(i);
    this.cacheOffset = table.cacheOffset(i);
    this.cacheLength = table.cacheLength(i);
    this.fileSize = table.fileSize(i);
    this.mtimeMs = table.mtimeMs(i);
    this.order = table.order(i);
  }

  get sourceHash(): Buffer {
    return this.#table.sourceHash(this.#i);
  }

  get cacheHash(): Buffer | null {
    return this.#table.cacheHash(this.#i);
  }

  get contentHash(): Buffer {
    return this.#table.contentHash(this.#i);
  }

  /** Where this entry is in `table`, or -1 when it is not one of its entries. */
  static positionIn(table: EntryTable, entry: Entry): number {
    return #i in entry && entry.#table === table ? entry.#i : -1;
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

/**
 * The decoded entries, as columns: what a reader looks entries up in and iterates without
 * making an object per entry. Positions run from 0 to `length - 1` in key order (JavaScript
 * string order); `find()` is a binary search. `entry(i)` makes (once) the `Entry` object the
 * store hands out. Every accessor takes a position the caller got from this table.
 */
export class EntryTable {
  readonly length: number;
  readonly #keys: string;
  /** Where key i starts in #keys; #starts[length] is one past the end (the NUL it would have). */
  readonly #starts: Uint32Array;
  readonly #numbers: Float64Array;
  readonly #small: Int32Array;
  readonly #hashes: Buffer;
  readonly #made: (Entry | undefined)[];

  /** Use decodeIndex(): this takes the columns (and where each key starts) as checked there. */
  constructor(length: number, keys: string, starts: Uint32Array, numbers: Float64Array, small: Int32Array, hashes: Buffer) {
    this.length = length;
    this.#keys = keys;
    this.#starts = starts;
    this.#numbers = numbers;
    this.#small = small;
    this.#hashes = hashes;
    this.#made = new Array(length);
  }

  /** The position of `key`, or -1. */
  find(key: string): number {
    let lo = 0;
    let hi = this.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const c = this.#compare(mid, key);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** The entry at position i, the same object every time. */
  entry(i: number): Entry {
    return (this.#made[i] ??= new DecodedEntry(this, i));
  }

  /** Every entry, in key order (makes an object for each: for tools, not for a loader). */
  all(): Entry[] {
    return Array.from({ length: this.length }, (_, i) => this.entry(i));
  }

  /** Where `entry` is in this table, or -1 when it is not one of its entries. */
  positionOf(entry: Entry): number {
    return DecodedEntry.positionIn(this, entry);
  }

  key(i: number): string {
    return this.#keys.slice(this.#starts[i]!, this.#starts[i + 1]! - 1);
  }

  kind(i: number): EntryKind {
    return KINDS[this.#small[i * SMALL + 1]! & 3]!;
  }

  encoding(i: number): SourceEncoding {
    return ENCODINGS[(this.#small[i * SMALL + 1]! >> 2) & 3]!;
  }

  flags(i: number): number {
    return this.#small[i * SMALL + 1]! >> 4;
  }

  order(i: number): number {
    return this.#small[i * SMALL]!;
  }

  typescript(i: number): boolean {
    return (this.flags(i) & FLAG_TYPESCRIPT) !== 0;
  }

  requiredOnly(i: number): boolean {
    return (this.flags(i) & FLAG_REQUIRED_ONLY) !== 0;
  }

  chars(i: number): number {
    return this.#numbers[i * NUMBERS + N_CHARS]!;
  }

  sourceOffset(i: number): number {
    return this.#numbers[i * NUMBERS + N_SOURCE_OFFSET]!;
  }

  /** Bytes of the source section: the text and, for CommonJS, its wrapper. */
  sourceLength(i: number): number {
    const kind = this.kind(i);
    return (prefixOf(kind) + this.chars(i) + suffixOf(kind)) * (this.encoding(i) === 'utf16le' ? 2 : 1);
  }

  cacheOffset(i: number): number {
    return this.#numbers[i * NUMBERS + N_CACHE_OFFSET]!;
  }

  cacheLength(i: number): number {
    return this.#numbers[i * NUMBERS + N_CACHE_LENGTH]!;
  }

  fileSize(i: number): number {
    return this.#numbers[i * NUMBERS + N_FILE_SIZE]!;
  }

  mtimeMs(i: number): number {
    return this.#numbers[i * NUMBERS + N_MTIME]!;
  }

  sourceHash(i: number): Buffer {
    return this.#hashes.subarray(i * HASH_SLOT, i * HASH_SLOT + ENTRY_HASH_BYTES);
  }

  /** null when the entry has no code cache. */
  cacheHash(i: number): Buffer | null {
    if (this.cacheLength(i) === 0) return null;
    return this.#hashes.subarray(i * HASH_SLOT + ENTRY_HASH_BYTES, i * HASH_SLOT + 2 * ENTRY_HASH_BYTES);
  }

  contentHash(i: number): Buffer {
    return this.#hashes.subarray(i * HASH_SLOT + 2 * ENTRY_HASH_BYTES, (i + 1) * HASH_SLOT);
  }

  /**
   * The section rules (FORMAT.md 7.3) for every entry: inside [dataStart, fileSize], aligned,
   * no two overlapping. Throws ERR_CODEBLOB_BAD_FORMAT naming the first rule broken. Reads the
   * columns in one flat loop: no call, object or string per section.
   */
  checkSections(dataStart: number, fileSize: number, alignment: number): void {
    const numbers = this.#numbers;
    const small = this.#small;
    const cacheAlign = Math.max(8, alignment);
    const wrapper = CJS_PREFIX.length + CJS_SUFFIX.length;
    // The sections of non-zero length, as starts and ends; those of zero length (empty files) apart.
    const starts = new Float64Array(this.length * 2);
    const ends = new Float64Array(this.length * 2);
    let count = 0;
    const points: number[] = [];
    for (let i = 0; i < this.length; i++) {
      const at = i * NUMBERS;
      const meta = small[i * SMALL + 1]!;
      const sourceOffset = numbers[at + N_SOURCE_OFFSET]!;
      const sourceEnd = sourceOffset + (((meta & 3) === 0 ? wrapper : 0) + numbers[at + N_CHARS]!) * (((meta >> 2) & 3) === 1 ? 2 : 1);
      if (sourceOffset < dataStart || sourceEnd > fileSize || sourceOffset % alignment !== 0) this.#sectionError(2 * i, dataStart, fileSize, alignment);
      if (sourceEnd > sourceOffset) {
        starts[count] = sourceOffset;
        ends[count++] = sourceEnd;
      } else {
        points.push(sourceOffset);
      }
      const cacheLength = numbers[at + N_CACHE_LENGTH]!;
      if (cacheLength === 0) continue;
      const cacheOffset = numbers[at + N_CACHE_OFFSET]!;
      if (cacheOffset < dataStart || cacheOffset + cacheLength > fileSize || cacheOffset % cacheAlign !== 0) this.#sectionError(2 * i + 1, dataStart, fileSize, cacheAlign);
      starts[count] = cacheOffset;
      ends[count++] = cacheOffset + cacheLength;
    }
    // Non-empty intervals overlap nowhere if and only if, starts and ends each sorted, every
    // end comes at or before the next start (then the k-th start and the k-th end are one
    // section's). Two sorts of numbers by the engine, no comparator called per pair.
    const s = starts.subarray(0, count).sort();
    const e = ends.subarray(0, count).sort();
    let sound = true;
    for (let k = 1; k < count && sound; k++) sound = e[k - 1]! <= s[k]!;
    // A zero-length section must not start strictly inside another.
    for (const p of points) {
      let lo = 0;
      let hi = count - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >>> 1;
        if (s[mid]! < p) lo = mid + 1;
        else hi = mid - 1;
      }
      if (sound && hi >= 0 && p < e[hi]!) sound = false;
    }
    if (!sound) this.#overlapError();
  }

  /** Finds and names two overlapping sections (the slow way: only for a blob that has them). */
  #overlapError(): never {
    const sections: Array<[start: number, end: number, s: number]> = [];
    for (let i = 0; i < this.length; i++) {
      sections.push([this.sourceOffset(i), this.sourceOffset(i) + this.sourceLength(i), 2 * i]);
      if (this.cacheLength(i) > 0) sections.push([this.cacheOffset(i), this.cacheOffset(i) + this.cacheLength(i), 2 * i + 1]);
    }
    sections.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    for (let k = 1; k < sections.length; k++) {
      if (sections[k]![0] < sections[k - 1]![1]) {
        throw codeblobError('ERR_CODEBLOB_BAD_FORMAT', `${this.#section(sections[k]![2])} overlaps ${this.#section(sections[k - 1]![2])}`);
      }
    }
    throw new Error('codeblob: overlapping sections not found again (a bug)');
  }

  #section(s: number): string {
    return `${s & 1 ? 'cache' : 'source'} of "${this.key(s >> 1)}"`;
  }

  #sectionError(s: number, dataStart: number, fileSize: number, align: number): never {
    const i = s >> 1;
    const [offset, length] = s & 1 ? [this.cacheOffset(i), this.cacheLength(i)] : [this.sourceOffset(i), this.sourceLength(i)];
    if (offset < dataStart || offset + length > fileSize) {
      throw codeblobError('ERR_CODEBLOB_BAD_FORMAT', `${this.#section(s)} [${offset}, +${length}) is out of bounds`);
    }
    throw codeblobError('ERR_CODEBLOB_BAD_FORMAT', `${this.#section(s)} at ${offset} is not ${align}-byte aligned`);
  }

  /** Key i against `key` in JavaScript string order (UTF-16 code units), as the writer sorts. */
  #compare(i: number, key: string): number {
    const keys = this.#keys;
    const start = this.#starts[i]!;
    const length = this.#starts[i + 1]! - 1 - start;
    const n = Math.min(length, key.length);
    for (let k = 0; k < n; k++) {
      const d = keys.charCodeAt(start + k) - key.charCodeAt(k);
      if (d !== 0) return d;
    }
    return length - key.length;
  }
}

/** An index as decoded: its entries as a table; `entries` makes an object for each (tools, tests). */
export interface DecodedIndex extends Index {
  readonly table: EntryTable;
}

/** A column of little-endian numbers, copied out of the index (which is not kept). */
function column<T extends Float64Array | Int32Array>(bin: unknown, Type: { new (n: number): T; BYTES_PER_ELEMENT: number }, count: number, what: string): T {
  if (!(bin instanceof Uint8Array) || bin.byteLength !== count * Type.BYTES_PER_ELEMENT) {
    throw bad(`index ${what} column is not ${count * Type.BYTES_PER_ELEMENT} bytes of binary`);
  }
  const out = new Type(count);
  if (littleEndian) {
    new Uint8Array(out.buffer).set(bin);
    return out;
  }
  const view = new DataView(bin.buffer, bin.byteOffset, bin.byteLength);
  const float = out instanceof Float64Array;
  for (let k = 0; k < count; k++) out[k] = float ? view.getFloat64(k * 8, true) : view.getInt32(k * 4, true);
  return out;
}

const isUint = (v: number) => v >= 0 && v <= Number.MAX_SAFE_INTEGER && Math.floor(v) === v;

/**
 * The rules of checkEntry() as one expression over the raw columns: what every entry of a sound
 * index passes, without a call, a string or a closure per entry. An entry that fails is checked
 * again by checkEntry(), which names the rule. (The loop over a 1,462-entry index cost a worker
 * thread 1.1 MiB through accessor calls and their optimised code.)
 */
function plausible(numbers: Float64Array, small: Int32Array, i: number): boolean {
  const meta = small[i * SMALL + 1]!;
  const kind = meta & 3;
  const encoding = (meta >> 2) & 3;
  const flags = meta >> 4;
  const at = i * NUMBERS;
  const chars = numbers[at + N_CHARS]!;
  const cacheLength = numbers[at + N_CACHE_LENGTH]!;
  const mtime = numbers[at + N_MTIME]!;
  return (
    encoding !== 3 && flags >= 0 && (flags & ~KNOWN_FLAGS) === 0 && (kind === 3) === (encoding === 2) &&
    isUint(chars) && isUint(numbers[at + N_SOURCE_OFFSET]!) && isUint(numbers[at + N_CACHE_OFFSET]!) &&
    isUint(cacheLength) && isUint(numbers[at + N_FILE_SIZE]!) && mtime >= 0 && mtime < Infinity &&
    small[i * SMALL]! >= -1 && chars < 2 ** 51 &&
    ((flags & FLAG_SHEBANG) === 0 || (kind === 0 && chars >= 2)) && ((flags & FLAG_REQUIRED_ONLY) === 0 || kind === 1) &&
    ((flags & FLAG_TYPESCRIPT) === 0 || kind <= 1) && (cacheLength === 0 || kind === 0)
  );
}

/** An entry's name in a message (a function, so the key is sliced only for an entry that fails). */
const whereOf = (t: EntryTable, i: number) => `entry "${t.key(i)}"`;

/** The field rules of one entry (FORMAT.md 7.2), read from the columns. */
function checkEntry(t: EntryTable, i: number): void {
  const kind = t.kind(i);
  const encoding = t.encoding(i) as SourceEncoding | undefined;
  if (encoding === undefined) throw bad(`${whereOf(t, i)} has an unknown encoding`);
  const flags = t.flags(i);
  if (flags < 0 || (flags & ~KNOWN_FLAGS) !== 0) throw bad(`${whereOf(t, i)} has unknown flags`);
  if ((kind === 'asset') !== (encoding === 'binary')) throw bad(`${whereOf(t, i)}: kind ${kind} cannot use encoding ${encoding}`);
  if (!isUint(t.chars(i))) throw bad(`${whereOf(t, i)} chars is not a non-negative integer`);
  if (!isUint(t.sourceOffset(i))) throw bad(`${whereOf(t, i)} source offset is not a non-negative integer`);
  if (!isUint(t.cacheOffset(i))) throw bad(`${whereOf(t, i)} cache offset is not a non-negative integer`);
  if (!isUint(t.cacheLength(i))) throw bad(`${whereOf(t, i)} cache length is not a non-negative integer`);
  if (!isUint(t.fileSize(i))) throw bad(`${whereOf(t, i)} file size is not a non-negative integer`);
  const mtime = t.mtimeMs(i);
  if (!Number.isFinite(mtime) || mtime < 0) throw bad(`${whereOf(t, i)} mtime is invalid`);
  if (t.order(i) < -1) throw bad(`${whereOf(t, i)} order is invalid`);
  if (!Number.isSafeInteger(t.sourceLength(i))) throw bad(`${whereOf(t, i)} source length is not a safe integer`);
  const shebang = (flags & FLAG_SHEBANG) !== 0;
  if (shebang && kind !== 'cjs') throw bad(`${whereOf(t, i)}: only CommonJS entries are wrapped`);
  if (shebang && t.chars(i) < 2) throw bad(`${whereOf(t, i)} is flagged as starting with #! but has ${t.chars(i)} chars`);
  if ((flags & FLAG_REQUIRED_ONLY) !== 0 && kind !== 'esm') throw bad(`${whereOf(t, i)}: only ES module entries are flagged as loaded by require() only`);
  if ((flags & FLAG_TYPESCRIPT) !== 0 && kind !== 'cjs' && kind !== 'esm') throw bad(`${whereOf(t, i)}: only CommonJS and ES module entries can be stripped TypeScript`);
  if (t.cacheLength(i) > 0 && kind !== 'cjs') throw bad(`${whereOf(t, i)}: only CommonJS entries carry a code cache`);
}

/** Decodes an index whose hash has already been checked. Structural rules only. */
export function decodeIndex(bytes: Uint8Array, expectedEntries: number): DecodedIndex {
  let raw: unknown;
  try {
    raw = decode(bytes);
  } catch (cause) {
    throw codeblobError('ERR_CODEBLOB_BAD_FORMAT', `index is not valid msgpack (${(cause as Error).message})`, cause);
  }
  if (!Array.isArray(raw) || raw.length < 8 || raw.length > 9 || raw[0] !== INDEX_TAG) throw bad('index does not start with the codeblob index tag');
  const [, root, count, keys, numbersBin, smallBin, hashesBin, resolutions, tracedRoot] = raw as unknown[];
  if (typeof root !== 'string' || root.includes('\0')) throw bad('index root is not a string');
  if (count !== expectedEntries) throw bad(`index has ${String(count)} entries, header says ${expectedEntries}`);
  if (resolutions !== null && !(resolutions instanceof Uint8Array)) throw bad('index resolution table is not binary');
  if (raw.length === 9 && (typeof tracedRoot !== 'string' || !tracedRoot.startsWith('/') || tracedRoot.includes('\0'))) throw bad('index traced root is not an absolute path');
  const n = expectedEntries;
  if (typeof keys !== 'string') throw bad('index keys are not a string');
  const starts = checkKeys(keys, n);
  const numbers = column(numbersBin, Float64Array, n * NUMBERS, 'numbers');
  const small = column(smallBin, Int32Array, n * SMALL, 'small');
  if (!(hashesBin instanceof Uint8Array) || hashesBin.byteLength !== n * HASH_SLOT) throw bad(`index hashes column is not ${n * HASH_SLOT} bytes of binary`);
  // Its own buffer, outside Node's pool (it lives as long as the index); the index is not kept.
  const hashes = Buffer.allocUnsafeSlow(hashesBin.byteLength);
  hashes.set(hashesBin);
  const table = new EntryTable(n, keys, starts, numbers, small, hashes);
  for (let i = 0; i < n; i++) if (!plausible(numbers, small, i)) checkEntry(table, i);
  return new ColumnIndex(
    root,
    table,
    resolutions instanceof Uint8Array ? resolutions : undefined,
    typeof tracedRoot === 'string' ? tracedRoot : undefined,
  );
}

/**
 * The decoded index. A class, not an object literal with a getter: each such literal made a
 * hidden class holding its getter's closure (and through it the table), which kept every
 * decoded index alive through young-generation collections: 10,000 opens grew the young
 * generation by 29 MiB.
 */
class ColumnIndex implements DecodedIndex {
  readonly root: string;
  readonly table: EntryTable;
  readonly resolutions?: Uint8Array;
  readonly tracedRoot?: string;

  constructor(root: string, table: EntryTable, resolutions: Uint8Array | undefined, tracedRoot: string | undefined) {
    this.root = root;
    this.table = table;
    if (resolutions !== undefined) this.resolutions = resolutions;
    if (tracedRoot !== undefined) this.tracedRoot = tracedRoot;
  }

  /** Every entry (an object for each: for tools and tests). */
  get entries(): readonly Entry[] {
    return this.table.all();
  }
}

/**
 * The key rules over all keys at once (they are joined by NUL, which no key holds): `count`
 * keys, none empty, no `\`, no empty, `.` or `..` segment, each after the one before in
 * JavaScript string order (so none twice). One pass; the comparison is the engine's. Returns
 * where each key starts, for the table.
 */
function checkKeys(keys: string, count: number): Uint32Array {
  // Where key i starts; starts[count] is one past the end (where its NUL would be, plus one).
  const starts = new Uint32Array(count + 1);
  if (count === 0) {
    if (keys !== '') throw bad('index keys are not empty for an empty index');
    return starts;
  }
  if (BAD_SEGMENT.test(keys)) {
    const i = keys.split('\0').findIndex((key) => !isValidKey(key));
    throw bad(`index entry ${i} has an invalid key (an empty, "." or ".." segment, or a backslash)`);
  }
  let at = 0;
  for (let i = 0; i < count; i++) {
    const nul = keys.indexOf('\0', at);
    const end = nul < 0 ? keys.length : nul;
    if ((nul < 0) !== (i === count - 1)) throw bad(`index keys hold ${nul < 0 ? 'fewer' : 'more'} keys than its ${count} entries`);
    if (end - at > MAX_KEY) throw bad(`index entry ${i} has an invalid key (over ${MAX_KEY} characters)`);
    if (i > 0 && !(keys.slice(starts[i - 1]!, at - 1) < keys.slice(at, end))) throw bad(`index keys are not in order (or one is there twice) at entry ${i}`);
    starts[i] = at;
    at = end + 1;
  }
  starts[count] = at;
  return starts;
}
