/**
 * `pack()`: trace the app in a child process, gather sources and late code caches, lay out the
 * blob deterministically and write it atomically.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Unpackr } from 'msgpackr';
import { codeblobError } from '../errors.js';
import { entryHash, isValidKey, layoutBlob, type BlobLayoutStats, type SectionInput } from '../format/index.js';
import { VERSION } from '../version.js';
import { expandIncludes } from './include.js';
import { buildResolutionTable } from './resolutions.js';
import { resolvePackOptions, type PackOptions, type ResolvedPackOptions } from './options.js';
import type { TraceConfig, TracedModule, TraceResult } from './trace.js';
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

async function traceEntry(opts: ResolvedPackOptions, entry: string, include: string[], warnings: string[]): Promise<TraceResult> {
  const work = mkdtempSync(join(tmpdir(), 'codeblob-trace-'));
  const out = join(work, 'trace.msgpack');
  try {
    const config: TraceConfig = { out, settleMs: opts.settleMs, include, progressFd: 3 };
    if (opts.train) config.train = resolve(opts.train);
    const env: NodeJS.ProcessEnv = { ...process.env, CODEBLOB_TRACE: JSON.stringify(config) };
    delete env.CODEBLOB_FILE; // never trace an app that is itself loading from a blob
    const args = [...opts.nodeArgs, ...(opts.deterministic ? ['--predictable'] : []), '--require', tracerPath, entry, ...opts.args];
    const child = spawn(opts.node, args, { env, stdio: ['ignore', 'pipe', 'pipe', 'pipe'], cwd: process.cwd() });
    let stderr = '';
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-8192)));
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8192)));
    (child.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => {
      const last = d.toString().trim().split('\n').pop();
      if (last) opts.onProgress?.({ phase: 'trace', entry, modules: Number(last) });
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
        `${entry} was still running after ${opts.timeoutMs} ms. For a server, pass --settle-ms <ms> to stop it once it has started.`,
      );
    }
    let raw: Buffer;
    try {
      raw = readFileSync(out);
    } catch {
      throw codeblobError(
        'ERR_CODEBLOB_PACK_FAILED',
        `tracing ${entry} produced no result (exit code ${code}, signal ${signal}).\n${tail(stderr || stdout)}`,
      );
    }
    const result = new Unpackr({ useRecords: false }).unpack(raw) as TraceResult;
    const exitCode = result.exitCode || code;
    if (exitCode) {
      if (!opts.allowFailure) {
        throw codeblobError(
          'ERR_CODEBLOB_PACK_FAILED',
          `${entry} exited with code ${exitCode} while being traced (pass --allow-failure if that is expected).\n${tail(stderr || stdout)}`,
        );
      }
      warnings.push(`${entry} exited with code ${exitCode} while being traced`);
    }
    return result;
  } finally {
    rmSync(work, { recursive: true, force: true });
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

/** Packs an app's module graph into one blob. See PackOptions for every knob. */
export async function pack(options: PackOptions): Promise<PackResult> {
  const started = performance.now();
  const opts = resolvePackOptions(options);
  const output = resolve(opts.output);
  if (!statSync(dirname(output), { throwIfNoEntry: false })?.isDirectory()) {
    throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', `the output directory ${dirname(output)} does not exist`);
  }
  const include = expandIncludes(opts.include, process.cwd());
  const warnings: string[] = [];

  const modules = new Map<string, TracedModule>();
  let v8Tag: number | undefined;
  let nodeVersion = '';
  let order = 0;
  let resolveEnv: string | undefined;
  const resolutions: [string, string, string][] = [];
  for (const [i, entry] of opts.entries.entries()) {
    const abs = resolve(entry);
    if (!statSync(abs, { throwIfNoEntry: false })?.isFile()) {
      throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', `entry ${entry} is not a file`);
    }
    const trace = await traceEntry(opts, abs, i === 0 ? include : [], warnings);
    if (v8Tag !== undefined && trace.v8Tag !== v8Tag) {
      throw codeblobError('ERR_CODEBLOB_PACK_FAILED', 'the traces disagree on the V8 cache tag');
    }
    v8Tag = trace.v8Tag;
    nodeVersion = trace.nodeVersion;
    if (resolveEnv !== undefined && resolveEnv !== trace.resolveEnv) throw codeblobError('ERR_CODEBLOB_PACK_FAILED', 'the traces disagree on the resolution environment');
    resolveEnv = trace.resolveEnv;
    resolutions.push(...trace.resolutions);
    if (trace.flagsChanged) {
      warnings.push(`${abs} changed V8 flags while running (v8.setFlagsFromString): caches made after that would be rejected, so none were kept from this trace`);
    }
    for (const m of trace.modules.sort((a, b) => (a.order === -1 ? 1 : b.order === -1 ? -1 : a.order - b.order))) {
      if (m.warning) warnings.push(`${m.filename}: ${m.warning}`);
      if (!modules.has(m.filename)) modules.set(m.filename, { ...m, order: m.order === -1 ? -1 : order++ });
    }
  }

  const files = [...modules.keys()];
  if (files.length === 0) throw codeblobError('ERR_CODEBLOB_PACK_FAILED', 'the trace loaded no module from disk');
  const root = opts.root ? resolve(opts.root) : commonRoot(files);
  opts.onProgress?.({ phase: 'layout', modules: files.length });

  const inputs: SectionInput[] = [];
  for (const m of modules.values()) {
    const key = relative(root, m.filename).split(sep).join('/');
    if (!isValidKey(key)) {
      warnings.push(`${m.filename}: outside the root ${root}, not packed`);
      continue;
    }
    const bytes = readFileSync(m.filename);
    const st = statSync(m.filename);
    const input: SectionInput = {
      key,
      kind: m.kind,
      fileSize: st.size,
      mtimeMs: st.mtimeMs,
      contentHash: entryHash(bytes),
      order: m.order,
    };
    if (m.kind === 'asset') {
      input.bytes = bytes;
    } else {
      const text = bytes.toString('utf8');
      if (m.text !== undefined && m.text !== text) {
        // A loader hook transformed it (a .ts loader, instrumentation) or it changed during the
        // trace: what ran is not the file, so the file is not packed and loads from disk.
        warnings.push(`${m.filename}: the code that ran differs from the file (a transforming hook, or an edit during packing); not packed`);
        continue;
      }
      input.text = text;
      if (m.cache && m.cache.byteLength > 0) input.cache = m.cache;
    }
    inputs.push(input);
  }

  const table = opts.resolutions
    ? buildResolutionTable(root, resolveEnv!, resolutions)
    : { bytes: undefined, answers: 0, guards: 0, skipped: {} };
  const { chunks, header, stats } = layoutBlob({
    resolutions: table.bytes,
    root: relative(dirname(output), root).split(sep).join('/') || '.',
    entries: inputs,
    pageSize: opts.pageSize,
    alignment: opts.align === 'page' ? opts.pageSize : 8,
    v8Tag: v8Tag!,
    nodeVersion,
    arch: process.arch,
    platform: process.platform,
    toolVersion: VERSION,
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
