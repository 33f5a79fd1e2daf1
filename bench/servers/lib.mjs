// The real-server differential (issues 18 and 19), shared by bench/servers.mjs and
// test/servers.test.ts: installs a server corpus (corpus/fastify, corpus/nextjs) from its
// lockfile, packs it with a training script, runs it as a cluster whose primary calls
// preloadPrimary exactly as the README shows, plain and with codeblob, sends both the same
// requests, and collects every thread's loader status, per-worker memory and startup times.
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, relative } from 'node:path';
import { cleanEnv, cli, repo } from '../lib.mjs';
import { send } from './client.mjs';

export const poolModule = join(repo, 'dist/pool/index.js');
export const primaryScript = join(repo, 'bench/servers/primary.mjs');
export const trainScript = join(repo, 'bench/servers/train.mjs');
export const gcProbe = join(repo, 'bench/servers/gc-probe.cjs');
/** Where the tests and the benchmark install and build the server corpora (once per source). */
export const serversCache = join(repo, 'node_modules/.cache/codeblob-test/servers');

/**
 * Response headers that genuinely differ between two runs of the same server, masked before
 * comparing: the date, and the pid of the worker that answered (x-served-by, added by both
 * corpora so the harness knows when every worker serves). Nothing else is masked.
 */
export const MASKED_HEADERS = ['date', 'x-served-by'];

const now = () => performance.timeOrigin + performance.now();

/** Files of a corpus folder (not node_modules), relative, sorted. */
function sourceFiles(dir) {
  const out = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name === '.next') continue;
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

/**
 * Copies corpus/<name> into `dir` (only the files whose content differs, so mtimes stay put) and
 * runs `npm ci` when the lockfile changed. Returns whether any file changed.
 */
function syncCorpus(name, dir) {
  const src = join(repo, 'corpus', name);
  mkdirSync(dir, { recursive: true });
  let changed = false;
  for (const f of sourceFiles(src)) {
    const from = readFileSync(join(src, f));
    const to = join(dir, f);
    if (existsSync(to) && readFileSync(to).equals(from)) continue;
    mkdirSync(join(to, '..'), { recursive: true });
    writeFileSync(to, from);
    changed = true;
  }
  const lock = readFileSync(join(src, 'package-lock.json'), 'utf8');
  const marker = join(dir, '.installed-lock');
  if (!existsSync(marker) || readFileSync(marker, 'utf8') !== lock) {
    execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, npm_config_update_notifier: 'false' } });
    writeFileSync(marker, lock);
    changed = true;
  }
  return changed;
}

function digestOf(dir, files) {
  const h = createHash('sha256');
  for (const f of files) h.update(f).update('\0').update(readFileSync(join(dir, f))).update('\0');
  return h.digest('hex');
}

/**
 * The server corpora. `install(cacheRoot)` installs (and builds) one, once per source change,
 * and returns the tree a deployment ships ({ tree, entry, env for every run }); `deployServer`
 * copies that tree to where it runs.
 */
export const SERVERS = {
  fastify: {
    requests: join(repo, 'corpus/fastify/requests.json'),
    install(cacheRoot = serversCache) {
      const dir = join(cacheRoot, 'fastify');
      syncCorpus('fastify', dir);
      return { tree: dir, entry: 'server.js', env: {} };
    },
  },
  nextjs: {
    requests: join(repo, 'corpus/nextjs/requests.json'),
    /** Installs from the lockfile and runs `next build` (output: 'standalone') when a source changed. */
    install(cacheRoot = serversCache) {
      const dir = join(cacheRoot, 'nextjs');
      syncCorpus('nextjs', dir);
      const standalone = join(dir, '.next/standalone');
      const digest = digestOf(dir, sourceFiles(dir).filter((f) => !f.startsWith('.')));
      const marker = join(dir, '.built');
      if (!existsSync(join(standalone, 'server.js')) || !existsSync(marker) || readFileSync(marker, 'utf8') !== digest) {
        rmSync(join(dir, '.next'), { recursive: true, force: true });
        execFileSync(process.execPath, [join(dir, 'node_modules/next/dist/bin/next'), 'build'], {
          cwd: dir, stdio: ['ignore', 'ignore', 'inherit'], env: { ...cleanEnv(), NEXT_TELEMETRY_DISABLED: '1' },
        });
        // What a deployment does next (Next's docs): the standalone server serves its static
        // assets from .next/static, which the build leaves outside the standalone tree.
        cpSync(join(dir, '.next/static'), join(standalone, '.next/static'), { recursive: true });
        writeFileSync(marker, digest);
      }
      // HOSTNAME: the standalone server listens on it (else 0.0.0.0).
      return { tree: standalone, entry: 'server.js', env: { HOSTNAME: '127.0.0.1', NEXT_TELEMETRY_DISABLED: '1' } };
    },
  },
};

