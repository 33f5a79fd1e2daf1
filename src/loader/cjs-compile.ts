/**
 * How codeblob compiles and runs a CommonJS module, shared by the packer's tracer (which
 * produces the caches) and the loader (which consumes them): both must compile the very same
 * text with the very same origin, or V8 rejects the cache.
 *
 * The text is CJS_PREFIX + source + CJS_SUFFIX, compiled as a `vm.Script` so a cache can be
 * made *after* the module ran (lazily compiled functions included), with `columnOffset:
 * -CJS_PREFIX.length` so line-1 columns are the file's own.
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

/** Compiles a wrapped CommonJS text (from `wrapCjs` or the blob), optionally with a cache. */
export function compileCjs(unit: string, filename: string, cachedData?: Buffer): vm.Script {
  primeDynamicImport();
  const options: vm.ScriptOptions = { filename, columnOffset: -CJS_PREFIX.length };
  if (cachedData) options.cachedData = cachedData;
  if (importDefault !== undefined) options.importModuleDynamically = importDefault as never;
  return new vm.Script(unit, options);
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
