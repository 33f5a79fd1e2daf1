/**
 * The packer's tracer: preloaded (`--require`) into the child process that runs the app's entry,
 * and, through Node's preload inheritance, into every worker thread the app starts. It compiles
 * every CommonJS module the app loads exactly as the loader will (cjs-compile.ts), records JSON
 * and ES modules, and writes what it saw to the files the parent named:
 *
 * - the main thread, once the app is done (exit, settled, or after the training script), with
 *   each module's code cache made late, so it includes the functions the run compiled lazily;
 * - each worker thread, appended after every burst of loading (a worker may be blocked or
 *   terminated at any time, so nothing waits for its end).
 *
 * Modules only the training script brought in (the script itself, and whatever it loaded that
 * the app had not) are left out: a training script is tooling, and may hold secrets.
 *
 * Configured by CODEBLOB_TRACE (JSON, see TraceConfig), removed from the environment at once so
 * the app's child processes are not traced; worker threads get it as environment data.
 */
import { appendFileSync, closeSync, openSync, readFileSync, realpathSync, writeSync } from 'node:fs';
import nodeModule, { createRequire } from 'node:module';
import { dirname, extname, isAbsolute, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cachedDataVersionTag } from 'node:v8';
import { getEnvironmentData, isMainThread, setEnvironmentData, threadId } from 'node:worker_threads';
import { Packr } from 'msgpackr';
import { mayReachImport } from './dynamic-import.js';
import { entryHash } from '../format/hash.js';
import { STUB, STUB_NAME, cjsText, compileCjs, stash, unstash, type CompiledCjs } from '../loader/cjs-compile.js';
import { Module, registerHooks, type CompileFn, type NodeModuleLike } from '../loader/node-internals.js';
import { conditionsKey, defaultLookupPaths, isRelativeRequest, plainOptions, resolutionEnvironment, tableImportSpecifier, tableRequest } from '../loader/resolve-env.js';

import { sourceUrlOf, underNodeModules, type LoadedThrough } from '../loader/typescript.js';
import { threadFile, type TraceConfig, type TracedModule, type TraceProgress, type TraceResult } from './trace-protocol.js';

const ENV_KEY = 'codeblob.trace';

function readConfig(): TraceConfig | null {
  if (!isMainThread) {
    const raw = getEnvironmentData(ENV_KEY);
    return typeof raw === 'string' ? (JSON.parse(raw) as TraceConfig) : null;
  }
  const raw = process.env.CODEBLOB_TRACE;
  delete process.env.CODEBLOB_TRACE;
  if (!raw) return null;
  setEnvironmentData(ENV_KEY, raw);
  return JSON.parse(raw) as TraceConfig;
}

const config = readConfig();
// The tag workers will have: taken now, before the app can change V8 flags at run time.
const startTag = cachedDataVersionTag();
const packr = new Packr({ useRecords: false });

interface Record {
  kind: TracedModule['kind'];
  text?: string;
  /** `text` is the file's stripped TypeScript. */
  typescript?: boolean;
  /** The hash (entryHash) of the TypeScript that was stripped, as UTF-8. */
  strippedFrom?: Uint8Array;
  compiled?: CompiledCjs;
  order: number;
  /** The module whose request first resolved to this file, if known. */
  parent?: string;
  /** An ES module first loaded through require(esm), not `import`. */
  requiredOnly?: boolean;
}

const records = new Map<string, Record>();
/** The filenames of `records`, in order (worker threads flush the tail). */
const recorded: string[] = [];
let order = 0;
interface Resolution {
  from: string;
  entry: [string, string, string];
}
/** Keys (requesting file, request) of the resolutions made, each kept once, in order. */
const resolutionKeys = new Set<string>();
const resolutions: Resolution[] = [];
/** The same for `import` (ES module resolution), under one set of conditions. */
const esmKeys = new Set<string>();
const esmResolutions: Resolution[] = [];
let esmConditions: string | undefined;
/** The first module known to have asked for each file (resolution is what tells). */
const parentOf = new Map<string, string>();
/** Records from this order on were made while the training script ran. */
let trainingFrom = Infinity;

