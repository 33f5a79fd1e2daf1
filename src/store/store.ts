/**
 * A validated blob, open: look entries up, hand out external strings and zero-copy views.
 * This is the API custom loaders are written on: a small facade over the backend (the bytes),
 * the section checks (integrity.ts), the in-place-write watch (watch.ts) and paging hints
 * (paging.ts).
 */
import { realpathSync } from 'node:fs';
import { dirname, isAbsolute, resolve, sep } from 'node:path';
import { codeblobError } from '../errors.js';
import { cachesNameTheirFile, compatibility, readIndex, readMeta, sha256, type Entry, type EntryTable, type Header } from '../format/index.js';
import type { Advice } from '../native/binding.js';
import { openBackend, type Backend, type BackendName, type FileFacts } from './backend.js';
import { SectionChecks, type Section, type VerifyProblem } from './integrity.js';
import { resolveOpenOptions, type OpenOptions, type VerifyMode } from './options.js';
import { prefetchStartup, startupRange } from './paging.js';
import { InPlaceWriteWatch } from './watch.js';

export type { VerifyProblem } from './integrity.js';

export interface StoreStats {
  backend: BackendName;
  /** Why `read` is used although `mmap` was allowed; undefined otherwise. */
  fallbackReason: string | undefined;
  /** Size of the mapping (mmap) or of the private copy (read). */
  bytesMapped: number;
  /** Bytes of the blob resident in memory now (mmap only; undefined for read). */
  bytesResident: number | undefined;
  /** Strings handed out, and how many of them had their characters copied. */
  strings: number;
  stringsCopied: number;
  lookups: number;
  misses: number;
  /** Entries whose hash check failed (they are refused, never handed out). */
  corrupt: number;
  /** Sections found already checked by the background thread `verifyAhead()` started. */
  verifiedAhead: number;
}

/** One generation of a blob, as `pin()` describes it (see `trustPin()`). */
export interface BlobPin {
  dev: number;
  ino: number;
  size: number;
  /** Change time in nanoseconds, as a decimal string (exact). */
  ctimeNs: string;
  /** SHA-256 of the whole file, hex. */
  digest: string;
}

export class BlobStore {
  /** Absolute path the store was opened from. */
  readonly path: string;
  /** Directory entry keys are relative to. */
  readonly root: string;
  /** The root as the blob records it, relative to the blob's directory. */
  readonly recordedRoot: string;
  readonly header: Header;
  /** False when the caches were built for another V8/arch: sources still serve. */
  readonly cachesUsable: boolean;
  /** Why caches are unusable, in words. */
  readonly incompatibility: string | undefined;
  /** The file as it was when opened (device, inode, size, mtime, mode, owner). */
  readonly file: FileFacts;
  readonly verifyMode: VerifyMode;

  #backend: Backend | undefined;
  /** Notices an in-place write before its pages are touched (mmap only). */
  #watch: InPlaceWriteWatch | undefined;
  readonly #fallbackReason: string | undefined;
  readonly #table: EntryTable;
  /** Where the resolution table is in the file; it is read (and checked) again when asked for. */
  readonly #resolutionsAt: { offset: number; length: number } | undefined;
  /** The table itself, only when its place could not be worked out. */
  readonly #resolutions: Uint8Array | undefined;
  readonly #checks: SectionChecks;
  readonly #rootPrefix: string;
  #strings = 0;
  #stringsCopied = 0;
  #lookups = 0;
  #misses = 0;

