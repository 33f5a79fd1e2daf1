/**
 * The CommonJS side of the loader. Two small patches on Node's own loader, nothing re-implemented:
 *
 * - `Module._extensions['.js' | '.json']`: for a file the blob has (and that is still
 *   fresh), hand `module._compile` the blob's source (an external string) instead of reading
 *   the file; JSON is parsed straight from the mapped text. Anything else goes to Node's
 *   handler untouched.
 * - `Module.prototype._compile`: when the content is the blob's source — served above, or read
 *   from disk by Node and still identical — compile it from the blob with its code cache
 *   (cjs-compile.ts). Content that differs (a file changed after our check, or another tool's
 *   hook transformed it) goes to Node's `_compile` as is.
 *
 * Resolution, `require`, `module`, caching, `require.main` and every hook are Node's own.
 */
import { isMainThread } from 'node:worker_threads';
import { codeblobError } from '../errors.js';
import type { Entry } from '../format/index.js';
import type { BlobStore } from '../store/store.js';
import { Module, STUB, STUB_NAME, compileCjs, stash, unstash, type CompileFn, type NodeModuleLike } from './cjs-compile.js';
import { blobModified, checkFresh, freshText, type ServeContext } from './serve.js';
import type { LoaderStatus } from './status.js';

type ExtensionHandler = (module: NodeModuleLike, filename: string) => void;

/** require() of an ES module works (Node 20.19+, 22.12+): its source can come from the blob. */
const requireEsm = (process.features as { require_module?: boolean }).require_module === true;

/** Node ≥ 20 exposes whether --enable-source-maps (or setSourceMapsEnabled) is on. */
function sourceMapsEnabled(): boolean {
  return (process as { sourceMapsEnabled?: boolean }).sourceMapsEnabled === true;
}

