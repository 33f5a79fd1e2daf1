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
import { codeblobError } from '../errors.js';
import type { Entry } from '../format/index.js';
import { STUB, STUB_NAME, compileCjs, compilesAsFunction, stash, unstash } from './cjs-compile.js';
import { Module, requireEsm, type CompileFn, type ExtensionHandler, type NodeModuleLike } from './node-internals.js';
import { blobModified, checkFresh, freshText, type ServeContext } from './serve.js';
import { asLoadedAs, strippingAsPacked } from './typescript.js';

/** The CommonJS hooks' state, shared by their handlers. */
interface CjsContext extends ServeContext {
  /** Node's own `_compile`, which runs every module (ours through a stub). */
  originalCompile: CompileFn;
  /** The source the extension handler just handed to module._compile, to recognise it there. */
  served: { filename: string; source: string } | undefined;
  /** Entries handed to Node (stale, corrupt, deferred), so _compile does not count them twice. */
  toDisk: Set<Entry>;
  /** This process strips TypeScript as the packing one did: the blob's stripped entries may serve. */
  typescript: boolean;
}

/** Node must compile the module itself (counted where decided). */
const DEFER = Symbol('defer');

/** Node ≥ 20 exposes whether --enable-source-maps (or setSourceMapsEnabled) is on. */
function sourceMapsEnabled(): boolean {
  return (process as { sourceMapsEnabled?: boolean }).sourceMapsEnabled === true;
}

/** The blob's entry for a file being loaded, if it has one of these kinds (misses counted). */
function lookup(ctx: CjsContext, filename: string, kinds: readonly Entry['kind'][]): Entry | undefined {
  ctx.burst.noteLoad();
  if (blobModified(ctx)) return undefined;
  const entry = ctx.store.get(filename);
  if (!entry) {
    ctx.state.counters.misses++;
    ctx.debug(`not in the blob: ${filename}`);
    return undefined;
  }
  return kinds.includes(entry.kind) ? entry : undefined;
}

/** The blob's text of a fresh entry, or undefined (counted) when it must come from disk. */
function freshSource(ctx: CjsContext, entry: Entry, filename: string): string | undefined {
  const text = freshText(ctx, entry, filename);
  if (text === undefined) ctx.toDisk.add(entry);
  return text;
}

/** The entry's code cache (a view into the blob), or undefined when it has none or it is refused. */
function cacheOf(ctx: CjsContext, entry: Entry, filename: string): Buffer | undefined {
  try {
    return ctx.store.cacheView(entry);
  } catch (error) {
    ctx.state.counters.corrupt++;
    ctx.debug(`cache refused for ${filename}: ${(error as Error).message}`);
    return undefined;
  }
}

/** Hands a module to Node to compile, counted and remembered as such. */
function defer(ctx: CjsContext, entry: Entry, counter: 'deferred' | 'corrupt', why: string): typeof DEFER {
  ctx.state.counters[counter]++;
  ctx.toDisk.add(entry);
  ctx.debug(why);
  return DEFER;
}

/**
 * Compiles and runs a fresh CommonJS entry from the blob. Returns DEFER (counted) when Node
 * must compile it itself: a corrupt section, a source map to register, a compile error.
 */
function runFromBlob(ctx: CjsContext, module: NodeModuleLike, entry: Entry, filename: string): unknown {
  const c = ctx.state.counters;
  let fn: unknown;
  try {
    const cache = cacheOf(ctx, entry, filename);
    let text: string;
    try {
      // What this Node compiles (cjs-compile.ts): the source itself on V8 11, its wrapped form after.
      text = compilesAsFunction ? ctx.store.source(entry) : ctx.store.compileSource(entry);
    } catch (error) {
      return defer(ctx, entry, 'corrupt', `refused ${filename}: ${(error as Error).message}`);
    }
    const compiled = compileCjs(text, filename, cache);
    // Node registers source maps inside its own compile: let it, for this module.
    if (compiled.sourceMapURL && sourceMapsEnabled()) return defer(ctx, entry, 'deferred', `deferred to Node (source map): ${filename}`);
    if (cache === undefined) c.noCache++;
    else if (compiled.cacheRejected) c.cacheRejected++;
    fn = compiled.fn;
  } catch (error) {
    // A syntax error (or anything odd): Node's own compile reports it exactly as it would.
    return defer(ctx, entry, 'deferred', `deferred to Node: ${filename}: ${(error as Error).message}`);
  }
  c.hits++;
  stash(fn as never, filename);
  try {
    return ctx.originalCompile.call(module, STUB, STUB_NAME, 'commonjs');
  } finally {
    unstash();
  }
}

