/**
 * `pack()`: trace the app in a child process, gather sources and late code caches, lay out the
 * blob deterministically and write it atomically.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Unpackr } from 'msgpackr';
import { codeblobError } from '../errors.js';
import { entryHash, isValidKey, layoutBlob, type BlobLayoutStats, type SectionInput } from '../format/index.js';
import { VERSION } from '../version.js';
import { isTypeScriptFile } from '../loader/typescript.js';
import { expandIncludes } from './include.js';
import { buildResolutionTable } from './resolutions.js';
import { resolvePackOptions, type PackOptions, type ResolvedPackOptions } from './options.js';
import { threadFile, type TraceConfig, type TracedModule, type TraceProgress, type TraceResult } from './trace-protocol.js';
import { cleanStaleTemps, writeAtomically } from './write.js';

export interface PackResult extends BlobLayoutStats {
  output: string;
  root: string;
  nodeVersion: string;
  v8Tag: number;
  pageSize: number;
  alignment: number;
  /** Entries with a code cache. */
  cached: number;
  /** Resolutions recorded in the blob's table, the guards they rest on, and those left out (by reason). */
  resolutions: { answers: number; guards: number; skipped: Record<string, number> };
  ms: number;
  warnings: string[];
}

// From dist/ the tracer sits beside this file; from src/ (tests through a TS runner) use dist's.
const here = fileURLToPath(import.meta.url);
const tracerPath = here.endsWith('.ts')
  ? resolve(dirname(here), '../../dist/pack/trace.js')
  : resolve(dirname(here), 'trace.js');

function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** The last lines the traced app wrote, stdout and stderr each, for an error message. */
function appOutput(stdout: string, stderr: string): string {
  const parts = [];
  if (stdout.trim()) parts.push(`--- the app's stdout (last lines) ---\n${tail(stdout)}`);
  if (stderr.trim()) parts.push(`--- the app's stderr (last lines) ---\n${tail(stderr)}`);
  return parts.length > 0 ? `\n${parts.join('\n')}` : '\n(the app wrote nothing to stdout or stderr)';
}

/** How long a listening server must load no module before the trace takes it as settled. */
const QUIET_MS = 1000;

/** The frames worker threads appended (see trace.ts), in thread order. */
function threadResults(out: string): TraceResult[] {
  const dir = dirname(out);
  const prefix = `${basename(threadFile(out, 0)).slice(0, -1)}`;
  const unpackr = new Unpackr({ useRecords: false });
  const files = readdirSync(dir)
    .filter((n) => n.startsWith(prefix))
    .map((n) => ({ n, id: Number(n.slice(prefix.length)) }))
    .filter((f) => Number.isInteger(f.id))
    .sort((a, b) => a.id - b.id);
  const frames: TraceResult[] = [];
  for (const { n } of files) {
    const bytes = readFileSync(join(dir, n));
    for (let at = 0; at + 4 <= bytes.length; ) {
      const length = bytes.readUInt32LE(at);
      if (at + 4 + length > bytes.length) break; // a frame cut short when the process ended
      frames.push(unpackr.unpack(bytes.subarray(at + 4, at + 4 + length)) as TraceResult);
      at += 4 + length;
    }
  }
  return frames;
}

