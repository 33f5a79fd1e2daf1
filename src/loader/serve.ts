/**
 * The checks both hooks (CommonJS and ESM) make before serving an entry from the blob, with
 * their counters: was the blob written in place, is the file still the packed one, does the
 * entry's section pass its hash.
 */
import type { Entry } from '../format/index.js';
import type { BlobStore } from '../store/store.js';
import { FreshAhead, isFresh } from './freshness.js';
import type { LoaderStatus } from './status.js';

export interface ServeContext {
  store: BlobStore;
  state: LoaderStatus;
  debug: (msg: string) => void;
}

/** The blob was written in place since it was opened: stop touching its pages (counted once). */
export function blobModified({ store, state, debug }: ServeContext): boolean {
  if (state.counters.modified) return true;
  if (!store.changedSinceOpen()) return false;
  state.counters.modified = 1;
  debug(`${store.path} was modified in place since it was opened: loading from disk from now on`);
  return true;
}

// The startup modules' file stats made ahead (verify=stat), per store, until the burst ends.
const statsAhead = new WeakMap<BlobStore, FreshAhead>();

/** Starts statting the startup modules' files ahead (verify=stat, with the addon). */
export function startStatsAhead(store: BlobStore, state: LoaderStatus): void {
  if (state.verify !== 'stat' || statsAhead.has(store)) return;
  const ahead = FreshAhead.start(store);
  if (ahead) statsAhead.set(store, ahead);
}

/** The startup burst is over: later loads stat their files when they load. */
export function endStatsAhead(store: BlobStore): void {
  statsAhead.get(store)?.stop();
  statsAhead.delete(store);
}

/** Is the entry's file unchanged since packing (per CODEBLOB_VERIFY)? Stale ones are counted. */
export function checkFresh({ store, state, debug }: ServeContext, entry: Entry, filename: string): boolean {
  const ahead = state.verify === 'stat' ? statsAhead.get(store) : undefined;
  let fresh: boolean | undefined;
  if (ahead) {
    fresh = ahead.fresh(entry);
    if (fresh !== undefined) state.counters.statsAhead++;
    if (!ahead.ending) {
      // The stats serve this burst of loading only (see freshness.ts): it ends when the
      // synchronous loading does. A microtask, not setImmediate: a worker blocked between tasks
      // in Atomics.wait (piscina's default) runs microtasks only, and a stat made at startup
      // must never stand for a file loaded in a later task.
      ahead.ending = true;
      queueMicrotask(() => endStatsAhead(store));
    }
  }
  fresh ??= isFresh(entry, filename, state.verify);
  if (fresh) return true;
  state.counters.stale++;
  debug(`stale, loading from disk: ${filename}`);
  return false;
}

/** The blob's text of a fresh entry, or undefined (counted stale or corrupt): load from disk. */
export function freshText(ctx: ServeContext, entry: Entry, filename: string): string | undefined {
  if (!checkFresh(ctx, entry, filename)) return undefined;
  try {
    return ctx.store.source(entry);
  } catch (error) {
    ctx.state.counters.corrupt++;
    ctx.debug(`refused ${filename}: ${(error as Error).message}`);
    return undefined;
  }
}