/** `Module._extensions['.js']` (Node registers no '.cjs' or '.mjs' handler: '.js' serves them all, 20 to 26). */
function loadJs(ctx: CjsContext, originalJs: ExtensionHandler, codeblobCompile: CompileFn): ExtensionHandler {
  return function codeblobLoadJs(module, filename) {
    const entry = lookup(ctx, filename, requireEsm ? ['cjs', 'esm'] : ['cjs']);
    if (!entry) return originalJs(module, filename);
    const compile = (module as NodeModuleLike & { _compile: CompileFn })._compile;
    if (entry.typescript && (!ctx.typescript || compile !== codeblobCompile)) {
      // Stripped as another Node or mode would not, or another tool wraps _compile (it must see
      // the TypeScript and its format, as from Node): Node loads and strips it.
      defer(ctx, entry, 'deferred', `deferred to Node (TypeScript ${ctx.typescript ? 'under a wrapped _compile' : 'stripped by another Node or mode'}): ${filename}`);
      return originalJs(module, filename);
    }
    if (entry.kind === 'cjs' && compile === codeblobCompile) {
      // Nobody wraps this module's _compile: go straight to the blob, without making a
      // string of the unwrapped text that nothing would read.
      if (!checkFresh(ctx, entry, filename)) {
        ctx.toDisk.add(entry);
        return originalJs(module, filename);
      }
      if (runFromBlob(ctx, module, entry, filename) === DEFER) return originalJs(module, filename);
      return;
    }
    let source = freshSource(ctx, entry, filename);
    if (source !== undefined && entry.typescript) {
      // Named as Node's CommonJS loader names what it strips (Node 22: the path).
      source = asLoadedAs(source, filename, 'require');
      if (source === undefined) defer(ctx, entry, 'deferred', `deferred to Node (TypeScript named otherwise): ${filename}`);
    }
    if (source === undefined) return originalJs(module, filename);
    if (entry.kind === 'esm') {
      // require(esm): Node's handler would read the file and pass its source to _compile
      // with format 'module'; hand it the blob's source instead.
      compile.call(module, source, filename, 'module');
      ctx.state.counters.esmHits++;
      return;
    }
    // Another tool wraps module._compile (a transform hook): hand it the text, as Node would.
    ctx.served = { filename, source };
    try {
      compile.call(module, source, filename, filename.endsWith('.cjs') ? 'commonjs' : undefined);
    } finally {
      ctx.served = undefined;
    }
  };
}

/** `Module.prototype._compile`: compiles from the blob whatever content is the blob's own. */
function compileHook(ctx: CjsContext): CompileFn {
  const { originalCompile } = ctx;
  return function codeblobCompile(this: NodeModuleLike, content: string, filename: string, format?: string) {
    if ((format !== undefined && format !== 'commonjs') || typeof content !== 'string') {
      return originalCompile.call(this, content, filename, format);
    }
    const mine = ctx.served !== undefined && ctx.served.filename === filename && ctx.served.source === content;
    ctx.served = undefined;
    const entry = ctx.state.counters.modified ? undefined : ctx.store.get(filename);
    // (TypeScript comes here from Node with its *-typescript format, or from another tool: never the blob's.)
    if (!entry || entry.kind !== 'cjs' || entry.typescript || ctx.toDisk.has(entry)) return originalCompile.call(this, content, filename, format);
    if (!mine && !sameAsBlob(ctx, entry, content, filename)) return originalCompile.call(this, content, filename, format);
    const result = runFromBlob(ctx, this, entry, filename);
    return result === DEFER ? originalCompile.call(this, content, filename, format) : result;
  };
}

/** Content Node read from disk (or another hook gave us): is it the blob's, to the character? */
function sameAsBlob(ctx: CjsContext, entry: Entry, content: string, filename: string): boolean {
  let source: string;
  try {
    source = ctx.store.source(entry);
  } catch {
    ctx.state.counters.corrupt++;
    ctx.toDisk.add(entry);
    return false;
  }
  if (source === content) return true;
  ctx.state.counters.stale++;
  ctx.debug(`content differs from the blob (changed or transformed): ${filename}`);
  return false;
}

/** `Module._extensions['.json']`: parsed straight from the mapped text. */
function loadJson(ctx: CjsContext, originalJson: ExtensionHandler): ExtensionHandler {
  return function codeblobLoadJson(module, filename) {
    const entry = lookup(ctx, filename, ['json']);
    const source = entry && freshSource(ctx, entry, filename);
    if (source === undefined) return originalJson(module, filename);
    try {
      module.exports = JSON.parse(source.charCodeAt(0) === 0xfeff ? source.slice(1) : source);
    } catch (err) {
      (err as Error).message = filename + ': ' + (err as Error).message;
      throw err;
    }
    ctx.state.counters.jsonHits++;
  };
}

export function installCjsHooks(serve: ServeContext): void {
  // One context object, shared with the ESM hook and the stats made ahead (serve.ts).
  const ctx: CjsContext = Object.assign(serve, {
    originalCompile: Module.prototype._compile,
    served: undefined,
    toDisk: new Set<Entry>(),
    typescript: strippingAsPacked(serve.store.header.nodeVersion),
  });
  const codeblobCompile = compileHook(ctx);
  Module._extensions['.js'] = loadJs(ctx, Module._extensions['.js']!, codeblobCompile);
  Module.prototype._compile = codeblobCompile;
  Module._extensions['.json'] = loadJson(ctx, Module._extensions['.json']!);
}

export function assertNoPolicy(): void {
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  if (flags.some((f) => f.startsWith('--experimental-policy') || f.startsWith('--policy-integrity'))) {
    throw codeblobError('ERR_CODEBLOB_INCOMPATIBLE', 'a Node policy manifest is active; it must see every module read from disk');
  }
}
