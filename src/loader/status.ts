/**
 * The loader's state and counters, one per thread, kept on a global symbol so that every copy of
 * codeblob in the process (an app and a library each bundling one) sees and reuses the same.
 */
import type { BackendName } from '../store/backend.js';
import type { FreshnessMode, LoaderConfig } from './config.js';

export type { FreshnessMode } from './config.js';

export interface LoaderCounters {
  /** CommonJS modules compiled from the blob. */
  hits: number;
  /** JSON modules parsed from the blob. */
  jsonHits: number;
  /** ES modules whose source came from the blob. */
  esmHits: number;
  /** Modules loaded from disk because the blob has no entry for them. */
  misses: number;
  /** Modules loaded from disk because the file changed since packing (or a hook transformed it). */
  stale: number;
  /** Caches V8 refused (another V8 version or flags): the module still compiled from the blob's source. */
  cacheRejected: number;
  /** Modules compiled from the blob's source without a cache (none stored, or unusable here). */
  noCache: number;
  /** Entries refused because their hash check failed (loaded from disk instead). */
  corrupt: number;
  /** Modules handed back to Node because the blob path could not reproduce Node's behaviour (source maps, compile errors). */
  deferred: number;
  /** Strings whose characters Node copied into the heap instead of keeping them external. */
  stringsCopied: number;
  /** Sections (source or cache) the background thread had hash-checked before they were needed. */
  verifiedAhead: number;
  /** Startup modules whose file stat (verify=stat) the background thread had made before they loaded. */
  statsAhead: number;
  /** 1 once the blob was found written in place since it was opened: from then on, disk only. */
  modified: number;
  /** require()/require.resolve() calls answered from the blob's resolution table. */
  resolveHits: number;
  /** Calls the table does not hold (or cannot answer as Node would): Node resolved them. */
  resolveMisses: number;
  /** Recorded answers not used because a file or directory they depend on changed: Node resolved them. */
  resolveStale: number;
  /**
   * Modules whose file's mtime changed since packing but whose content did not (read and
   * hashed): served from the blob. A copy that does not keep times (`cp -r`) makes every one so.
   */
  timeOnly: number;
  /** Table answers used although a file or folder they rest on has a new mtime: its content or listing was checked and found unchanged. */
  resolveTimeOnly: number;
}

export interface LoaderStatus {
  /** Loading from a blob is on in this thread. */
  enabled: boolean;
  /** Why it is off, or a note about a partial mode; undefined when fully on. */
  reason: string | undefined;
  file: string | undefined;
  backend: BackendName | undefined;
  /** The code caches are usable by this Node (same V8 tag, arch, platform). */
  cachesUsable: boolean;
  /** How each module's file is checked for changes since packing (config.freshness, CODEBLOB_VERIFY). */
  verify: FreshnessMode;
  /** Every CODEBLOB_* setting as this thread read it (undefined before register ran). */
  config: LoaderConfig | undefined;
  /** How ES modules are loaded in this process. */
  esm: 'blob' | 'disk';
  esmReason: string | undefined;
  /** Whether require() resolutions come from the blob's table, and why not. */
  resolve: 'blob' | 'disk';
  resolveReason: string | undefined;
  counters: LoaderCounters;
  /** register ran in this thread (successfully or not). */
  attempted?: boolean;
}

const KEY = Symbol.for('codeblob.loader.status');

export function newCounters(): LoaderCounters {
  return {
    hits: 0, jsonHits: 0, esmHits: 0, misses: 0, stale: 0, cacheRejected: 0, noCache: 0,
    corrupt: 0, deferred: 0, stringsCopied: 0, verifiedAhead: 0, statsAhead: 0, modified: 0, resolveHits: 0, resolveMisses: 0, resolveStale: 0,
    timeOnly: 0, resolveTimeOnly: 0,
  };
}

/** The status record of this thread, created on first use. */
export function loaderState(): LoaderStatus {
  const g = globalThis as unknown as Record<symbol, LoaderStatus | undefined>;
  g[KEY] ??= {
    enabled: false,
    reason: 'codeblob/register was not loaded in this thread',
    file: undefined,
    backend: undefined,
    cachesUsable: false,
    verify: 'stat',
    config: undefined,
    esm: 'disk',
    esmReason: undefined,
    resolve: 'disk',
    resolveReason: undefined,
    counters: newCounters(),
  };
  return g[KEY];
}

const STORE = Symbol.for('codeblob.loader.store');

/** Remembers the loader's store (non-enumerable) so status() can read its string counters. */
type StoreCounters = { counters(): { stringsCopied: number; verifiedAhead: number }; closed?: boolean };

export function attachStore(state: LoaderStatus, store: StoreCounters): void {
  Object.defineProperty(state, STORE, { value: store, enumerable: false, configurable: true });
}

function refresh(s: LoaderStatus): void {
  const store = (s as unknown as Record<symbol, StoreCounters | undefined>)[STORE];
  if (store && !store.closed) {
    const stats = store.counters();
    s.counters.stringsCopied = stats.stringsCopied;
    s.counters.verifiedAhead = stats.verifiedAhead;
  }
}

/** A snapshot of what the loader did in this thread (copies; safe to keep). */
export function status(): LoaderStatus {
  const s = loaderState();
  refresh(s);
  const { attempted: _attempted, ...rest } = s;
  return { ...rest, counters: { ...s.counters }, config: s.config && { ...s.config } };
}

/** One human line, for NODE_DEBUG and CODEBLOB_STATUS. */
export function statusLine(s: LoaderStatus = loaderState()): string {
  refresh(s);
  const c = s.counters;
  if (!s.enabled) return `codeblob: off (${s.reason})`;
  return (
    `codeblob: on (${s.backend}, verify=${s.verify}, esm from ${s.esm}) ${s.file}: ` +
    `${c.hits} cjs + ${c.jsonHits} json + ${c.esmHits} esm from blob` + (c.timeOnly ? ` (${c.timeOnly} with a new mtime, same content)` : '') + `, ${c.misses} not in blob, ` +
    `${c.stale} stale, ${c.cacheRejected} caches rejected, ${c.noCache} without cache, ` +
    `${c.corrupt} corrupt, ${c.deferred} deferred to Node, ${c.stringsCopied} strings copied, ` +
    `${c.verifiedAhead} sections checked ahead; ` +
    (s.resolve === 'blob'
      ? `resolutions: ${c.resolveHits} from the table` + (c.resolveTimeOnly ? ` (${c.resolveTimeOnly} rechecked: new mtimes, same facts)` : '') + `, ${c.resolveMisses} not in it, ${c.resolveStale} stale`
      : `resolutions from disk (${s.resolveReason})`) +
    (c.modified ? ', blob modified in place: disk only since' : '') +
    (s.reason ? ` [${s.reason}]` : '')
  );
}
