/** The CLI's subcommands: pack, inspect, verify. Each returns an exit code. */
import { statSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { version as nodeVersion } from 'node:process';
import { cachedDataVersionTag } from 'node:v8';
import { open } from '../store/store.js';
import { pack, type PackResult } from '../pack/pack.js';
import type { PackProgress } from '../pack/options.js';
import { bytes, keyValues, table } from './format.js';
import { compareWithFiles, filesReportText, overLimit, parseMaxStale } from './verify-files.js';

export class UsageError extends Error {}

/** parseArgs, with its errors in our words (its own quote the option unevenly). */
export function parse(argv: string[], options: NonNullable<ParseArgsConfig['options']>) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const option = /'(-[^']*)'/.exec(e.message)?.[1];
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && option) {
      throw new UsageError(`unknown option ${option} (arguments for the app go after "--")`);
    }
    if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && option) {
      throw new UsageError(`option ${option} ${/argument missing/.test(e.message) ? 'needs a value' : 'takes no value'}`);
    }
    throw new UsageError(e.message);
  }
}

function int(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} takes a non-negative integer, got ${String(value)}`);
  return n;
}

/**
 * Progress on stderr: a status line on a terminal (not with --json), and always what the
 * training script and the app print while training runs, each line marked as theirs.
 */
function progressReporter(json: boolean): (e: PackProgress | { phase: 'done' }) => void {
  const bar = process.stderr.isTTY && !json;
  let status = false;
  const clear = () => {
    if (status) process.stderr.write('\r\x1b[K');
    status = false;
  };
  const partial = { stdout: '', stderr: '' };
  return (e) => {
    if (e.phase === 'output') {
      clear();
      const lines = (partial[e.stream] + e.text).split('\n');
      partial[e.stream] = lines.pop()!;
      for (const line of lines) process.stderr.write(`train ${e.stream === 'stdout' ? '|' : '!'} ${line}\n`);
      return;
    }
    if (e.phase === 'train') {
      clear();
      process.stderr.write(`training: ${e.script}\n`);
      return;
    }
    if (e.phase === 'done') {
      clear();
      for (const stream of ['stdout', 'stderr'] as const) {
        if (partial[stream]) process.stderr.write(`train ${stream === 'stdout' ? '|' : '!'} ${partial[stream]}\n`);
      }
      return;
    }
    if (!bar) return;
    const text =
      e.phase === 'trace'
        ? `tracing ${e.entry} … ${e.modules} modules`
        : e.phase === 'listening'
          ? `tracing ${e.entry} … listening, waiting until it has loaded everything`
          : e.phase === 'layout'
            ? `laying out ${e.modules} modules …`
            : `writing ${bytes(e.bytes)} …`;
    process.stderr.write(`\r\x1b[K${text}`);
    status = true;
  };
}

export function packSummary(r: PackResult): string {
  return keyValues([
    ['blob', r.output],
    ['root', r.root],
    ['modules', `${r.entries} (${r.latin1} Latin-1, ${r.utf16} UTF-16, ${r.binary} binary; ${r.cached} with a code cache)`],
    ['source bytes', bytes(r.sourceBytes)],
    ['cache bytes', bytes(r.cacheBytes)],
    ['index bytes', `${bytes(r.indexBytes)} (resolution table ${bytes(r.resolutionBytes)})`],
    ['resolutions', `${r.resolutions.answers} recorded, resting on ${r.resolutions.guards} file-system facts` +
      (Object.keys(r.resolutions.skipped).length ? `; left to Node: ${Object.entries(r.resolutions.skipped).map(([k, v]) => `${v} ${k}`).join(', ')}` : '')],
    ['startup range', `${bytes(r.hotBytes)} (modules the run loaded, in load order)`],
    ['padding', `${bytes(r.paddingBytes)} (${((100 * r.paddingBytes) / r.fileSize).toFixed(1)}%, alignment ${r.alignment})`],
    ['file size', bytes(r.fileSize)],
    ['built for', `Node ${r.nodeVersion}, V8 cache tag ${r.v8Tag}`],
    ['time', `${(r.ms / 1000).toFixed(2)} s`],
  ]);
}

export async function packCommand(argv: string[]): Promise<number> {
  const dashdash = argv.indexOf('--');
  const entryArgs = dashdash === -1 ? [] : argv.slice(dashdash + 1);
  const { values, positionals } = parse(dashdash === -1 ? argv : argv.slice(0, dashdash), {
    output: { type: 'string', short: 'o' },
    root: { type: 'string' },
    'node-arg': { type: 'string', multiple: true },
    node: { type: 'string' },
    train: { type: 'string' },
    'settle-ms': { type: 'string' },
    env: { type: 'string', multiple: true },
    include: { type: 'string', multiple: true },
    'page-size': { type: 'string' },
    align: { type: 'string' },
    timeout: { type: 'string' },
    'no-deterministic': { type: 'boolean' },
    'allow-failure': { type: 'boolean' },
    'no-resolutions': { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (positionals.length === 0) throw new UsageError('pack needs at least one entry script: codeblob pack server.js -o app.blob');
  if (!values.output) throw new UsageError('pack needs an output path: -o app.blob');
  const onProgress = progressReporter(values.json === true);
  const settle = values['settle-ms'] as string | undefined;
  const env: Record<string, string> = {};
  for (const pair of (values.env as string[] | undefined) ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--env takes NAME=value, got ${pair}`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const align = values.align as string | undefined;
  if (align !== undefined && align !== 'page' && align !== 'dense') throw new UsageError('--align takes page or dense');
  const result = await pack({
    entries: positionals,
    output: values.output as string,
    args: entryArgs,
    ...(values.root !== undefined && { root: values.root as string }),
    ...(values.node !== undefined && { node: values.node as string }),
    ...(values.train !== undefined && { train: values.train as string }),
    nodeArgs: (values['node-arg'] as string[] | undefined) ?? [],
    include: (values.include as string[] | undefined) ?? [],
    ...(settle !== undefined && { settleMs: settle === 'auto' ? 'auto' : int(settle, '--settle-ms')! }),
    env,
    ...(values['page-size'] !== undefined && { pageSize: int(values['page-size'], '--page-size')! }),
    ...(values.timeout !== undefined && { timeoutMs: int(values.timeout, '--timeout')! }),
    ...(align !== undefined && { align }),
    deterministic: !values['no-deterministic'],
    allowFailure: values['allow-failure'] === true,
    resolutions: !values['no-resolutions'],
    onProgress,
  });
  onProgress({ phase: 'done' });
  if (values.json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  } else {
    process.stdout.write(packSummary(result) + '\n');
    for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
  }
  return 0;
}