/**
 * Installs (builds) server `name` and copies its deployable tree to `dest` (which must not
 * exist), as a deployment does: the app then runs outside the build folder. This matters: Next's
 * standalone server, run in place, resolves files it lacks from the full install around it
 * (next/dist/compiled/webpack/webpack-lib); and Node's lookup would reach this repository's
 * node_modules from anywhere under it, so `dest` belongs outside (os.tmpdir()).
 * Returns { appDir, entry, env }.
 */
export function deployServer(name, dest) {
  const built = SERVERS[name].install();
  copyTree(built.tree, dest, true);
  return { appDir: dest, entry: built.entry, env: built.env };
}

/** A TCP port free right now (the Next.js standalone server takes PORT=0 as 3000). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Packs the server in `app` ({ appDir, entry, env }) with `node`: traced with --settle-ms,
 * trained with bench/servers/train.mjs (every request of the list, twice), root = appDir.
 * Returns the pack's JSON summary.
 */
export async function packServer(node, app, requestsFile, blob, { settleMs = 1500, logDir } = {}) {
  const port = await freePort();
  const out = execFileSync(process.execPath, [
    cli, 'pack', '--node', node, '--json', '-o', blob, '--root', app.appDir,
    '--settle-ms', String(settleMs), '--train', trainScript, app.entry,
  ], {
    cwd: app.appDir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: cleanEnv({ ...app.env, PORT: String(port), TRAIN_PORT: String(port), TRAIN_REQUESTS: requestsFile, ...(logDir ? { LOG_DIR: logDir } : {}) }),
    maxBuffer: 64 << 20,
  });
  return JSON.parse(out);
}

