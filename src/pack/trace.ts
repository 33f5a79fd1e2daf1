/**
 * The packer's tracer: preloaded (`--require`) into the child process that runs the app's entry.
 * It compiles every CommonJS module the app loads exactly as the loader will (cjs-compile.ts),
 * records JSON and ES modules, and once the app is done (exit, idle, or `settleMs`), optionally
 * after a training script, writes each module's code cache — made late, so it includes the
 * functions the run compiled lazily — to the file the parent named.
 *
 * Configured by CODEBLOB_TRACE (JSON, see TraceConfig); removed from the environment at once so
 * the app's own children are not traced.
 */
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cachedDataVersionTag } from 'node:v8';
import type vm from 'node:vm';
import { Packr } from 'msgpackr';
import { mayCallImport } from './dynamic-import.js';
import { Module, STUB, STUB_NAME, compileCjs, stash, unstash, wrapCjs, type CompileFn, type NodeModuleLike } from '../loader/cjs-compile.js';
import { defaultLookupPaths, isRelativeRequest, plainOptions, resolutionEnvironment, tableRequest } from '../loader/resolve-env.js';

export interface TraceConfig {
  /** Where to write the results (msgpack). */
  out: string;
  /** Stop this long after start even if the app is still running (servers). 0: wait for exit. */
  settleMs: number;
  /** A script to require once the app has settled; an exported function is called and awaited. */
  train?: string;
  /** Files to compile without running (absolute paths). */
  include: string[];
  /** A file descriptor to write progress lines to, if any. */
  progressFd?: number;
}

export interface TracedModule {
  filename: string;
  kind: 'cjs' | 'esm' | 'json' | 'asset';
  /** Text as compiled (cjs) or loaded (esm, json); absent for assets. */
  text?: string;
  cache?: Uint8Array;
  /** First-load order; -1 for included files. */
  order: number;
  /** Why an included file has no cache, if it failed to compile. */
  warning?: string;
}

export interface TraceResult {
  v8Tag: number;
  /** The app changed V8 flags while traced: no caches were kept (they would be rejected). */
  flagsChanged?: boolean;
  nodeVersion: string;
  modules: TracedModule[];
  /** Every plain resolution the run made: [requesting module's directory, request, filename]. */
  resolutions: [string, string, string][];
  /** resolutionEnvironment() of the traced process. */
  resolveEnv: string;
  exitCode: number;
}

const config = JSON.parse(process.env.CODEBLOB_TRACE ?? 'null') as TraceConfig | null;
// The tag workers will have: taken now, before the app can change V8 flags at run time.
const startTag = cachedDataVersionTag();
delete process.env.CODEBLOB_TRACE;

interface Record {
  kind: TracedModule['kind'];
  text?: string;
  script?: vm.Script;
  order: number;
}

const records = new Map<string, Record>();
let order = 0;
const resolutions = new Map<string, [string, string, string]>();

function progress(): void {
  if (config?.progressFd === undefined || records.size % 50 !== 0) return;
  try {
    writeSync(config.progressFd, `${records.size}\n`);
  } catch {
    // The parent stopped listening; progress is only cosmetic.
  }
}

function record(filename: string, r: Omit<Record, 'order'>): void {
  if (records.has(filename)) return;
  records.set(filename, { ...r, order: order++ });
  progress();
}

function install(): void {
  const originalCompile = Module.prototype._compile;
  Module.prototype._compile = function tracedCompile(this: NodeModuleLike, content, filename, format) {
    if (format === 'module' && typeof content === 'string') {
      // An ES module loaded through require(esm): Node hands its source to _compile.
      record(filename, { kind: 'esm', text: content });
    }
    if (format !== undefined && format !== 'commonjs') return originalCompile.call(this, content, filename, format);
    let fn;
    let script;
    try {
      script = compileCjs(wrapCjs(content), filename);
      fn = script.runInThisContext();
    } catch {
      // Not valid CommonJS (maybe ESM syntax Node will detect): let Node decide and report.
      return originalCompile.call(this, content, filename, format);
    }
    record(filename, { kind: 'cjs', text: content, script });
    stash(fn as never, filename);
    try {
      return originalCompile.call(this, STUB, STUB_NAME, 'commonjs');
    } finally {
      unstash();
    }
  } satisfies CompileFn;

  const json = Module._extensions['.json']!;
  Module._extensions['.json'] = function tracedJson(module, filename) {
    json(module, filename);
    record(filename, { kind: 'json' });
  };

  installResolveTrace();
  installEsmTrace();
}

/**
 * Records what plain `require()` / `require.resolve()` calls resolved to, for the blob's
 * resolution table: only calls the loader can answer the same way (a file module asking, not
 * the main module, no `paths`/`conditions` options, the module's lookup paths untouched).
 */