  /** Use `open()`. */
  constructor(path: string, options?: OpenOptions) {
    const opts = resolveOpenOptions(options);
    this.path = resolve(path);
    const { backend, fallbackReason } = openBackend(this.path, opts.backend);
    try {
      const { header, index, resolutionsAt } = readMeta(backend.bytes);
      this.header = header;
      this.#table = index.table;
      // Not the table itself: a view into the private copy of the index would keep all of it
      // alive in every process (5.7 MiB for a 10,000-module app); the pages of the file are shared.
      this.#resolutionsAt = resolutionsAt;
      this.#resolutions = resolutionsAt ? undefined : index.resolutions;
      const compat = compatibility(header, backend.binding?.cacheTag() ?? undefined);
      if (!compat.cachesUsable && opts.requireCompatible) {
        throw codeblobError('ERR_CODEBLOB_INCOMPATIBLE', `${this.path}: ${compat.reason}`);
      }
      this.recordedRoot = index.root;
      this.root = opts.root !== undefined ? resolve(opts.root) : resolve(dirname(this.path), index.root);
      // A cache that names the file it was made from is right only where that file was.
      // (A blob that does not say where it was traced, written by hand with layoutBlob, is taken at its word.)
      const traced = index.tracedRoot;
      const moved = compat.cachesUsable && cachesNameTheirFile() && traced !== undefined && traced !== this.root && traced !== realRoot(this.root);
      this.cachesUsable = compat.cachesUsable && !moved;
      this.incompatibility = moved
        ? `the caches were made at ${traced}, the app is at ${this.root}, and Node ${process.versions.node} would name the old path in stack traces`
        : compat.reason;
    } catch (error) {
      backend.release();
      throw error;
    }
    this.#backend = backend;
    this.#fallbackReason = fallbackReason;
    this.file = backend.file;
    if (backend.name === 'mmap') this.#watch = InPlaceWriteWatch.open(this.path, backend.file, backend.binding);
    this.verifyMode = opts.verify;
    this.#rootPrefix = this.root.endsWith(sep) ? this.root : this.root + sep;
    this.#checks = new SectionChecks(this.#table, opts.verify === 'none');
    if (opts.verify === 'full') {
      const problems = this.verify();
      if (problems.length > 0) {
        this.close();
        throw codeblobError('ERR_CODEBLOB_CORRUPT_ENTRY', `${this.path}: ${problems.length} problem(s), first: ${problems[0]!.key} ${problems[0]!.section}: ${problems[0]!.message}`);
      }
    }
  }

  /** Why `read` is used although `mmap` was allowed; undefined otherwise. */
  get fallbackReason(): string | undefined {
    return this.#fallbackReason;
  }

  /** `mmap` or `read`. */
  get backend(): BackendName {
    return this.#live().name;
  }

  get closed(): boolean {
    return this.#backend === undefined;
  }

  /** Every entry, sorted by key. Makes an object for each: a loader looks entries up with `get()` or reads `table`. */
  entries(): readonly Entry[] {
    this.#live();
    return this.#table.all();
  }

  /**
   * The index as columns, in key order: count, look up and iterate entries without making an
   * object for each (`table.entry(i)` makes the one `get()` would return).
   */
  get table(): EntryTable {
    this.#live();
    return this.#table;
  }

