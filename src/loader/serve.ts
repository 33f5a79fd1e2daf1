/**
 * The checks both hooks (CommonJS and ESM) make before serving an entry from the blob, with
 * their counters: was the blob written in place, is the file still the packed one, does the
 * entry's section pass its hash.
 */
import type { Entry } from '../format/index.js';
import type { BlobStore } from '../store/store.js';
import { isFresh } from './freshness.js';
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

/** Is the entry's file unchanged since packing (per CODEBLOB_VERIFY)? Stale ones are counted. */
export function checkFresh({ state, debug }: ServeContext, entry: Entry, filename: string): boolean {
  if (isFresh(entry, filename, state.verify)) return true;
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