/** Reads /proc/<pid>/status Threads. */
function threadCount(pid) {
  try {
    return Number(/^Threads:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  } catch {
    return undefined;
  }
}

/**
 * Runs the server as a cluster of `workers` (plain, or with `blob` through preloadPrimary),
 * waits until every worker listens, then until every worker has answered a request (the first
 * of the list, sent `workers` at a time on fresh connections), sends every request of the list
 * `passes` times one after another, measures every worker and the primary (USS/PSS through
 * codeblob's measure, the same reader as bench/pools.mjs), stops the cluster with SIGTERM and
 * reads every thread's status file.
 */
export async function runCluster({ node, app, requests, workers, blob, statusDir, logDir, passes = 1, extraEnv = {}, measure }) {
  const port = await freePort();
  if (statusDir) mkdirSync(statusDir, { recursive: true });
  const env = cleanEnv({
    ...app.env,
    PORT: String(port),
    CODEBLOB_POOL_MODULE: poolModule,
    ...(measure ? { BENCH_GC_PROBE: gcProbe } : {}),
    ...(logDir ? { LOG_DIR: logDir } : {}),
    ...(blob ? { NODE_DEBUG: 'codeblob', CODEBLOB_STATUS_FILE: join(statusDir, '%p-%t.json') } : {}),
    ...extraEnv,
  });
  const primary = spawn(node, [primaryScript, app.entry, String(workers), ...(blob ? [blob] : [])], { cwd: app.appDir, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  primary.stderr.on('data', (d) => (stderr += d));
  primary.stdin.on('error', () => {});
  const lines = [];
  const waiters = [];
  let buffered = '';
  primary.stdout.on('data', (d) => {
    buffered += d;
    let nl;
    while ((nl = buffered.indexOf('\n')) !== -1) {
      const line = JSON.parse(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
      if (waiters.length) waiters.shift().resolve(line);
      else lines.push(line);
    }
  });
  const closed = new Promise((resolve) => primary.on('close', (code, signal) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`the primary exited with ${code ?? signal}:\n${appOutput(stderr).slice(-3000)}`));
    resolve({ code, signal });
  }));
  const next = () => (lines.length ? Promise.resolve(lines.shift()) : new Promise((resolve, reject) => waiters.push({ resolve, reject })));

  try {
    const ready = await next();
    if (ready.event !== 'ready') throw new Error(`the cluster did not start: ${ready.message}\n${appOutput(stderr).slice(-3000)}`);
    if (blob && !ready.preload?.enabled) throw new Error(`preloadPrimary: ${ready.preload?.reason}`);

    // Every worker serves: fresh connections, `workers` at a time, until each pid answered.
    const served = new Set();
    let warmup = 0;
    for (let round = 0; served.size < workers; round++) {
      if (round > 50 * workers) throw new Error(`only ${served.size} of ${workers} workers answered after ${round} rounds`);
      const answers = await Promise.all(Array.from({ length: workers }, () => send(port, requests[0])));
      warmup += workers;
      for (const a of answers) served.add(a.headers.find(([k]) => k === 'x-served-by')?.[1]);
      served.delete(undefined);
    }
    const servingAt = now();

    const responses = [];
    for (let pass = 0; pass < passes; pass++) {
      for (const [i, req] of requests.entries()) responses.push({ index: i, pass, ...(await send(port, req)) });
    }

    // Memory: right after the requests, after a full GC in every worker's main isolate, and
    // settled (a memory-reducing GC, as V8 does by itself once an isolate idles). The pino
    // thread's isolate is not collected: its heap counts as it is.
    let memory;
    if (measure) {
      const snapshot = () => ready.workers.map((pid) => ({ ...pick(measure(pid)), threads: threadCount(pid) }));
      memory = { workers: snapshot(), primary: { ...pick(measure(ready.primaryPid)), threads: threadCount(ready.primaryPid) } };
      for (const what of ['gc', 'settle']) {
        primary.stdin.write(`${what}\n`);
        const done = await next();
        if (done.event !== 'collected') throw new Error(`expected the workers to collect, got ${JSON.stringify(done)}`);
        memory[what] = snapshot();
      }
    }

    primary.stdin.write('stop\n');
    const stopped = await next();
    const exit = await closed;
    const statuses = statusDir ? readStatuses(statusDir, ready.workers) : [];
    return {
      mode: blob ? 'codeblob' : 'plain',
      port,
      preloadMs: ready.preloadMs,
      listeningMs: ready.listeningAt - ready.forkAt,
      servingMs: servingAt - ready.forkAt,
      workerPids: ready.workers,
      /** Requests sent until every worker had answered one (before the compared ones). */
      warmup,
      responses,
      memory,
      exits: stopped.exits,
      primaryExit: exit,
      statuses,
      debug: blob ? debugLines(stderr) : undefined,
      stderr,
    };
  } finally {
    if (primary.exitCode === null && primary.signalCode === null) {
      primary.kill('SIGKILL');
      for (const pid of lines.find((l) => l.event === 'ready')?.workers ?? []) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
    }
  }
}

/** The workers' own output, without NODE_DEBUG=codeblob's lines. */
const appOutput = (stderr) => stderr.split('\n').filter((l) => !l.startsWith('CODEBLOB ')).join('\n');

function pick(m) {
  return { uss: m.uss, pss: m.pss, anon: m.privateDirty, rss: m.rss, blobRss: m.blobs[0]?.rss ?? 0 };
}

/**
 * Every status file in `dir` ({pid}-{threadId}.json), with its role: 'worker main' (a cluster
 * worker's main thread), 'worker thread' (a thread a worker started, e.g. pino's transport),
 * or 'other' (a process the harness did not fork).
 */
export function readStatuses(dir, workerPids = []) {
  return readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => {
    const s = JSON.parse(readFileSync(join(dir, f), 'utf8'));
    const role = !workerPids.includes(s.pid) ? 'other' : s.threadId === 0 ? 'worker main' : 'worker thread';
    return { pid: s.pid, threadId: s.threadId, role, enabled: s.enabled, reason: s.reason, resolve: s.resolve, counters: s.counters };
  }).sort((a, b) => a.pid - b.pid || a.threadId - b.threadId);
}

