/**
 * How codeblob compiles and runs a CommonJS module, shared by the packer's tracer (which
 * produces the caches) and the loader (which consumes them): both must compile the very same
 * text with the very same origin, or V8 rejects the cache.
 *
 * From V8 12 (Node 22) the text is CJS_PREFIX + source + CJS_SUFFIX, compiled as a `vm.Script`
 * so a cache can be made *after* the module ran (lazily compiled functions included), with
 * `columnOffset: -CJS_PREFIX.length` so line-1 columns are the file's own.
 *
 * On V8 11 (Node 20) a script compiled with `vm.Script` stays in V8's per-isolate compilation
 * cache, strongly: the module's whole top-level bytecode with it, for the life of the process
 * (measured: 7.6 MiB more bytecode on a 10,000-module app; 15.9 vs 0.1 MiB on 2,000 generated
 * modules). Node 20's own CommonJS loader compiles with `vm.compileFunction`, which that cache
 * does not keep, and so does codeblob there: the source alone, as a function with Node's five
 * parameters. Its cache is made late too: Node's JavaScript API makes a function's cache only
 * at compile time, the addon asks V8 for it after the module ran (functionCache).
 *
 * Running goes through Node's own `Module.prototype._compile` with a one-line stub: Node
 * builds `require` (with `require.resolve`, hooks, `require.main` ...), tracks the module as
 * executing and handles `--inspect-brk` exactly as for any module, and the stub calls the
 * function compiled here with the arguments Node made. The cost is one extra stack frame,
 * `codeblob:1`, between the module and `Module._compile`.
 */
import { dirname } from 'node:path';
import vm from 'node:vm';
import { CJS_PREFIX, CJS_SUFFIX } from '../format/index.js';
import { native } from '../native/binding.js';

type ModuleFunction = (
  this: unknown,
  exports: unknown,
  require: unknown,
  module: unknown,
  __filename: string,
  __dirname: string,
) => unknown;

const RUN = Symbol.for('codeblob.run');
// Node compiles this (tiny) module text itself, once per module (Node 20 spends ~15-20 us on
// it, so it is kept short); it calls the function compiled from the blob with the arguments
// Node made, and the filename/dirname stashed for it. The stash is one slot of this thread's
// global object, not a property of the module: the stub reads it before the module runs (and
// before a nested require can stash again), and nothing is added to or deleted from the module.
const STUB = "const r=globalThis[Symbol.for('codeblob.run')];return r.fn.call(this,exports,require,module,r.filename,r.dirname)";
const STUB_NAME = 'node:codeblob';

/** The stored form of a CommonJS source: wrapped, with a leading "#!" turned into "//". */
export function wrapCjs(text: string): string {
  return CJS_PREFIX + (text.startsWith('#!') ? '//' + text.slice(2) : text) + CJS_SUFFIX;
}

/** What this Node compiles for a CommonJS source (see compileCjs): its wrapped form, or itself. */
export function cjsText(source: string): string {
  return compilesAsFunction ? source : wrapCjs(source);
}

const importDefault = (vm.constants as unknown as { USE_MAIN_CONTEXT_DEFAULT_LOADER?: unknown } | undefined)
  ?.USE_MAIN_CONTEXT_DEFAULT_LOADER;

let primed = false;
/**
 * Node prints an ExperimentalWarning the first time `import()` runs in a script compiled with
 * USE_MAIN_CONTEXT_DEFAULT_LOADER. A plain run prints no such thing, so spend that one-time
 * warning here, silently, before any module of the app can trigger it.
 */
function primeDynamicImport(): void {
  if (primed || importDefault === undefined) return;
  primed = true;
  const emitWarning = process.emitWarning;
  process.emitWarning = () => {};
  try {
    const p = new vm.Script('import("node:path")', {
      filename: 'codeblob:prime',
      importModuleDynamically: importDefault as never,
    }).runInThisContext() as Promise<unknown>;
    p.catch(() => {});
  } catch {
    // Nothing to spend: this Node does not warn.
  } finally {
    process.emitWarning = emitWarning;
  }
}

/** A CommonJS module compiled from its text, ready to run. */
export interface CompiledCjs {
  fn: ModuleFunction;
  /** V8 refused the cache it was given. */
  cacheRejected: boolean;
  /** The source map its text names, if any (`//# sourceMappingURL=`). */
  sourceMapURL: string | undefined;
  /** Its code cache as it stands now: after it ran (from V8 12), or as compiled (V8 11). */
  cache(): Uint8Array;
}

