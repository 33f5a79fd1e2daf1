/**
 * The loading burst: a stretch of module loading in one thread (the startup, or a later batch).
 * Whatever should last only as long as loading lasts subscribes here, to one of three ends, so
 * the timing of each is decided in this one place:
 *
 * - `chain`: the synchronous chain of loads ended (the next microtask). The file stats made
 *   ahead end here: a stat made at startup must never stand for a file loaded in a later task.
 * - `idle`: loading stopped. In the main thread, once the event loop turned (setImmediate)
 *   without loading more, which also lets promise-driven loading (ES modules) finish first. In
 *   a worker thread at the next microtask: a pool that blocks its threads in Atomics.wait
 *   between tasks (piscina's default) runs nothing else there, and nothing would ever end.
 *   The blob's pages are released and the background hash check stops here.
 * - `quiet`: two seconds after `idle` without loading. The decoded resolution table is dropped
 *   here (decoding it again for a batch soon after would cost more than keeping it).
 *
 * Each end fires once per burst, after at least one load; a later load starts a new burst.
 */
import { currentThread } from './node-internals.js';

export type BurstEnd = 'chain' | 'idle' | 'quiet';

const QUIET_MS = 2000;

export class Burst {
  readonly #listeners: Record<BurstEnd, (() => void)[]> = { chain: [], idle: [], quiet: [] };
  #first: (() => void)[] | undefined = [];
  #chainPending = false;
  #idlePending = false;
  #quietTimer: NodeJS.Timeout | undefined;
  #loads = 0;

  /** Subscribes to an end of every burst. */
  on(end: BurstEnd, listener: () => void): void {
    this.#listeners[end].push(listener);
  }

  /**
   * Runs `listener` at the thread's first load, not before: work ahead of loading (hashing the
   * startup range, statting its files) must not run in a process that loads nothing from the
   * blob, such as a cluster primary started with the preload, where no burst would ever end it.
   */
  onFirstLoad(listener: () => void): void {
    if (this.#first) this.#first.push(listener);
    else listener();
  }

  /** A module was loaded (served from the blob, or checked against it). */
  noteLoad(): void {
    this.#loads++;
    if (this.#first) {
      const first = this.#first;
      this.#first = undefined;
      for (const listener of first) listener();
    }
    if (!this.#chainPending) {
      this.#chainPending = true;
      queueMicrotask(() => {
        this.#chainPending = false;
        this.#emit('chain');
      });
    }
    if (this.#quietTimer) {
      clearTimeout(this.#quietTimer);
      this.#quietTimer = undefined;
    }
    if (!this.#idlePending) {
      this.#idlePending = true;
      const idle = () => {
        this.#idlePending = false;
        this.#emit('idle');
        if (this.#listeners.quiet.length > 0) {
          const loads = this.#loads;
          this.#quietTimer = setTimeout(() => {
            this.#quietTimer = undefined;
            if (this.#loads === loads) this.#emit('quiet');
          }, QUIET_MS).unref();
        }
      };
      if (currentThread().isMainThread) setImmediate(idle).unref();
      else queueMicrotask(idle);
    }
  }

  #emit(end: BurstEnd): void {
    for (const listener of this.#listeners[end]) listener();
  }
}