/** NODE_DEBUG=codeblob lines that name a module loaded from disk: { missed: [...], stale: [...] } per pid. */
export function debugLines(stderr) {
  const out = {};
  for (const m of stderr.matchAll(/^CODEBLOB (\d+): (not in the blob|stale \([^)]*\), loading from disk|content differs from the blob[^:]*|deferred to Node): (.+)$/gm)) {
    const e = (out[m[1]] ??= { missed: [], stale: [], other: [] });
    (m[2] === 'not in the blob' ? e.missed : m[2].startsWith('stale') ? e.stale : e.other).push(m[3]);
  }
  return out;
}

/** A response with the masked headers removed, for comparison and for reports. */
export function canonical(r) {
  return {
    status: r.status,
    headers: r.headers.filter(([k]) => !MASKED_HEADERS.includes(k)),
    body: r.body.toString('base64'),
  };
}

/**
 * Compares every response of `runs` (same request list) with the first run's response to the
 * same request, byte for byte after masking MASKED_HEADERS. Returns the differences found.
 */
export function compareResponses(requests, runs) {
  const reference = new Map(runs[0].responses.filter((r) => r.pass === 0).map((r) => [r.index, canonical(r)]));
  const diffs = [];
  for (const run of runs) {
    for (const r of run.responses) {
      const a = reference.get(r.index);
      const b = canonical(r);
      if (a.status !== b.status || JSON.stringify(a.headers) !== JSON.stringify(b.headers) || a.body !== b.body) {
        const req = requests[r.index];
        diffs.push({
          mode: run.mode, pass: r.pass, request: `${req.method ?? 'GET'} ${req.path}`,
          status: [a.status, b.status],
          headers: a.headers.length === b.headers.length ? a.headers.map((h, i) => [h, b.headers[i]]).filter(([x, y]) => JSON.stringify(x) !== JSON.stringify(y)) : [a.headers, b.headers],
          bodyEqual: a.body === b.body,
        });
      }
    }
  }
  return diffs;
}

/** Per-thread rows of loader counters: what came from disk and why. */
export function threadReport(statuses) {
  return statuses.map((s) => ({
    pid: s.pid, threadId: s.threadId, role: s.role, enabled: s.enabled,
    hits: s.counters.hits, jsonHits: s.counters.jsonHits, esmHits: s.counters.esmHits,
    misses: s.counters.misses, stale: s.counters.stale, timeOnly: s.counters.timeOnly ?? 0, deferred: s.counters.deferred, cacheRejected: s.counters.cacheRejected,
    resolveHits: s.counters.resolveHits, resolveMisses: s.counters.resolveMisses, resolveStale: s.counters.resolveStale, resolveTimeOnly: s.counters.resolveTimeOnly ?? 0,
    ...(s.reason ? { reason: s.reason } : {}),
  }));
}

/** `cp -r` (GNU: new mtimes, like a pipeline's copy) or `cp -a` (times kept) of a tree. */
export function copyTree(from, to, preserve = false) {
  rmSync(to, { recursive: true, force: true });
  execFileSync('cp', [preserve ? '-a' : '-r', from, to]);
  return to;
}

export const requestsOf = (file) => JSON.parse(readFileSync(file, 'utf8'));
