/**
 * Is the file on disk still the one that was packed? Checked before the blob's copy of a
 * module is used in place of reading the file.
 *
 *   stat (default)  size and mtime as recorded (one stat call)
 *   hash            the file's bytes hash to the recorded content hash (one read, no decode)
 *   none            trust the blob (immutable deploys: containers, read-only volumes)
 *
 * In `stat` mode the files inside node_modules of the modules the traced run loaded are statted
 * ahead, in load order, on a thread of the addon (`FreshAhead`) while this thread loads: such a
 * module finds its file's stat made a moment before instead of making it. Only node_modules, which
 * package managers write and apps do not: an app that writes one of its own modules at startup
 * and requires it in the same burst must get the new file, so files outside node_modules are
 * statted when they load. The stats serve the startup burst only (the loader drops them when it
 * ends); a module loaded later is statted when it loads.
 */
import { readFileSync, statSync } from 'node:fs';
import { sep } from 'node:path';
import { entryHash, type Entry } from '../format/index.js';
import { KIND_FILE, STAT_DONE, STAT_TAKEN, native, statAheadStatus } from '../native/binding.js';
import type { BlobStore } from '../store/store.js';
import type { FreshnessMode } from './status.js';

export function parseFreshnessMode(value: string | undefined): FreshnessMode | undefined {
  if (value === undefined || value === '' || value === 'stat') return 'stat';
  if (value === 'hash' || value === 'none') return value;
  return undefined;
}

/** The startup modules' files, statted ahead on a thread (see the file comment). */
export class FreshAhead {
  readonly #rows: Float64Array;
  readonly #status: Uint8Array;
  readonly #rowOf: Map<Entry, number>;
  /** The loader has scheduled the end of the burst these stats serve. */
  ending = false;

  private constructor(rows: Float64Array, rowOf: Map<Entry, number>) {
    this.#rows = rows;
    this.#status = statAheadStatus(rows);
    this.#rowOf = rowOf;
  }

  /** Starts the thread for the store's startup entries in node_modules; undefined without the addon or any. */
  static start(store: BlobStore): FreshAhead | undefined {
    const binding = native();
    if (!binding) return undefined;
    const startup = store.entries().filter((e) => e.order >= 0 && (e.key.startsWith('node_modules/') || e.key.includes('/node_modules/')));
    if (startup.length === 0) return undefined;
    startup.sort((a, b) => a.order - b.order);
    const prefix = store.root.endsWith(sep) ? store.root : store.root + sep;
    const rowOf = new Map<Entry, number>();
    const paths: string[] = [];
    for (const e of startup) {
      const filename = sep === '/' ? prefix + e.key : store.filename(e);
      if (filename.includes('\0')) continue;
      rowOf.set(e, paths.length);
      paths.push(filename);
    }
    try {
      return new FreshAhead(binding.statAhead(paths.join('\0')), rowOf);
    } catch {
      return undefined; // no memory for it: every file is statted when it loads, as without this
    }
  }

  /**
   * The verdict from the thread's stat of the entry's file, or undefined when the thread has
   * not got there (it then skips it: the caller stats it) or the entry is not a startup one.
   */
  fresh(entry: Entry): boolean | undefined {
    const r = this.#rowOf.get(entry);
    if (r === undefined) return undefined;
    const status = this.#status;
    if (status[r] !== STAT_DONE) {
      status[r] = STAT_TAKEN;
      return undefined;
    }
    const rows = this.#rows;
    return rows[r * 3] === KIND_FILE && rows[r * 3 + 2] === entry.fileSize && rows[r * 3 + 1] === entry.mtimeMs;
  }

  /** The thread has ended: every file statted, or stopped. */
  get finished(): boolean {
    return this.#status[this.#status.length - 1] === 1;
  }

  /** Stops the thread if it still runs; the stats are not used after this. */
  stop(): void {
    this.#status[this.#status.length - 2] = 1;
    this.#rowOf.clear();
  }
}

export function isFresh(entry: Entry, filename: string, mode: FreshnessMode): boolean {
  if (mode === 'none') return true;
  try {
    if (mode === 'stat') {
      const binding = native();
      if (binding && !filename.includes('\0')) {
        // One stat, no Stats object: kind (1 a file), mtimeMs, size.
        const row = binding.statMany(filename);
        return row[0] === KIND_FILE && row[2] === entry.fileSize && row[1] === entry.mtimeMs;
      }
      const st = statSync(filename);
      return st.size === entry.fileSize && st.mtimeMs === entry.mtimeMs;
    }
    const bytes = readFileSync(filename);
    return bytes.length === entry.fileSize && entryHash(bytes).equals(entry.contentHash);
  } catch {
    return false;
  }
}