  /**
   * The entry for a key (relative to the root, `/`-separated) or an absolute path under the
   * root; `undefined` when the blob has none.
   */
  get(keyOrPath: string): Entry | undefined {
    this.#live();
    this.#lookups++;
    let key = keyOrPath;
    if (isAbsolute(keyOrPath)) {
      if (!keyOrPath.startsWith(this.#rootPrefix)) {
        this.#misses++;
        return undefined;
      }
      key = keyOrPath.slice(this.#rootPrefix.length);
      if (sep !== '/') key = key.split(sep).join('/');
    }
    const i = this.#table.find(key);
    if (i < 0) {
      this.#misses++;
      return undefined;
    }
    return this.#table.entry(i);
  }

  /** Absolute path of an entry's original file. */
  filename(entry: Entry): string {
    return resolve(this.root, entry.key);
  }

  /**
   * The original text of a JS/JSON entry, equal to the file as Node reads it. With the mmap
   * backend an external string whose characters stay in the shared mapping (valid for the
   * string's whole life, even after `close()`); with `read`, an ordinary string.
   */
  source(entry: Entry): string {
    const b = this.#textEntry(entry);
    this.#verify(entry, 'source');
    const bpc = entry.encoding === 'utf16le' ? 2 : 1;
    const start = entry.sourceOffset + entry.prefixChars * bpc;
    if (!entry.shebang) return this.#string(b, start, entry.chars, bpc === 2);
    // Inside the wrapped section the "#!" reads "//"; give back the file's own first two chars.
    const slash = b.bytes[start] === 0x2f && b.bytes[start + bpc] === 0x2f;
    if (!slash) throw codeblobError('ERR_CODEBLOB_CORRUPT_ENTRY', `"${entry.key}" is flagged as starting with #! but does not`);
    return '#!' + this.#string(b, start + 2 * bpc, entry.chars - 2, bpc === 2);
  }

  /**
   * The text to compile: for CommonJS the source inside its function wrapper (CJS_PREFIX +
   * source + CJS_SUFFIX, with a leading "#!" as "//"), compiled with `columnOffset:
   * -CJS_PREFIX.length`; for other kinds the same as `source()`. External with mmap.
   */
  compileSource(entry: Entry): string {
    const b = this.#textEntry(entry);
    this.#verify(entry, 'source');
    const bpc = entry.encoding === 'utf16le' ? 2 : 1;
    return this.#string(b, entry.sourceOffset, entry.sourceLength / bpc, bpc === 2);
  }

  /**
   * Zero-copy, read-only view of the entry's text as stored (Latin-1, UTF-16LE, or the raw bytes
   * of an asset; CommonJS without its wrapper, and a leading `#!` reads `//` there, as it is
   * compiled). **Valid until `close()`**; writing into it is a crash (the mapping is read-only).
   */
  sourceView(entry: Entry): Uint8Array {
    const b = this.#live();
    this.#verify(entry, 'source');
    const bpc = entry.encoding === 'utf16le' ? 2 : 1;
    const start = entry.sourceOffset + entry.prefixChars * bpc;
    return new Uint8Array(b.bytes.buffer, b.bytes.byteOffset + start, entry.chars * bpc);
  }

  /**
   * Zero-copy, read-only view of the entry's V8 code cache, hash-checked; `undefined` when the
   * entry has none or the caches were built for another runtime. **Valid until `close()`.**
   */
  cacheView(entry: Entry): Buffer | undefined {
    const b = this.#live();
    if (entry.cacheLength === 0 || !this.cachesUsable) return undefined;
    this.#verify(entry, 'cache');
    return Buffer.from(b.bytes.buffer, b.bytes.byteOffset + entry.cacheOffset, entry.cacheLength);
  }

  /** Whether the packer recorded a resolution table. */
  hasResolutionTable(): boolean {
    this.#live();
    return this.#resolutionsAt !== undefined || this.#resolutions !== undefined;
  }

  /**
   * The encoded resolution table the packer recorded (decode with `decodeResolutions`), or
   * undefined: a private copy, read from the file again and checked against the index hash
   * (ERR_CODEBLOB_BAD_FORMAT when the index changed since open). Keep it only as long as needed.
   */
  resolutionTable(): Uint8Array | undefined {
    const b = this.#live();
    const at = this.#resolutionsAt;
    if (!at) return this.#resolutions;
    let index: Buffer;
    try {
      index = readIndex(b.bytes, this.header);
    } catch (error) {
      throw codeblobError('ERR_CODEBLOB_BAD_FORMAT', `${this.path}: the index changed since the blob was opened (${(error as Error).message})`);
    }
    const from = at.offset - this.header.indexOffset;
    return index.subarray(from, from + at.length);
  }

  /**
   * The byte range holding the sections of modules the traced run loaded (the packer lays them
   * out first, in load order): what a worker reads at startup.
   */
  startupRange(): { start: number; end: number } {
    this.#live();
    return startupRange(this.header, this.#table);
  }

  /**
   * Startup read-ahead (mmap only): asks the kernel to bring the startup range into the page
   * cache now (MADV_WILLNEED) and not to read ahead around faults in the rest (MADV_RANDOM),
   * which is touched one module at a time if ever.
   */
  prefetchStartup(): void {
    prefetchStartup(this.#live(), this.startupRange());
  }

  /**
   * Starts checking the hashes of the startup range (the sections of the modules the traced
   * run loaded, in file order) on a background thread of idle priority, so the loading thread
   * finds them checked instead of hashing each on first use. A section the loading thread
   * reaches first it hashes itself, as without this; a mismatch found ahead is hashed again
   * by the loading thread and refused as ever. mmap backend only. Returns whether a thread
   * was started (or joined); `stopVerifyAhead()` or `close()` stop it.
   *
   * Worker threads of one process share one mapping, and one check: a store whose startup
   * range (sections and hashes) is the one another thread's store is checking joins that
   * check instead of starting its own, and a section any of them hashed on its loading thread
   * counts for all. So the startup range is hashed once per process, not once per thread.
   * Stopping it stops it for all of them (each then hashes what is left on first use).
   */
  verifyAhead(): boolean {
    const b = this.#live();
    const f = this.file;
    return this.#checks.startAhead(b, this.cachesUsable, `${f.dev}:${f.ino}:${f.size}:${f.mtimeMs}:${f.ctimeNs}`);
  }

  /**
   * Stops the thread `verifyAhead()` started, after the section it is hashing; what it checked
   * so far still counts.
   */
  stopVerifyAhead(): void {
    this.#checks.stopAhead(this.#backend);
  }

  /**
   * How far the background check got: sections it was given, found sound, found corrupt, and
   * whether its thread is still running (reading the mapping). Undefined when none was started.
   */
  verifyAheadProgress(): { sections: number; sound: number; corrupt: number; running: boolean } | undefined {
    this.#live();
    return this.#checks.aheadProgress();
  }

  /** Hint the kernel about an entry's pages (or the whole file without an entry). */
  advise(advice: Advice, entry?: Entry): void {
    const b = this.#live();
    if (!entry) return b.advise(0, b.bytes.byteLength, advice);
    b.advise(entry.sourceOffset, entry.sourceLength, advice);
    if (entry.cacheLength > 0) b.advise(entry.cacheOffset, entry.cacheLength, advice);
  }

  /**
   * Checks every section hash. Returns the problems (empty when the blob is sound) and marks
   * sound entries as checked, so a later lazy check costs nothing.
   */
  verify(): VerifyProblem[] {
    return this.#checks.checkAll(this.#live().bytes);
  }

  /**
   * Identifies this exact generation of the blob: the inode and its change time (any write to
   * the file changes it), plus the SHA-256 of the whole file. A primary that verified the blob
   * passes it to its workers; see `trustPin()`.
   */
  pin(): BlobPin {
    const f = this.file;
    return { dev: f.dev, ino: f.ino, size: f.size, ctimeNs: f.ctimeNs.toString(), digest: this.digest() };
  }

  /**
   * Accepts a pin made by a process that fully verified this blob. When the file is that very
   * inode, unchanged since (same device, inode, size and change time), every entry counts as
   * checked and no hash is computed again; otherwise the whole file is hashed and must have the
   * pinned digest. Returns false (and changes nothing) when it is another generation.
   */
  trustPin(pin: BlobPin): boolean {
    const f = this.file;
    const same = f.dev === pin.dev && f.ino === pin.ino && f.size === pin.size && f.ctimeNs.toString() === pin.ctimeNs;
    if (!same && this.digest() !== pin.digest) return false;
    if (!same && this.verify().length > 0) return false;
    this.#checks.trustAll();
    this.stopVerifyAhead(); // nothing left for it to check
    return true;
  }

  /** SHA-256 of the whole file (hex), e.g. to pin one generation of a blob across workers. */
  digest(): string {
    return sha256(this.#live().bytes).toString('hex');
  }

  /** The counters of `stats()` without the residency figure (which asks the kernel about every page). */
  counters(): Pick<StoreStats, 'strings' | 'stringsCopied' | 'lookups' | 'misses' | 'corrupt' | 'verifiedAhead'> {
    this.#live();
    return {
      strings: this.#strings,
      stringsCopied: this.#stringsCopied,
      lookups: this.#lookups,
      misses: this.#misses,
      corrupt: this.#checks.corrupt,
      verifiedAhead: this.#checks.verifiedAhead,
    };
  }

  stats(): StoreStats {
    const b = this.#live();
    return {
      backend: b.name,
      fallbackReason: this.#fallbackReason,
      bytesMapped: b.bytes.byteLength,
      bytesResident: b.residentBytes(0, b.bytes.byteLength),
      ...this.counters(),
    };
  }

  /**
   * Releases this store's hold on the file. With mmap, views handed out become zero-length (with
   * read they keep their private copy until collected; do not rely on either); strings stay
   * valid (each keeps the mapping alive until it is collected). Idempotent.
   */
  close(): void {
    this.#checks.dropAhead(this.#backend);
    this.#backend?.release();
    this.#backend = undefined;
    this.#watch?.close();
    this.#watch = undefined;
  }

  /**
   * True when the mapped file was written in place since it was opened (its size or mtime
   * changed): its pages may now hold other bytes, or none (a truncated mapping is SIGBUS on
   * access). codeblob never does this; an operator who does must not let workers read on.
   * One fstat; false for the read backend (its private copy cannot change).
   */
  changedSinceOpen(): boolean {
    return this.#watch?.changed() ?? false;
  }

  #live(): Backend {
    if (!this.#backend) throw codeblobError('ERR_CODEBLOB_CLOSED', this.path);
    return this.#backend;
  }

  #textEntry(entry: Entry): Backend {
    const b = this.#live();
    if (entry.encoding === 'binary') {
      throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', `entry "${entry.key}" is a binary asset: use sourceView()`);
    }
    return b;
  }

  #string(b: Backend, offset: number, chars: number, twoByte: boolean): string {
    const { value, copied } = b.string(offset, chars, twoByte);
    this.#strings++;
    if (copied) this.#stringsCopied++;
    return value;
  }

  #verify(entry: Entry, section: Section): void {
    const i = this.#table.positionOf(entry);
    if (i < 0) throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', 'entry does not belong to this store');
    this.#checks.check(i, section, this.#live().bytes, this.path);
  }
}

/** The root as Node names the modules under it (their real paths), or undefined. */
function realRoot(root: string): string | undefined {
  try {
    return realpathSync(root);
  } catch {
    return undefined;
  }
}

/**
 * Opens and validates a blob (header, index, every section's bounds/alignment/overlap). Throws
 * a typed error for a corrupt or foreign file; opens a blob built for another V8 with its
 * caches marked unusable (`cachesUsable`, `incompatibility`).
 */
export function open(path: string, options?: OpenOptions): BlobStore {
  return new BlobStore(path, options);
}
