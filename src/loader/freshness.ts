/**
 * Is the file on disk still the one that was packed? Checked before the blob's copy of a
 * module is used in place of reading the file (CODEBLOB_VERIFY, see config.ts):
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
 * statted when they load. The stats serve the first chain of loads only (burst.ts); a module
 * loaded later is statted when it loads.
 */
import { readFileSync, statSync } from 'node:fs';
import { sep } from 'node:path';
import { entryHash, type Entry } from '../format/index.js';
import type { NativeBinding } from '../native/binding.js';
import { KIND_FILE, StatJob } from '../native/jobs.js';
import type { BlobStore } from '../store/store.js';
import type { FreshnessMode } from './config.js';

/** The startup modules' files, statted ahead on a thread (see the file comment). */
export class FreshAhead {
  readonly #job: StatJob;
  readonly #rowOf: Map<Entry, number>;

  private constructor(job: StatJob, rowOf: Map<Entry, number>) {
    this.#job = job;
    this.#rowOf = rowOf;
  }

  /** Starts the thread for the store's startup entries in node_modules; undefined without any. */
  static start(store: BlobStore, binding: NativeBinding): FreshAhead | undefined {
    const startup = store.entries().filter((e) => e.order >= 0 && (e.key.startsWith('node_modules/') || e.key.includes('/node_modules/')));
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
    const job = StatJob.start(binding, paths);
    return job && new FreshAhead(job, rowOf);
  }

  /** The verdict on the entry's file (statted here if the thread has not got there), or undefined for an entry not started ahead. */
  fresh(entry: Entry): boolean | undefined {
    const r = this.#rowOf.get(entry);
    if (r === undefined) return undefined;
    const rows = this.#job.row(r);
    return rows[r * 3] === KIND_FILE && rows[r * 3 + 2] === entry.fileSize && rows[r * 3 + 1] === entry.mtimeMs;
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
    this.#rowOf.clear();
  }
}

export function isFresh(entry: Entry, filename: string, mode: FreshnessMode, binding: NativeBinding | undefined): boolean {
  if (mode === 'none') return true;
  try {
    if (mode === 'stat') {
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
