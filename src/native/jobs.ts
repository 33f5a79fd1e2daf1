/**
 * The addon's background jobs (statAhead, verifyAhead) as JS sees them. A job shares a few
 * bytes with the loading thread: one per item (a path to stat, a section to hash), then a
 * cancel byte the caller sets to stop it, then a byte that becomes 1 once the thread has ended
 * (codeblob.h). An item the loading thread needs before the job got to it is *taken*: the
 * loading thread does that item itself and the job skips it. These constants mirror the C enum.
 */
import type { NativeBinding } from './binding.js';

export const ITEM_PENDING = 0;
/** Stat made / hash sound. */
export const ITEM_DONE = 1;
/** Hash mismatch (verifyAhead only). */
export const ITEM_BAD = 2;
/** The loading thread took the item: the job skips it. */
export const ITEM_TAKEN = 3;

/** The kinds stat rows hold. */
export const KIND_ABSENT = 0;
export const KIND_FILE = 1;
export const KIND_DIRECTORY = 2;

/** One job's status bytes. */
export class JobStatus {
  readonly count: number;
  readonly #bytes: Uint8Array;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.count = bytes.length - 2;
  }

  /** The bytes themselves, as the addon handed them out (verifyAheadStop takes them back). */
  get bytes(): Uint8Array {
    return this.#bytes;
  }

  /** The job's word on item i (ITEM_*). */
  item(i: number): number {
    return this.#bytes[i]!;
  }

  /**
   * The job's verdict on item i if it has one (ITEM_DONE, ITEM_BAD), else ITEM_TAKEN: the item
   * is now the caller's, and the job will not touch it.
   */
  takeUnlessDone(i: number): number {
    const word = this.#bytes[i]!;
    if (word === ITEM_PENDING) {
      this.#bytes[i] = ITEM_TAKEN;
      return ITEM_TAKEN;
    }
    return word;
  }

  /** The caller's verdict on an item it took (shared with other threads that joined the job). */
  settle(i: number, ok: boolean): void {
    this.#bytes[i] = ok ? ITEM_DONE : ITEM_BAD;
  }

  /** The thread is still running (it may still read the mapping or write rows). */
  get running(): boolean {
    return this.#bytes[this.count + 1] === 0;
  }

  /** Stops the thread after its current item (for every store that joined the job). */
  cancel(): void {
    this.#bytes[this.count] = 1;
  }

  /** How many items the job found done and bad. */
  tally(): { done: number; bad: number } {
    let done = 0;
    let bad = 0;
    for (let i = 0; i < this.count; i++) {
      if (this.#bytes[i] === ITEM_DONE) done++;
      else if (this.#bytes[i] === ITEM_BAD) bad++;
    }
    return { done, bad };
  }
}

/**
 * Paths statted on a thread of the addon (statAhead) while the loading thread loads. `row(i)`
 * always gives path i's stat: the thread's, or one made here if the thread has not got there.
 */
export class StatJob {
  readonly #binding: NativeBinding;
  readonly #paths: readonly string[];
  readonly #rows: Float64Array;
  readonly #status: JobStatus;
  /** Rows asked for that the thread had made before they were needed. */
  madeAhead = 0;

  private constructor(binding: NativeBinding, paths: readonly string[], rows: Float64Array) {
    this.#binding = binding;
    this.#paths = paths;
    this.#rows = rows;
    this.#status = new JobStatus(new Uint8Array(rows.buffer, rows.byteOffset + rows.byteLength, paths.length + 2));
  }

  /** Starts statting `paths` (none holding NUL); undefined when there are none or no memory for it. */
  static start(binding: NativeBinding, paths: readonly string[]): StatJob | undefined {
    if (paths.length === 0) return undefined;
    try {
      return new StatJob(binding, paths, binding.statAhead(paths.join('\0')));
    } catch {
      return undefined; // no memory for it: the caller stats each path when it needs it
    }
  }

  get status(): JobStatus {
    return this.#status;
  }

  /**
   * The stat rows, with path i's row (kind, mtimeMs, size at 3i) complete. A row the thread has
   * not made yet is made here (the thread then skips it, and never writes it).
   */
  row(i: number): Float64Array {
    if (this.#status.takeUnlessDone(i) === ITEM_TAKEN) {
      // Taken: the thread never writes this row, so it is ours to fill (again, if asked again).
      this.#rows.set(this.#binding.statMany(this.#paths[i]!), i * 3);
    } else {
      this.madeAhead++;
    }
    return this.#rows;
  }

  stop(): void {
    this.#status.cancel();
  }
}