function installResolveTrace(): void {
  const M = Module as unknown as { _resolveFilename: (...args: unknown[]) => unknown };
  const original = M._resolveFilename;
  M._resolveFilename = function tracedResolveFilename(this: unknown, request: unknown, parent: unknown, isMain: unknown, options: unknown) {
    const filename = original.call(this, request, parent, isMain, options);
    const p = parent as { filename?: unknown; path?: unknown; paths?: unknown } | undefined;
    if (
      !isMain && tableRequest(request) && plainOptions(options) && typeof filename === 'string' && isAbsolute(filename) &&
      typeof p?.filename === 'string' && typeof p.path === 'string' && p.path === dirname(p.filename) &&
      (isRelativeRequest(request) || isAbsolute(request) || defaultLookupPaths(p.path, p.paths))
    ) {
      const key = `${p.path}\0${request}`;
      if (!resolutions.has(key)) resolutions.set(key, [p.path, request, filename]);
    }
    return filename;
  };
}

function installEsmTrace(): void {
  const mod = createRequire(import.meta.url)('node:module') as {
    registerHooks?: (hooks: {
      load: (url: string, context: unknown, next: (url: string, context: unknown) => { format?: string; source?: unknown }) => unknown;
    }) => unknown;
  };
  if (typeof mod.registerHooks !== 'function') return; // Node < 22.15: ES modules are not traced.
  mod.registerHooks({
    load(url, context, next) {
      const result = next(url, context);
      if (url.startsWith('file:') && result.format === 'module') {
        record(fileURLToPath(url), { kind: 'esm' });
      }
      return result;
    },
  });
}

/** Compile an included file without running it, in the same process so the cache tag matches. */
function compileIncluded(filename: string): TracedModule {
  const ext = extname(filename);
  if (ext === '.json') return { filename, kind: 'json', order: -1 };
  if (ext === '.mjs') return { filename, kind: 'esm', order: -1 };
  if (ext !== '.js' && ext !== '.cjs') return { filename, kind: 'asset', order: -1 };
  if (ext === '.js' && packageType(filename) === 'module') return { filename, kind: 'esm', order: -1 };
  const text = readFileSync(filename, 'utf8');
  try {
    const script = compileCjs(wrapCjs(text), filename);
    if (!shouldCache(text)) return { filename, kind: 'cjs', text, order: -1 };
    return { filename, kind: 'cjs', text, cache: script.createCachedData(), order: -1 };
  } catch (error) {
    return { filename, kind: 'cjs', text, order: -1, warning: `not compiled: ${(error as Error).message}` };
  }
}

function packageType(filename: string): string | undefined {
  let dir = resolve(filename, '..');
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(resolve(dir, 'package.json'), 'utf8')) as { type?: string };
      return pkg.type;
    } catch {
      const parent = resolve(dir, '..');
      if (parent === dir || dir.endsWith('/node_modules')) return undefined;
      dir = parent;
    }
  }
}

// See dynamic-import.ts: on Node 20 a cached script cannot call import().
const cacheBreaksDynamicImport = Number(process.versions.node.split('.')[0]) < 22;

function shouldCache(text: string | undefined): boolean {
  return !(cacheBreaksDynamicImport && text !== undefined && mayCallImport(text));
}

let dumped = false;
function dump(exitCode: number): void {
  if (dumped || !config) return;
  dumped = true;
  const modules: TracedModule[] = [];
  for (const [filename, r] of records) {
    const m: TracedModule = { filename, kind: r.kind, order: r.order };
    if (r.text !== undefined) m.text = r.text;
    if (r.script && shouldCache(r.text)) m.cache = r.script.createCachedData();
    modules.push(m);
  }
  for (const filename of config.include) {
    if (!records.has(filename)) modules.push(compileIncluded(filename));
  }
  // An app that changes V8 flags at run time (v8.setFlagsFromString) changes the tag the caches
  // are made with: workers, which start without that change, would reject every one of them.
  const flagsChanged = cachedDataVersionTag() !== startTag;
  if (flagsChanged) for (const m of modules) delete m.cache;
  const result: TraceResult = {
    v8Tag: startTag, nodeVersion: process.version, modules, exitCode, flagsChanged,
    resolutions: [...resolutions.values()], resolveEnv: resolutionEnvironment(),
  };
  const fd = openSync(config.out, 'w');
  try {
    const bytes = new Packr({ useRecords: false }).pack(result);
    for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done);
  } finally {
    closeSync(fd);
  }
}

async function train(): Promise<void> {
  if (!config?.train) return;
  const loaded = (await import(pathToFileURL(config.train).href)) as { default?: unknown };
  const fn = typeof loaded.default === 'function' ? loaded.default : undefined;
  if (fn) await (fn as () => unknown)();
}

let finishing = false;
function finish(): void {
  if (finishing) return;
  finishing = true;
  train().then(
    () => {
      dump(0);
      process.exit(0);
    },
    (error: unknown) => {
      process.stderr.write(`codeblob pack: the training script failed: ${(error as Error)?.stack ?? String(error)}\n`);
      process.exitCode = 70;
      dump(70);
      process.exit(70);
    },
  );
}

if (config) {
  install();
  // An app that ends by itself is traced to its end; a server is stopped after settleMs.
  process.on('beforeExit', () => (config.train ? finish() : undefined));
  process.on('exit', (code) => dump(code));
  if (config.settleMs > 0) setTimeout(finish, config.settleMs).unref();
}