export function installCjsHooks(store: BlobStore, state: LoaderStatus, debug: (msg: string) => void): void {
  const c = state.counters;
  const originalCompile = Module.prototype._compile;
  const release = store.backend === 'mmap' && process.env.CODEBLOB_KEEP_PAGES !== '1';
  let releaseScheduled = false;
  /**
   * Once a burst of loading is over, drop the blob's pages from this process's page tables:
   * V8 has deserialized the caches into its heap, and the source pages were mostly read only
   * for their hash check. They stay in the page cache (one copy, shared by every worker); V8
   * faults back in only the source it reads again (lazily compiled functions, stack traces).
   * One call for the whole file after the burst costs far less than one per module.
   */
  function scheduleRelease(): void {
    if (releaseScheduled) return;
    releaseScheduled = true;
    // In a worker thread the burst ends at the next microtask: a pool that blocks its threads
    // in Atomics.wait between tasks (piscina's default) runs nothing else there, and the pages
    // would stay mapped in the process for good. The main thread waits for setImmediate, which
    // also lets promise-driven loading finish first.
    if (isMainThread) setImmediate(endOfBurst).unref();
    else queueMicrotask(endOfBurst);
  }
  function endOfBurst(): void {
    releaseScheduled = false;
    if (store.closed) return;
    // The startup burst is over: whatever the background check has not reached yet is
    // checked on first use. If its thread is still finishing a section, release once more
    // when it has ended, so no page it faulted in stays.
    store.stopVerifyAhead();
    store.advise('dontneed');
    if (store.verifyAheadProgress()?.running) releaseAfterCheck(50);
  }
  function releaseAfterCheck(tries: number): void {
    setTimeout(() => {
      if (store.closed) return;
      if (store.verifyAheadProgress()?.running && tries > 1) return releaseAfterCheck(tries - 1);
      store.advise('dontneed');
    }, 5).unref();
  }
  // The source the extension handler just handed to module._compile, to recognise it there.
  let served: { filename: string; source: string } | undefined;

  const ctx: ServeContext = { store, state, debug };

  function lookup(filename: string, kinds: readonly Entry['kind'][]): Entry | undefined {
    if (blobModified(ctx)) return undefined;
    const entry = store.get(filename);
    if (!entry) {
      c.misses++;
      debug(`not in the blob: ${filename}`);
      return undefined;
    }
    return kinds.includes(entry.kind) ? entry : undefined;
  }

  // Entries handed to Node (stale, corrupt, deferred), so _compile does not count them twice.
  const toDisk = new Set<Entry>();

  /** The blob's text of a fresh entry, or undefined (counted) when it must come from disk. */
  function freshSource(entry: Entry, filename: string): string | undefined {
    const text = freshText(ctx, entry, filename);
    if (text === undefined) toDisk.add(entry);
    return text;
  }

  const DEFER = Symbol('defer');

  /**
   * Compiles and runs a fresh CommonJS entry from the blob. Returns DEFER (counted) when Node
   * must compile it itself: a corrupt section, a source map to register, a compile error.
   */
  function runFromBlob(module: NodeModuleLike, entry: Entry, filename: string): unknown {
    let fn: unknown;
    try {
      let cache: Buffer | undefined;
      try {
        cache = store.cacheView(entry);
      } catch (error) {
        c.corrupt++;
        debug(`cache refused for ${filename}: ${(error as Error).message}`);
      }
      let unit: string;
      try {
        unit = store.compileSource(entry);
      } catch (error) {
        c.corrupt++;
        toDisk.add(entry);
        debug(`refused ${filename}: ${(error as Error).message}`);
        return DEFER;
      }
      const script = compileCjs(unit, filename, cache);
      if (script.sourceMapURL && sourceMapsEnabled()) {
        // Node registers source maps inside its own compile; let it, for this module.
        c.deferred++;
        toDisk.add(entry);
        return DEFER;
      }
      if (cache === undefined) c.noCache++;
      else if (script.cachedDataRejected) c.cacheRejected++;
      fn = script.runInThisContext();
      if (release) scheduleRelease();
    } catch (error) {
      // A syntax error (or anything odd): Node's own compile reports it exactly as it would.
      c.deferred++;
      toDisk.add(entry);
      debug(`deferred to Node: ${filename}: ${(error as Error).message}`);
      return DEFER;
    }
    c.hits++;
    stash(fn as never, filename);
    try {
      return originalCompile.call(module, STUB, STUB_NAME, 'commonjs');
    } finally {
      unstash();
    }
  }

  // Node registers no '.cjs' or '.mjs' handler: '.js' serves them all (20 to 26).
  const originalJs = Module._extensions['.js'] as ExtensionHandler;
  Module._extensions['.js'] = function codeblobLoadJs(module: NodeModuleLike, filename: string) {
    const entry = lookup(filename, requireEsm ? ['cjs', 'esm'] : ['cjs']);
    if (!entry) return originalJs(module, filename);
    const compile = (module as NodeModuleLike & { _compile: CompileFn })._compile;
    if (entry.kind === 'cjs' && compile === codeblobCompile) {
      // Nobody wraps this module's _compile: go straight to the blob, without making a
      // string of the unwrapped text that nothing would read.
      if (!checkFresh(ctx, entry, filename)) {
        toDisk.add(entry);
        return originalJs(module, filename);
      }
      const result = runFromBlob(module, entry, filename);
      if (result === DEFER) return originalJs(module, filename);
      return;
    }
    const source = freshSource(entry, filename);
    if (source === undefined) return originalJs(module, filename);
    if (entry.kind === 'esm') {
      // require(esm): Node's handler would read the file and pass its source to _compile
      // with format 'module'; hand it the blob's source instead.
      compile.call(module, source, filename, 'module');
      c.esmHits++;
      return;
    }
    // Another tool wraps module._compile (a transform hook): hand it the text, as Node would.
    served = { filename, source };
    try {
      compile.call(module, source, filename, filename.endsWith('.cjs') ? 'commonjs' : undefined);
    } finally {
      served = undefined;
    }
  } as never;

  const codeblobCompile = function codeblobCompile(this: NodeModuleLike, content: string, filename: string, format?: string) {
    if ((format !== undefined && format !== 'commonjs') || typeof content !== 'string') {
      return originalCompile.call(this, content, filename, format);
    }
    const mine = served !== undefined && served.filename === filename && served.source === content;
    served = undefined;
    const entry = c.modified ? undefined : store.get(filename);
    if (!entry || entry.kind !== 'cjs' || toDisk.has(entry)) return originalCompile.call(this, content, filename, format);
    if (!mine) {
      // Read from disk by Node (or given to us by another hook): use the blob only if identical.
      let source: string;
      try {
        source = store.source(entry);
      } catch {
        c.corrupt++;
        toDisk.add(entry);
        return originalCompile.call(this, content, filename, format);
      }
      if (source !== content) {
        c.stale++;
        debug(`content differs from the blob (changed or transformed): ${filename}`);
        return originalCompile.call(this, content, filename, format);
      }
    }
    const result = runFromBlob(this, entry, filename);
    return result === DEFER ? originalCompile.call(this, content, filename, format) : result;
  } satisfies CompileFn;
  Module.prototype._compile = codeblobCompile;


  const originalJson = Module._extensions['.json'] as ExtensionHandler;
  Module._extensions['.json'] = function codeblobLoadJson(module: NodeModuleLike, filename: string) {
    const entry = lookup(filename, ['json']);
    const source = entry && freshSource(entry, filename);
    if (source === undefined) return originalJson(module, filename);
    try {
      module.exports = JSON.parse(source.charCodeAt(0) === 0xfeff ? source.slice(1) : source);
    } catch (err) {
      (err as Error).message = filename + ': ' + (err as Error).message;
      throw err;
    }
    c.jsonHits++;
  } as never;
}

export function assertNoPolicy(): void {
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  if (flags.some((f) => f.startsWith('--experimental-policy') || f.startsWith('--policy-integrity'))) {
    throw codeblobError('ERR_CODEBLOB_INCOMPATIBLE', 'a Node policy manifest is active; it must see every module read from disk');
  }
}