async function traceEntry(opts: ResolvedPackOptions, entry: string, include: string[], warnings: string[]): Promise<TraceResult> {
  const work = mkdtempSync(join(tmpdir(), 'codeblob-trace-'));
  const out = join(work, 'trace.msgpack');
  try {
    const config: TraceConfig = { out, settleMs: opts.settleMs === 'auto' ? -1 : opts.settleMs, quietMs: QUIET_MS, include, progressFd: 3 };
    if (opts.train) config.train = resolve(opts.train);
    const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env, CODEBLOB_TRACE: JSON.stringify(config) };
    delete env.CODEBLOB_FILE; // never trace an app that is itself loading from a blob
    const args = [...opts.nodeArgs, ...(opts.deterministic ? ['--predictable'] : []), '--require', tracerPath, entry, ...opts.args];
    const child = spawn(opts.node, args, { env, stdio: ['ignore', 'pipe', 'pipe', 'pipe'], cwd: process.cwd() });
    let stderr = '';
    let stdout = '';
    let training = false;
    let trainingFailed = false;
    const output = (stream: 'stdout' | 'stderr') => (d: Buffer) => {
      const text = d.toString();
      if (stream === 'stdout') stdout = (stdout + text).slice(-8192);
      else stderr = (stderr + text).slice(-8192);
      // What the app and the training script write while training runs is the training's output.
      if (training) opts.onProgress?.({ phase: 'output', entry, stream, text });
    };
    child.stdout!.on('data', output('stdout'));
    child.stderr!.on('data', output('stderr'));
    let lines = '';
    (child.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => {
      lines += d.toString();
      let nl;
      while ((nl = lines.indexOf('\n')) !== -1) {
        const line = lines.slice(0, nl) as TraceProgress;
        lines = lines.slice(nl + 1);
        if (line.startsWith('modules ')) opts.onProgress?.({ phase: 'trace', entry, modules: Number(line.slice(8)) });
        else if (line === 'listening') opts.onProgress?.({ phase: 'listening', entry });
        else if (line === 'train') {
          training = true;
          opts.onProgress?.({ phase: 'train', entry, script: resolve(opts.train!) });
        } else if (line === 'train-failed') trainingFailed = true;
      }
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((done, fail) => {
      child.on('error', fail);
      child.on('close', (c, s) => done([c, s]));
    }).finally(() => clearTimeout(timer));
    if (timedOut) {
      throw codeblobError(
        'ERR_CODEBLOB_PACK_FAILED',
        `${entry} was still running after ${opts.timeoutMs} ms` +
          (opts.settleMs === 'auto' ? ' and never listened on a server (a cluster primary? pack the workers\' entry)' : '') +
          `. To stop it once it has started, pass --settle-ms <ms>.${appOutput(stdout, stderr)}`,
      );
    }
    if (trainingFailed) {
      throw codeblobError('ERR_CODEBLOB_PACK_FAILED', `the training script ${resolve(opts.train!)} failed.${appOutput(stdout, stderr)}`);
    }
    let raw: Buffer;
    try {
      raw = readFileSync(out);
    } catch {
      throw codeblobError(
        'ERR_CODEBLOB_PACK_FAILED',
        `tracing ${entry} produced no result (exit code ${code}, signal ${signal}).${appOutput(stdout, stderr)}`,
      );
    }
    const result = new Unpackr({ useRecords: false }).unpack(raw) as TraceResult;
    if (isTypeScriptFile(entry) && result.typescript !== 'strip') {
      throw codeblobError(
        'ERR_CODEBLOB_PACK_FAILED',
        result.typescript === 'transform'
          ? `${entry} is TypeScript and the tracing Node runs with --experimental-transform-types: codeblob packs only what Node's type stripping gives (drop the flag; enums and namespaces then need a build step)`
          : `${entry} is TypeScript, and Node ${result.nodeVersion} does not strip types (Node 22.18+, 24 and later do; on 22.6-22.17 pass --node-arg=--experimental-strip-types). Pack with such a Node, the one the workers run.${appOutput(stdout, stderr)}`,
      );
    }
    const exitCode = result.exitCode || code;
    if (exitCode) {
      if (!opts.allowFailure) {
        throw codeblobError(
          'ERR_CODEBLOB_PACK_FAILED',
          `${entry} exited with code ${exitCode} while being traced (pass --allow-failure if that is expected).${appOutput(stdout, stderr)}`,
        );
      }
      warnings.push(`${entry} exited with code ${exitCode} while being traced`);
    }
    mergeThreads(result, threadResults(out), warnings);
    return result;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Adds what the app's worker threads loaded after what its main thread loaded. */
function mergeThreads(main: TraceResult, frames: readonly TraceResult[], warnings: string[]): void {
  let order = main.modules.reduce((max, m) => Math.max(max, m.order + 1), 0);
  let otherEnv = 0;
  for (const frame of frames) {
    for (const m of frame.modules) {
      if (frame.flagsChanged || frame.v8Tag !== main.v8Tag) delete m.cache;
      main.modules.push({ ...m, order: order++ });
    }
    if (frame.resolveEnv === main.resolveEnv) {
      main.resolutions.push(...frame.resolutions);
      main.esmConditions ??= frame.esmConditions;
      if (frame.esmConditions === main.esmConditions) (main.esmResolutions ??= []).push(...(frame.esmResolutions ?? []));
    } else {
      otherEnv += frame.resolutions.length + (frame.esmResolutions?.length ?? 0);
    }
  }
  if (otherEnv > 0) {
    warnings.push(`${otherEnv} resolutions made by worker threads started with other flags than the main thread were not recorded`);
  }
}

/** The directory of the nearest package.json above a file (or the file's own directory). */
function packageDir(file: string): string {
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    if (statSync(join(dir, 'package.json'), { throwIfNoEntry: false })?.isFile()) return dir;
    if (dirname(dir) === dir) return dirname(file);
  }
}

/** The deepest directory holding every file. */
function commonRoot(files: readonly string[]): string {
  let root = dirname(files[0]!);
  for (const f of files) {
    while (!(f.startsWith(root + sep) || root === sep)) root = dirname(root);
  }
  return root;
}

/** What the traces of every entry found together: modules in first-load order, resolutions. */
interface Traced {
  modules: Map<string, TracedModule>;
  v8Tag: number;
  nodeVersion: string;
  resolveEnv: string;
  resolutions: [string, string, string][];
  esmResolutions: [string, string, string][];
  esmConditions: string | undefined;
}

/** Traces each entry in turn (the first with the included files) and merges what they loaded. */
async function traceAll(opts: ResolvedPackOptions, include: string[], warnings: string[]): Promise<Traced> {
  const modules = new Map<string, TracedModule>();
  const resolutions: [string, string, string][] = [];
  const esmResolutions: [string, string, string][] = [];
  let esmConditions: string | undefined;
  let first: TraceResult | undefined;
  let order = 0;
  for (const [i, entry] of opts.entries.entries()) {
    const abs = resolve(entry);
    if (!statSync(abs, { throwIfNoEntry: false })?.isFile()) {
      throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', `entry ${entry} is not a file`);
    }
    const trace = await traceEntry(opts, abs, i === 0 ? include : [], warnings);
    if (first && trace.v8Tag !== first.v8Tag) throw codeblobError('ERR_CODEBLOB_PACK_FAILED', 'the traces disagree on the V8 cache tag');
    if (first && trace.resolveEnv !== first.resolveEnv) throw codeblobError('ERR_CODEBLOB_PACK_FAILED', 'the traces disagree on the resolution environment');
    first ??= trace;
    resolutions.push(...trace.resolutions);
    esmConditions ??= trace.esmConditions;
    if (trace.esmConditions === esmConditions) esmResolutions.push(...(trace.esmResolutions ?? []));
    if (trace.flagsChanged) {
      warnings.push(`${abs} changed V8 flags while running (v8.setFlagsFromString): caches made after that would be rejected, so none were kept from this trace`);
    }
    for (const m of trace.modules.sort((a, b) => (a.order === -1 ? 1 : b.order === -1 ? -1 : a.order - b.order))) {
      if (m.warning) warnings.push(`${m.filename}: ${m.warning}`);
      const known = modules.get(m.filename);
      if (!known) modules.set(m.filename, { ...m, order: m.order === -1 ? -1 : order++ });
      else if (known.requiredOnly && !m.requiredOnly) delete known.requiredOnly; // imported by another trace or thread
    }
  }
  if (modules.size === 0) throw codeblobError('ERR_CODEBLOB_PACK_FAILED', 'the trace loaded no module from disk');
  return { modules, v8Tag: first!.v8Tag, nodeVersion: first!.nodeVersion, resolveEnv: first!.resolveEnv, resolutions, esmResolutions, esmConditions };
}

/** The root keys are relative to: as given, or the deepest directory holding every file (warned about when it leaves the entry's package). */
function chooseRoot(opts: ResolvedPackOptions, files: readonly string[], warnings: string[]): string {
  if (opts.root) return resolve(opts.root);
  const root = commonRoot(files);
  // Files outside the app's own package (a script of the build, a sibling checkout) widen the
  // root and go into the blob with the app: say so, so nobody ships them unawares.
  const pkg = packageDir(resolve(opts.entries[0]!));
  const outside = files.filter((f) => !f.startsWith(pkg + sep));
  if (outside.length > 0) {
    warnings.push(
      `the blob's root is ${root}, above the entry's package ${pkg}: ${outside.length} packed file(s) lie outside it ` +
        `(${outside.slice(0, 3).join(', ')}${outside.length > 3 ? ', …' : ''}); pass --root to choose the root yourself`,
    );
  }
  return root;
}

/** A traced module as the layout takes it, read from its file now; undefined (warned) when it cannot be packed. */
function sectionInput(m: TracedModule, root: string, warnings: string[]): SectionInput | undefined {
  const key = relative(root, m.filename).split(sep).join('/');
  if (!isValidKey(key)) {
    warnings.push(`${m.filename}: outside the root ${root}, not packed`);
    return undefined;
  }
  const bytes = readFileSync(m.filename);
  const st = statSync(m.filename);
  const input: SectionInput = { key, kind: m.kind, fileSize: st.size, mtimeMs: st.mtimeMs, contentHash: entryHash(bytes), order: m.order, ...(m.requiredOnly && { requiredOnly: true }) };
  if (m.kind === 'asset') {
    input.bytes = bytes;
    return input;
  }
  if (m.typescript) {
    // Stored stripped, as this Node compiles it; the file itself is what freshness checks.
    if (m.text === undefined || m.strippedFrom === undefined || !input.contentHash.equals(m.strippedFrom)) {
      warnings.push(`${m.filename}: the TypeScript changed during packing; not packed`);
      return undefined;
    }
    input.text = m.text;
    input.typescript = true;
    if (m.cache && m.cache.byteLength > 0) input.cache = m.cache;
    return input;
  }
  const text = bytes.toString('utf8');
  if (m.text !== undefined && m.text !== text) {
    // A loader hook transformed it (a .ts loader, instrumentation) or it changed during the
    // trace: what ran is not the file, so the file is not packed and loads from disk.
    warnings.push(`${m.filename}: the code that ran differs from the file (a transforming hook, or an edit during packing); not packed`);
    return undefined;
  }
  input.text = text;
  if (m.cache && m.cache.byteLength > 0) input.cache = m.cache;
  return input;
}

/** Packs an app's module graph into one blob. See PackOptions for every knob. */
export async function pack(options: PackOptions): Promise<PackResult> {
  const started = performance.now();
  const opts = resolvePackOptions(options);
  const output = resolve(opts.output);
  if (!statSync(dirname(output), { throwIfNoEntry: false })?.isDirectory()) {
    throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', `the output directory ${dirname(output)} does not exist`);
  }
  const warnings: string[] = [];
  const traced = await traceAll(opts, expandIncludes(opts.include, process.cwd()), warnings);
  const root = chooseRoot(opts, [...traced.modules.keys()], warnings);
  opts.onProgress?.({ phase: 'layout', modules: traced.modules.size });
  const inputs = [...traced.modules.values()].map((m) => sectionInput(m, root, warnings)).filter((x) => x !== undefined);
  const table = opts.resolutions
    ? buildResolutionTable(root, traced.resolveEnv, { require: traced.resolutions, import: traced.esmResolutions, ...(traced.esmConditions !== undefined && { importConditions: traced.esmConditions }) })
    : { bytes: undefined, answers: 0, guards: 0, skipped: {} };
  const { nodeVersion } = traced;
  const { chunks, header, stats } = layoutBlob({
    resolutions: table.bytes,
    root: relative(dirname(output), root).split(sep).join('/') || '.',
    entries: inputs,
    pageSize: opts.pageSize,
    alignment: opts.align === 'page' ? opts.pageSize : 8,
    v8Tag: traced.v8Tag,
    nodeVersion,
    arch: process.arch,
    platform: process.platform,
    toolVersion: VERSION,
    // Node 20's caches carry the path they were made at: say where that was (Index.tracedRoot).
    ...(Number(nodeVersion.slice(1).split('.')[0]) < 22 && { tracedRoot: root }),
  });
  cleanStaleTemps(output);
  opts.onProgress?.({ phase: 'write', bytes: stats.fileSize });
  writeAtomically(output, chunks);
  return {
    ...stats,
    output,
    root,
    nodeVersion,
    v8Tag: header.v8Tag,
    pageSize: header.pageSize,
    alignment: header.alignment,
    cached: inputs.filter((i) => i.cache).length,
    resolutions: { answers: table.answers, guards: table.guards, skipped: table.skipped },
    ms: Math.round(performance.now() - started),
    warnings,
  };
}