function progress(line: TraceProgress): void {
  if (config?.progressFd === undefined || !isMainThread) return;
  try {
    writeSync(config.progressFd, `${line}\n`);
  } catch {
    // The parent stopped listening; progress is only cosmetic.
  }
}

function record(filename: string, r: Omit<Record, 'order' | 'parent'>): void {
  if (records.has(filename)) return;
  const parent = parentOf.get(filename);
  records.set(filename, { ...r, order: order++, ...(parent !== undefined && { parent }) });
  recorded.push(filename);
  if (records.size % 50 === 0) progress(`modules ${records.size}`);
  if (!isMainThread) scheduleThreadFlush();
}

// codeblob's own files (this tracer, the addon it loads): what they require is not the app's.
const ownDir = dirname(dirname(fileURLToPath(import.meta.url))) + sep;
const ours = (filename: unknown) => typeof filename === 'string' && filename.startsWith(ownDir);

function noteParent(filename: unknown, parent: unknown): void {
  if (typeof filename === 'string' && typeof parent === 'string' && !parentOf.has(filename)) parentOf.set(filename, parent);
}

function install(): void {
  const originalCompile = Module.prototype._compile;
  /** Records and runs a module as Node's _compile would, `typescript` when `content` is a file's stripped TypeScript. */
  function compileTraced(module: NodeModuleLike, content: string, filename: string, format: string | undefined, ts: Pick<Record, 'typescript' | 'strippedFrom'>): unknown {
    if (format === 'module' && typeof content === 'string') {
      // An ES module loaded through require(esm): Node hands its source to _compile.
      record(filename, { kind: 'esm', text: content, requiredOnly: true, ...ts });
    }
    if (format !== undefined && format !== 'commonjs') return originalCompile.call(module, content, filename, format);
    let compiled;
    try {
      compiled = compileCjs(cjsText(content), filename, undefined, shouldCache(content));
    } catch {
      // Not valid CommonJS (maybe ESM syntax Node will detect): let Node decide and report.
      return originalCompile.call(module, content, filename, format);
    }
    record(filename, { kind: 'cjs', text: content, compiled, ...ts });
    stash(compiled.fn, filename);
    try {
      return originalCompile.call(module, STUB, STUB_NAME, 'commonjs');
    } finally {
      unstash();
    }
  }
  Module.prototype._compile = function tracedCompile(this: NodeModuleLike, content, filename, format) {
    const next = typeof content === 'string' ? TS_FORMATS.get(format!) : undefined;
    if (next === undefined) return compileTraced(this, content, filename, format, {});
    // TypeScript: strip it here as Node's _compile would, then go on as Node does with the result
    // (run it as CommonJS, as an ES module, or detect which). What Node refuses is left to Node.
    const stripped = strip(content, filename, 'require');
    if (stripped === undefined) return originalCompile.call(this, content, filename, format);
    return compileTraced(this, stripped, filename, next === 'detect' ? undefined : next, { typescript: true, strippedFrom: entryHash(Buffer.from(content, 'utf8')) });
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
 * the main module, no `paths`/`conditions` options, the module's lookup paths untouched). Every
 * resolution also tells which module first asked for a file.
 */
function installResolveTrace(): void {
  const original = Module._resolveFilename;
  Module._resolveFilename = function tracedResolveFilename(this: unknown, request: unknown, parent: unknown, isMain: unknown, options: unknown) {
    const filename = original.call(this, request, parent, isMain, options);
    const p = parent as { filename?: unknown; path?: unknown; paths?: unknown } | undefined;
    noteParent(filename, p?.filename);
    if (
      !isMain && tableRequest(request) && !ours(p?.filename) && plainOptions(options) && typeof filename === 'string' && isAbsolute(filename) &&
      typeof p?.filename === 'string' && typeof p.path === 'string' && p.path === dirname(p.filename) &&
      (isRelativeRequest(request) || isAbsolute(request) || defaultLookupPaths(p.path, p.paths))
    ) {
      const key = `${p.filename}\0${request}`;
      if (!resolutionKeys.has(key)) {
        resolutionKeys.add(key);
        resolutions.push({ from: p.filename, entry: [p.path, request, filename] });
      }
    }
    return filename;
  };
}

function fileOf(url: string | undefined): string | undefined {
  if (!url?.startsWith('file:')) return undefined;
  try {
    return fileURLToPath(url);
  } catch {
    return undefined;
  }
}

/**
 * ES modules: their loads (the load hook) and what each `import` resolved to and who asked (the
 * resolve hook). With a resolve hook in place Node passes require()'s default conditions to
 * Module._resolveFilename explicitly; plainOptions takes those as plain.
 */
function installEsmTrace(): void {
  if (!registerHooks) return; // Node < 22.15: ES modules are not traced.
  registerHooks({
    resolve(specifier, context, next) {
      const result = next(specifier, context);
      const file = fileOf(result.url);
      const parent = fileOf(context.parentURL);
      noteParent(file, parent);
      // Imports of ES modules only: the loader answers those (esm-hooks.ts); Node's own answer
      // carries the format that decides how anything else loads.
      if (file !== undefined && parent !== undefined && (result.format === 'module' || (result.format === 'module-typescript' && strippable(file))) && context.conditions?.includes('import') && tableImportSpecifier(specifier)) {
        const key = conditionsKey(context.conditions);
        esmConditions ??= key;
        const seen = `${dirname(parent)}\0${specifier}`;
        if (key === esmConditions && !esmKeys.has(seen)) {
          esmKeys.add(seen);
          esmResolutions.push({ from: parent, entry: [dirname(parent), specifier, file] });
        }
      }
      return result;
    },
    load(url, context, next) {
      const result = next(url, context);
      if (result.format === 'module-typescript' && context.format === 'module-typescript') {
        // A TypeScript ES module in a typed scope (.mts, or .ts under "type": "module"); a
        // typeless one is left to Node, which detects its format from the stripped text.
        const filename = fileOf(url);
        const source = result.source;
        const ts = typeof source === 'string' ? source : source instanceof Uint8Array ? Buffer.from(source.buffer, source.byteOffset, source.byteLength).toString('utf8') : undefined;
        const stripped = filename !== undefined && ts !== undefined ? strip(ts, filename, 'import') : undefined;
        if (stripped !== undefined) record(filename!, { kind: 'esm', text: stripped, typescript: true, strippedFrom: entryHash(Buffer.from(ts!, 'utf8')), ...(!context.conditions?.includes('import') && { requiredOnly: true }) });
        return result;
      }
      const filename = result.format === 'module' ? fileOf(url) : undefined;
      // require(esm) loads with require's conditions; `import` (static, dynamic, the ES module
      // graph below a require(esm)) with import's. A loader needs module hooks for the latter only.
      if (filename !== undefined) record(filename, { kind: 'esm', ...(!context.conditions?.includes('import') && { requiredOnly: true }) });
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
    const compiled = compileCjs(cjsText(text), filename, undefined, shouldCache(text));
    if (!shouldCache(text)) return { filename, kind: 'cjs', text, order: -1 };
    return { filename, kind: 'cjs', text, cache: compiled.cache(), order: -1 };
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

// See dynamic-import.ts: on Node 20 a cached script (and code it compiles) cannot call import().
const cacheBreaksDynamicImport = Number(process.versions.node.split('.')[0]) < 22;

function shouldCache(text: string | undefined): boolean {
  return !(cacheBreaksDynamicImport && text !== undefined && mayReachImport(text));
}

/** Node's _compile formats for TypeScript, and the format it goes on with once stripped. */
const TS_FORMATS = new Map<string, 'commonjs' | 'module' | 'detect'>([
  ['commonjs-typescript', 'commonjs'],
  ['module-typescript', 'module'],
  ['typescript', 'detect'],
]);

/** process.features.typescript: 'strip', 'transform', or false/absent (no type stripping). */
function typeScriptMode(): string | false {
  const mode = (process.features as { typescript?: unknown }).typescript;
  return typeof mode === 'string' ? mode : false;
}

/** Can a TypeScript file be packed stripped (this Node strips types, and would strip this file)? */
function strippable(filename: string): boolean {
  return stripTypeScriptTypes !== undefined && typeScriptMode() === 'strip' && !underNodeModules(filename);
}

const stripTypeScriptTypes = (nodeModule as { stripTypeScriptTypes?: (code: string, options: object) => string }).stripTypeScriptTypes;
let quietStrip = true;

/**
 * The text Node compiles for a TypeScript file (typescript.ts): stripped by this Node, named as
 * the loader `via` which it loads names it. Undefined for what Node refuses (under
 * node_modules, syntax that needs transforming) or does otherwise (--experimental-transform-types):
 * Node loads those itself, here and from the blob.
 */
function strip(ts: string, filename: string, via: LoadedThrough): string | undefined {
  if (!strippable(filename)) return undefined;
  // The API warns that it is experimental (once): that is the packer's business, not the app's output.
  const emitWarning = process.emitWarning;
  if (quietStrip) {
    quietStrip = false;
    process.emitWarning = function quiet(this: unknown, warning: unknown, ...rest: unknown[]) {
      if (String(warning).includes('stripTypeScriptTypes')) return;
      return (emitWarning as (...a: unknown[]) => void).call(process, warning, ...rest);
    } as typeof process.emitWarning;
  }
  try {
    return stripTypeScriptTypes!(ts, { mode: 'strip', sourceUrl: sourceUrlOf(filename, via) });
  } catch {
    return undefined;
  } finally {
    process.emitWarning = emitWarning;
  }
}

function traced(filename: string, r: Record): TracedModule {
  const m: TracedModule = { filename, kind: r.kind, order: r.order };
  if (r.text !== undefined) m.text = r.text;
  if (r.typescript) {
    m.typescript = true;
    m.strippedFrom = r.strippedFrom!;
  }
  if (r.requiredOnly) m.requiredOnly = true;
  if (r.compiled && shouldCache(r.text)) m.cache = r.compiled.cache();
  return m;
}

/**
 * The files only the training script brought in: itself, and every module first asked for by
 * one of them (or by nobody known) after training began.
 */
function trainingOnly(): Set<string> {
  const owned = new Set<string>();
  if (!config?.train || trainingFrom === Infinity) return owned;
  let trainFile = config.train;
  try {
    trainFile = realpathSync(trainFile);
  } catch {
    // Keep the path as given.
  }
  for (const [filename, r] of records) {
    if (r.order < trainingFrom) continue;
    if (filename === trainFile || r.parent === undefined || owned.has(r.parent)) owned.add(filename);
  }
  return owned;
}

let dumped = false;
function dump(exitCode: number): void {
  if (dumped || !config || !isMainThread) return;
  dumped = true;
  const leaveOut = trainingOnly();
  const modules: TracedModule[] = [];
  for (const [filename, r] of records) {
    if (!leaveOut.has(filename)) modules.push(traced(filename, r));
  }
  for (const filename of config.include) {
    if (!records.has(filename)) modules.push(compileIncluded(filename));
  }
  // An app that changes V8 flags at run time (v8.setFlagsFromString) changes the tag the caches
  // are made with: workers, which start without that change, would reject every one of them.
  const flagsChanged = cachedDataVersionTag() !== startTag;
  if (flagsChanged) for (const m of modules) delete m.cache;
  const kept = resolutions.filter((r) => !leaveOut.has(r.from) && !leaveOut.has(r.entry[2]));
  const keptEsm = esmResolutions.filter((r) => !leaveOut.has(r.from) && !leaveOut.has(r.entry[2]));
  const result: TraceResult = {
    v8Tag: startTag, nodeVersion: process.version, modules, exitCode, flagsChanged, typescript: typeScriptMode(),
    resolutions: kept.map((r) => r.entry), resolveEnv: resolutionEnvironment(), trainingOnly: leaveOut.size,
    esmResolutions: keptEsm.map((r) => r.entry), ...(esmConditions !== undefined && { esmConditions }),
  };
  const fd = openSync(config.out, 'w');
  try {
    const bytes = packr.pack(result);
    for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done);
  } finally {
    closeSync(fd);
  }
}

// Worker threads: what was recorded since the last flush, appended as one frame.
let flushed = 0;
let flushScheduled = false;
let flushedResolutions = 0;
let flushedEsm = 0;

function scheduleThreadFlush(): void {
  if (flushScheduled) return;
  flushScheduled = true;
  // A microtask: a worker blocked in Atomics.wait between tasks (piscina) runs nothing else.
  queueMicrotask(flushThread);
}

function flushThread(): void {
  flushScheduled = false;
  if (!config) return;
  if (recorded.length === flushed && resolutions.length === flushedResolutions && esmResolutions.length === flushedEsm) return;
  const frame: TraceResult = {
    v8Tag: startTag, nodeVersion: process.version, exitCode: 0,
    modules: recorded.slice(flushed).map((filename) => traced(filename, records.get(filename)!)),
    resolutions: resolutions.slice(flushedResolutions).map((r) => r.entry),
    esmResolutions: esmResolutions.slice(flushedEsm).map((r) => r.entry),
    ...(esmConditions !== undefined && { esmConditions }),
    resolveEnv: resolutionEnvironment(),
    flagsChanged: cachedDataVersionTag() !== startTag,
  };
  flushed = recorded.length;
  flushedResolutions = resolutions.length;
  flushedEsm = esmResolutions.length;
  const bytes = packr.pack(frame);
  const head = Buffer.alloc(4);
  head.writeUInt32LE(bytes.length);
  try {
    appendFileSync(threadFile(config.out, threadId), Buffer.concat([head, bytes]));
  } catch {
    // The trace is over (the parent removed its directory): nothing to add.
  }
}

async function train(): Promise<void> {
  if (!config?.train) return;
  trainingFrom = order;
  progress('train');
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
      progress('train-failed');
      process.stderr.write(`codeblob pack: the training script failed: ${(error as Error)?.stack ?? String(error)}\n`);
      dump(70);
      process.exit(70);
    },
  );
}

/**
 * settleMs = -1: once the app listens on a server, finish when no module has loaded for
 * quietMs (servers often load more right after they start listening).
 */
function settleWhenListening(quietMs: number): void {
  const net = createRequire(import.meta.url)('node:net') as typeof import('node:net');
  const listen = net.Server.prototype.listen;
  let watching = false;
  const onListening = () => {
    if (watching) return;
    watching = true;
    progress('listening');
    let seen = records.size;
    let quietSince = Date.now();
    const poll = setInterval(() => {
      if (records.size !== seen) {
        seen = records.size;
        quietSince = Date.now();
      } else if (Date.now() - quietSince >= quietMs) {
        clearInterval(poll);
        finish();
      }
    }, Math.max(10, Math.min(100, quietMs / 4)));
    poll.unref();
  };
  net.Server.prototype.listen = function tracedListen(this: import('node:net').Server, ...args: unknown[]) {
    this.once('listening', onListening);
    return (listen as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof listen;
}

if (config) {
  install();
  if (isMainThread) {
    // An app that ends by itself is traced to its end; a server is stopped once settled.
    process.on('beforeExit', () => (config.train ? finish() : undefined));
    process.on('exit', (code) => dump(code));
    if (config.settleMs > 0) setTimeout(finish, config.settleMs).unref();
    else if (config.settleMs < 0) settleWhenListening(config.quietMs);
  }
}
