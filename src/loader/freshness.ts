/**
 * Is the file on disk still the one that was packed? Checked before the blob's copy of a
 * module is used in place of reading the file (CODEBLOB_VERIFY, see config.ts):
 *
 *   stat (default)  size and mtime as recorded (one stat call); when only the mtime differs,
 *                   the content decides: the file is read and hashed, and if it hashes to the
 *                   recorded content hash it is still the packed one (a copy that resets times,
 *                   `cp -r`, changes no byte)
 *   hash            the file's bytes hash to the recorded content hash (one read, no decode)
 *   none            trust the blob (immutable deploys: containers, read-only volumes)
 *
 * A verdict is a number: FRESH, FRESH_SAME_CONTENT (counted: the mtime changed, the content did
 * not), or one of the STALE_* reasons, which NODE_DEBUG=codeblob names (`staleReason`).
 *
 * In `stat` mode the files inside node_modules of the modules the traced run loaded are statted
 * ahead, in load order, on a thread of the addon (`FreshAhead`) while this thread loads: such a
 * module finds its file's stat made a moment before instead of making it. Only node_modules, which
 * package managers write and apps do not: an app that writes one of its own modules at startup
 * and requires it in the same burst must get the new file, so files outside node_modules are
 * statted when they load. The stats serve the first chain of loads only (burst.ts); a module
 * loaded later is statted when it loads.
 */
import { readFileSync, statSync } from 'node:fs';
import { sep } from 'node:path';
import { entryHash, type Entry, type EntryTable } from '../format/index.js';
import type { NativeBinding } from '../native/binding.js';
import { KIND_FILE, StatJob } from '../native/jobs.js';
import type { BlobStore } from '../store/store.js';
import type { FreshnessMode } from './config.js';

/** The startup modules' files, statted ahead on a thread (see the file comment). */
export class FreshAhead {
  readonly #job: StatJob;
  readonly #table: EntryTable;
  /** Per position in the table, the row of its file in the job; -1 for none. */
  readonly #rowOf: Int32Array;

  readonly #paths: readonly string[];

  private constructor(job: StatJob, table: EntryTable, rowOf: Int32Array, paths: readonly string[]) {
    this.#job = job;
    this.#table = table;
    this.#rowOf = rowOf;
    this.#paths = paths;
  }

  /** Starts the thread for the store's startup entries in node_modules; undefined without any. */
  static start(store: BlobStore, binding: NativeBinding): FreshAhead | undefined {
    const table = store.table;
    const traced: number[] = [];
    for (let i = 0; i < table.length; i++) if (table.order(i) >= 0) traced.push(i);
    traced.sort((a, b) => table.order(a) - table.order(b));
    const prefix = store.root.endsWith(sep) ? store.root : store.root + sep;
    const rowOf = new Int32Array(table.length).fill(-1);
    const paths: string[] = [];
    for (const i of traced) {
      const key = table.key(i);
      if (!key.startsWith('node_modules/') && !key.includes('/node_modules/')) continue;
      const filename = sep === '/' ? prefix + key : store.filename(table.entry(i));
      if (filename.includes('\0')) continue;
      rowOf[i] = paths.length;
      paths.push(filename);
    }
    const job = StatJob.start(binding, paths);
    return job && new FreshAhead(job, table, rowOf, paths);
  }

  /**
   * The verdict on the entry's file (statted here if the thread has not got there; read and
   * hashed when only its mtime differs), or undefined for an entry not started ahead.
   */
  verdict(entry: Entry): number | undefined {
    const at = this.#table.positionOf(entry);
    const r = at < 0 ? -1 : this.#rowOf[at]!;
    if (r < 0) return undefined;
    const rows = this.#job.row(r);
    const v = fromStat(rows[r * 3]!, rows[r * 3 + 1]!, rows[r * 3 + 2]!, entry);
    return v === CHECK_CONTENT ? contentVerdict(entry, this.#paths[r]!, true) : v;
  }

  /** Is the entry's file still the packed one (see `verdict`)? */
  fresh(entry: Entry): boolean | undefined {
    const v = this.verdict(entry);
    return v === undefined ? undefined : v <= FRESH_SAME_CONTENT;
  }

  /** Files whose stat the thread had made before their module loaded. */
  get madeAhead(): number {
    return this.#job.madeAhead;
  }

  /** The thread has ended: every file statted, or stopped. */
  get finished(): boolean {
    return !this.#job.status.running;
  }

  /** Stops the thread if it still runs; the stats are not used after this. */
  stop(): void {
    this.#job.stop();
    this.#rowOf.fill(-1);
  }
}

/** As packed (per the mode). */
export const FRESH = 0;
/** The mtime changed, the content did not (read and hashed): as packed. */
export const FRESH_SAME_CONTENT = 1;
export const STALE_GONE = 2;
export const STALE_SIZE = 3;
export const STALE_CONTENT = 4;
export const STALE_UNREADABLE = 5;
/** Same size, another mtime: the content decides. */
const CHECK_CONTENT = -1;

const REASONS = ['', '', 'gone, or no longer a file', 'its size changed', 'its content changed', 'it cannot be read'];

/** Why a module is stale, in words, for NODE_DEBUG=codeblob. */
export function staleReason(verdict: number): string {
  return REASONS[verdict] || 'changed';
}

/** The verdict a stat row (kind, mtimeMs, size) gives; CHECK_CONTENT when only the mtime differs. */
function fromStat(kind: number, mtimeMs: number, size: number, entry: Entry): number {
  if (kind !== KIND_FILE) return STALE_GONE;
  if (size !== entry.fileSize) return STALE_SIZE;
  return mtimeMs === entry.mtimeMs ? FRESH : CHECK_CONTENT;
}

/** Reads and hashes the file: FRESH (or FRESH_SAME_CONTENT when its time changed) or a STALE_* reason. */
export function contentVerdict(entry: Entry, filename: string, timeChanged: boolean): number {
  let bytes: Buffer;
  try {
    bytes = readFileSync(filename);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR' ? STALE_GONE : STALE_UNREADABLE;
  }
  if (bytes.length !== entry.fileSize) return STALE_SIZE;
  if (!entryHash(bytes).equals(entry.contentHash)) return STALE_CONTENT;
  return timeChanged ? FRESH_SAME_CONTENT : FRESH;
}

/** Is the file on disk still the one packed, per the mode? A verdict: FRESH, FRESH_SAME_CONTENT or a STALE_* reason. */
export function freshness(entry: Entry, filename: string, mode: FreshnessMode, binding: NativeBinding | undefined): number {
  if (mode === 'none') return FRESH;
  if (mode === 'hash') return contentVerdict(entry, filename, false);
  let v: number;
  if (binding && !filename.includes('\0')) {
    // One stat, no Stats object: kind (1 a file), mtimeMs, size.
    const row = binding.statMany(filename);
    v = fromStat(row[0]!, row[1]!, row[2]!, entry);
  } else {
    let st;
    try {
      st = statSync(filename, { throwIfNoEntry: false });
    } catch {
      st = undefined;
    }
    v = st ? fromStat(st.isFile() ? KIND_FILE : -1, st.mtimeMs, st.size, entry) : STALE_GONE;
  }
  return v === CHECK_CONTENT ? contentVerdict(entry, filename, true) : v;
}

export function isFresh(entry: Entry, filename: string, mode: FreshnessMode, binding: NativeBinding | undefined): boolean {
  return freshness(entry, filename, mode, binding) <= FRESH_SAME_CONTENT;
}