export function inspectCommand(argv: string[]): number {
  const { values, positionals } = parse(argv, {
    json: { type: 'boolean' },
    entries: { type: 'boolean' },
    root: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError('inspect takes one blob: codeblob inspect app.blob');
  const store = open(positionals[0]!, values.root ? { root: values.root as string } : {});
  try {
    const h = store.header;
    const entries = store.entries();
    const byKind = new Map<string, { count: number; source: number; cache: number }>();
    for (const e of entries) {
      const k = byKind.get(e.kind) ?? { count: 0, source: 0, cache: 0 };
      k.count++;
      k.source += e.sourceLength;
      k.cache += e.cacheLength;
      byKind.set(e.kind, k);
    }
    const info = {
      path: store.path,
      root: store.root,
      backend: store.backend,
      formatVersion: h.formatVersion,
      fileSize: h.fileSize,
      pageSize: h.pageSize,
      alignment: h.alignment,
      nodeVersion: h.nodeVersion,
      arch: h.arch,
      platform: h.platform,
      v8Tag: h.v8Tag,
      toolVersion: h.toolVersion,
      entryCount: h.entryCount,
      compatible: store.cachesUsable,
      incompatibility: store.incompatibility ?? null,
      running: { nodeVersion, v8Tag: cachedDataVersionTag() },
      kinds: Object.fromEntries(byKind),
      ...(values.entries && {
        entries: entries.map((e) => ({
          key: e.key,
          kind: e.kind,
          ...(e.typescript && { typescript: true }),
          encoding: e.encoding,
          chars: e.chars,
          sourceLength: e.sourceLength,
          cacheLength: e.cacheLength,
          order: e.order,
        })),
      }),
    };
    if (values.json) {
      process.stdout.write(JSON.stringify(info, null, 2) + '\n');
      return 0;
    }
    const out = [
      keyValues([
        ['blob', `${info.path} (${bytes(h.fileSize)}, format ${h.formatVersion}, codeblob ${h.toolVersion})`],
        ['root', info.root],
        ['backend', info.backend],
        ['layout', `page size ${h.pageSize}, sections aligned to ${h.alignment}`],
        ['built for', `Node ${h.nodeVersion} ${h.platform}-${h.arch}, V8 cache tag ${h.v8Tag}`],
        ['this process', `Node ${nodeVersion}, V8 cache tag ${info.running.v8Tag}`],
        ['code caches', store.cachesUsable ? 'usable here' : `NOT usable here: ${store.incompatibility}`],
      ]),
      '',
      table([
        ['kind', 'entries', 'source', 'cache'],
        ...[...byKind].map(([k, v]) => [k, String(v.count), bytes(v.source), bytes(v.cache)]),
      ]),
    ];
    if (values.entries) {
      out.push('', table([
        ['key', 'kind', 'encoding', 'source', 'cache'],
        ...entries.map((e) => [e.key, e.typescript ? `${e.kind} (stripped TS)` : e.kind, e.encoding, bytes(e.sourceLength), e.cacheLength ? bytes(e.cacheLength) : '-']),
      ]));
    }
    process.stdout.write(out.join('\n') + '\n');
    return 0;
  } finally {
    store.close();
  }
}

export function verifyCommand(argv: string[]): number {
  const { values, positionals } = parse(argv, {
    json: { type: 'boolean' },
    root: { type: 'string' },
    files: { type: 'boolean' },
    'max-stale': { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError('verify takes one blob: codeblob verify app.blob');
  const maxStale = values['max-stale'] as string | undefined;
  if (maxStale !== undefined && !values.files) throw new UsageError('--max-stale needs --files');
  let limit: ((total: number) => number) | undefined;
  try {
    limit = values.files ? parseMaxStale(maxStale ?? '0') : undefined;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const store = open(positionals[0]!, values.root ? { root: values.root as string } : {});
  try {
    const problems = store.verify();
    // Files changed since packing are not a fault of the blob (the loader reads them from
    // disk), but an operator wants to know.
    const changed: string[] = [];
    for (const e of store.entries()) {
      const st = statSync(store.filename(e), { throwIfNoEntry: false });
      if (!st || st.size !== e.fileSize || st.mtimeMs !== e.mtimeMs) changed.push(e.key);
    }
    const files = limit ? compareWithFiles(store) : undefined;
    const over = files && limit ? overLimit(files, limit) : undefined;
    const report = {
      path: store.path,
      ok: problems.length === 0,
      entries: store.entries().length,
      problems,
      cachesUsable: store.cachesUsable,
      incompatibility: store.incompatibility ?? null,
      changedSources: changed,
      digest: store.digest(),
      ...(files && { files: { ...files, maxStale: maxStale ?? '0', overLimit: over } }),
    };
    if (values.json) {
      process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    } else {
      for (const p of problems) process.stdout.write(`BAD   ${p.key} (${p.section}): ${p.message}\n`);
      if (files) {
        for (const line of filesReportText(files)) process.stdout.write(line + '\n');
      } else {
        for (const k of changed) process.stdout.write(`note  ${k}: its size or mtime changed since packing (--files: whether its content did)\n`);
      }
      if (!store.cachesUsable) process.stdout.write(`note  code caches not usable by this Node: ${store.incompatibility}\n`);
      process.stdout.write(
        problems.length === 0
          ? `ok    ${report.entries} entries, every hash matches (sha256 ${report.digest})\n`
          : `FAIL  ${problems.length} of ${report.entries} entries are corrupt\n`,
      );
      if (over && (over.modules || over.resolutions)) {
        process.stdout.write(`STALE more than --max-stale ${maxStale ?? '0'} of the ${[over.modules && 'modules', over.resolutions && 'resolutions'].filter(Boolean).join(' and ')} would not come from the blob\n`);
      }
    }
    if (problems.length > 0) return 1;
    return over && (over.modules || over.resolutions) ? 3 : 0;
  } finally {
    store.close();
  }
}