/** V8 11 (Node 20): compile with vm.compileFunction (see the file comment). */
export const compilesAsFunction = Number(process.versions.v8.split('.')[0]) < 12;

const PARAMS = ['exports', 'require', 'module', '__filename', '__dirname'];
const SOURCE_MAP = /\/\/[#@] sourceMappingURL=([^\s'"]+)\s*$/;

let lateWorks: boolean | undefined;
/**
 * Can the addon make a function's cache late here (functionCache), and does V8 take it back?
 * Checked once per process, on a function that ran and has an inner function compiled since.
 */
function lateFunctionCacheWorks(): boolean {
  if (lateWorks !== undefined) return lateWorks;
  lateWorks = false;
  const binding = native();
  if (!binding) return lateWorks;
  try {
    const body = 'exports.f = function (x) { return [x].map((y) => y + 1)[0]; };';
    const fn = vm.compileFunction(body, PARAMS, { filename: 'codeblob:probe' }) as unknown as ModuleFunction;
    const exports: { f?: (x: number) => number } = {};
    fn.call(exports, exports, undefined, undefined, '', '');
    if (exports.f?.(1) !== 2) return lateWorks;
    const cache = binding.functionCache(fn);
    if (!cache) return lateWorks;
    const again = vm.compileFunction(body, PARAMS, { filename: 'codeblob:probe', cachedData: cache }) as unknown as { cachedDataRejected?: boolean };
    lateWorks = again.cachedDataRejected === false;
  } catch {
    lateWorks = false;
  }
  return lateWorks;
}

/**
 * Compiles a CommonJS module, optionally with a code cache (or making one, for the packer).
 * `text` is what this Node compiles (`cjsText`): the wrapped unit from V8 12, the source itself
 * on V8 11.
 */
export function compileCjs(text: string, filename: string, cachedData?: Buffer, produceCache = false): CompiledCjs {
  primeDynamicImport();
  if (compilesAsFunction) {
    const body = text;
    // The packer takes the cache late, from the addon (lateFunctionCache); at compile time only where it cannot.
    const late = produceCache && lateFunctionCacheWorks();
    const options: vm.CompileFunctionOptions & { importModuleDynamically?: unknown } = { filename, produceCachedData: produceCache && !late && cachedData === undefined };
    if (cachedData) options.cachedData = cachedData;
    if (importDefault !== undefined) options.importModuleDynamically = importDefault as never;
    const fn = vm.compileFunction(body, PARAMS, options as vm.CompileFunctionOptions) as unknown as ModuleFunction & { cachedDataRejected?: boolean; cachedData?: Buffer };
    const tail = body.length > 2048 ? body.slice(-2048) : body;
    return {
      fn,
      cacheRejected: fn.cachedDataRejected === true,
      sourceMapURL: SOURCE_MAP.exec(tail)?.[1],
      cache: () => (late ? native()!.functionCache(fn) : undefined) ?? fn.cachedData ?? new Uint8Array(0),
    };
  }
  const options: vm.ScriptOptions = { filename, columnOffset: -CJS_PREFIX.length };
  if (cachedData) options.cachedData = cachedData;
  if (importDefault !== undefined) options.importModuleDynamically = importDefault as never;
  const script = new vm.Script(text, options);
  return {
    fn: script.runInThisContext() as ModuleFunction,
    cacheRejected: script.cachedDataRejected === true,
    sourceMapURL: script.sourceMapURL,
    cache: () => script.createCachedData(),
  };
}

/**
 * Prepares a compiled module to run through Node's original `_compile` (see the file comment):
 * the caller then does `originalCompile.call(module, STUB, STUB_NAME, 'commonjs')` itself (so
 * no frame of ours sits between Node's `_compile` and the hook) and `unstash()` after.
 */
export function stash(fn: ModuleFunction, filename: string): void {
  (globalThis as unknown as Record<symbol, unknown>)[RUN] = { fn, filename, dirname: dirname(filename) };
}

export function unstash(): void {
  (globalThis as unknown as Record<symbol, unknown>)[RUN] = undefined;
}

export { STUB, STUB_NAME };
