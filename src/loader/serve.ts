/**
 * What both hooks (CommonJS and ESM) share: the loader's context, and the checks made before
 * an entry is served from the blob, with their counters: was the blob written in place, is the
 * file still the packed one, does the entry's section pass its hash.
 */
import type { Entry } from '../format/index.js';
import type { NativeBinding } from '../native/binding.js';
import type { BlobStore } from '../store/store.js';
import type { Burst } from './burst.js';
import type { LoaderConfig } from './config.js';
import { FRESH, FRESH_SAME_CONTENT, FreshAhead, freshness, staleReason } from './freshness.js';
import type { LoaderStatus } from './status.js';

export interface ServeContext {
  store: BlobStore;
  state: LoaderStatus;
  config: LoaderConfig;
  debug: (msg: string) => void;
  /** The addon, when the store maps the blob; undefined with the read backend. */
  native: NativeBinding | undefined;
  burst: Burst;
  /** The startup modules' file stats made ahead, until the first chain of loads ends. */
  statsAhead?: FreshAhead | undefined;
}

/** The blob was written in place since it was opened: stop touching its pages (counted once). */
export function blobModified({ store, state, debug }: ServeContext): boolean {
  if (state.counters.modified) return true;
  if (!store.changedSinceOpen()) return false;
  state.counters.modified = 1;
  debug(`${store.path} was modified in place since it was opened: loading from disk from now on`);
  return true;
}

/** Starts statting the startup modules' files ahead (freshness `stat`, with the addon); they serve the first chain of loads. */
export function startStatsAhead(ctx: ServeContext): void {
  if (ctx.config.freshness !== 'stat' || !ctx.native || ctx.statsAhead) return;
  ctx.statsAhead = FreshAhead.start(ctx.store, ctx.native);
  if (ctx.statsAhead) ctx.burst.on('chain', () => endStatsAhead(ctx));
}

/** The chain of loads the stats were made for is over: later loads stat their files when they load. */
export function endStatsAhead(ctx: ServeContext): void {
  ctx.statsAhead?.stop();
  ctx.statsAhead = undefined;
}

/** Is the entry's file unchanged since packing (per the freshness mode)? Stale ones are counted. */
export function checkFresh(ctx: ServeContext, entry: Entry, filename: string): boolean {
  const { state, debug } = ctx;
  const ahead = ctx.statsAhead;
  let verdict: number | undefined;
  if (ahead) {
    const before = ahead.madeAhead;
    verdict = ahead.verdict(entry);
    if (ahead.madeAhead > before) state.counters.statsAhead++;
  }
  verdict ??= freshness(entry, filename, ctx.config.freshness, ctx.native);
  if (verdict === FRESH) return true;
  if (verdict === FRESH_SAME_CONTENT) {
    state.counters.timeOnly++;
    return true;
  }
  state.counters.stale++;
  debug(`stale (${staleReason(verdict)}), loading from disk: ${filename}`);
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
