/**
 * Real servers, run as users run them (issues 18 and 19), on the system Node: a cluster whose
 * primary calls preloadPrimary exactly as the README shows (bench/servers/primary.mjs), plain
 * and with codeblob, the same requests to both on fresh connections, every answer compared byte
 * for byte (only Date and x-served-by, the answering worker's pid, masked), and every thread's
 * loader status read from CODEBLOB_STATUS_FILE=dir/%p-%t.json.
 *
 * - corpus/fastify: plugins, schema validation, and pino logging through a worker-thread
 *   transport (thread-stream + real-require: what broke verdaccio in issue 18).
 * - corpus/nextjs: a Next.js 16 App Router app built with output: 'standalone' (Next's own SWC
 *   package), packed with --root .next/standalone.
 * - issue 19: the packed tree, blob included, copied with `cp -r` (new mtimes) and run again;
 *   and copied with `cp -a` (times kept, as `COPY --from` or `rsync -a` do) to another path,
 *   with the packed tree gone.
 *
 * Each app is deployed (copied out of its build folder) into the OS temp dir before packing, as
 * a deployment ships it (see deployServer).
 *
 * Assertions marked `it.fails` state what SHOULD hold and fails today because of a known bug
 * named in their title; flip them to `it` once the fix lands. The long side-by-side numbers
 * (4 workers, Node 20/24/26, memory) are `node bench/servers.mjs`.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVERS, compareResponses, copyTree, deployServer, packServer, requestsOf, runCluster } from '../bench/servers/lib.mjs';
import { STALENESS_LINE } from './helpers/files.js';

const WORKERS = 2;
const PASSES = 2;
const node = process.execPath;

interface Counters { hits: number; jsonHits: number; misses: number; stale: number; timeOnly: number; resolveHits: number; resolveMisses: number; resolveStale: number }
interface ThreadStatus { pid: number; threadId: number; role: string; enabled: boolean; reason?: string; counters: Counters }
interface Response { index: number; pass: number; status: number; headers: [string, string][]; body: Buffer }
interface Run { mode: string; stderr: string; responses: Response[]; statuses: ThreadStatus[]; warmup: number; workerPids: number[]; exits: { pid: number; code: number | null; signal: string | null }[]; debug?: Record<string, { missed: string[]; stale: string[] }> }
interface App { appDir: string; entry: string; env: Record<string, string> }

const mainThreads = (run: Run) => run.statuses.filter((s) => s.role === 'worker main');
const otherThreads = (run: Run) => run.statuses.filter((s) => s.role === 'worker thread');
const sum = (list: ThreadStatus[], k: keyof Counters) => list.reduce((s, x) => s + x.counters[k], 0);

/** Lines the pino transport thread wrote for finished requests, over every worker's log file. */
function loggedRequests(logDir: string): number {
  let n = 0;
  for (const f of readdirSync(logDir).filter((name) => name.endsWith('.ndjson'))) {
    n += readFileSync(join(logDir, f), 'utf8').split('\n').filter((l) => l.includes('"msg":"request completed"')).length;
  }
  return n;
}

function expectIdentical(requests: unknown[], plain: Run, fromBlob: Run) {
  expect(plain.responses).toHaveLength(requests.length * PASSES);
  expect(fromBlob.responses).toHaveLength(requests.length * PASSES);
  expect(compareResponses(requests, [plain, fromBlob])).toEqual([]);
}

describe('Fastify with a pino worker-thread transport, cluster of 2 (system Node)', () => {
  const server = SERVERS.fastify;
  let app: App;
  let scratch: string;
  let requests: { method?: string; path: string }[];
  let plain: Run;
  let fromBlob: Run;
  let fromCopy: Run;
  let fromCopyHash: Run;
  let plainCopy: Run;

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'codeblob-servers-fastify-'));
    app = deployServer('fastify', join(scratch, 'app'));
    requests = requestsOf(server.requests);
    // Inside the tree, as a build step leaves it: the copies below carry it along.
    const blob = join(app.appDir, 'app.blob');
    await packServer(node, app, server.requests, blob, { logDir: join(scratch, 'pack-logs') });
    const common = { node, requests, workers: WORKERS, passes: PASSES };
    plain = await runCluster({ ...common, app, statusDir: join(scratch, 'plain-status'), logDir: join(scratch, 'plain-logs') });
    fromBlob = await runCluster({ ...common, app, blob, statusDir: join(scratch, 'blob-status'), logDir: join(scratch, 'blob-logs') });
    // Issue 19: a pipeline copies the packed tree (cp -r resets every mtime) and runs the copy.
    const copy = copyTree(app.appDir, join(scratch, 'copy'));
    const copied = { ...app, appDir: copy };
    plainCopy = await runCluster({ ...common, app: copied, statusDir: join(scratch, 'copy-plain-status'), logDir: join(scratch, 'copy-plain-logs') });
    fromCopy = await runCluster({ ...common, app: copied, blob: join(copy, 'app.blob'), statusDir: join(scratch, 'copy-status'), logDir: join(scratch, 'copy-logs') });
    fromCopyHash = await runCluster({ ...common, app: copied, blob: join(copy, 'app.blob'), statusDir: join(scratch, 'copy-hash-status'), logDir: join(scratch, 'copy-hash-logs'), extraEnv: { CODEBLOB_VERIFY: 'hash' } });
    rmSync(copy, { recursive: true, force: true });
  }, 300_000);
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('answers every request identically, byte for byte', () => {
    expectIdentical(requests, plain, fromBlob);
    // The list exercises validation errors, 404s, CORS, compression and swagger, not only 200s.
    expect(new Set(plain.responses.map((r) => r.status))).toEqual(new Set([200, 201, 204, 302, 400, 404, 418]));
  });

  it('every worker logs every request through its pino transport thread, in both modes', () => {
    expect(loggedRequests(join(scratch, 'plain-logs'))).toBe(plain.warmup + requests.length * PASSES);
    expect(loggedRequests(join(scratch, 'blob-logs'))).toBe(fromBlob.warmup + requests.length * PASSES);
  });

  it('workers stop cleanly on SIGTERM (status files written at exit)', () => {
    for (const run of [plain, fromBlob]) {
      expect(run.exits).toHaveLength(WORKERS);
      for (const e of run.exits) expect(e).toMatchObject({ code: 0, signal: null });
    }
  });

  it('codeblob is on in every thread: each worker\'s main thread and its pino transport thread', () => {
    expect(mainThreads(fromBlob).map((s) => s.pid).sort()).toEqual([...fromBlob.workerPids].sort());
    expect(otherThreads(fromBlob).map((s) => s.pid).sort()).toEqual([...fromBlob.workerPids].sort());
    expect(fromBlob.statuses.filter((s) => s.role === 'other')).toEqual([]);
    for (const s of fromBlob.statuses) expect(s.enabled, `${s.pid}/${s.threadId}: ${s.reason}`).toBe(true);
  });

  it('every worker\'s main thread loads every module from the blob and resolves from its table', () => {
    for (const s of mainThreads(fromBlob)) {
      expect(s.counters.hits).toBeGreaterThan(600);
      expect(s.counters).toMatchObject({ misses: 0, stale: 0, resolveStale: 0 });
      expect(s.counters.resolveHits / (s.counters.resolveHits + s.counters.resolveMisses)).toBeGreaterThanOrEqual(0.99);
    }
  });

  // Issue 18, bug 2: the packer traces worker threads, so pino's transport thread (thread-stream,
  // real-require, pino/lib/worker.js, pino-pretty ...) loads from the blob as the main thread does.
  it('pino\'s transport thread loads every module from the blob too', () => {
    const threads = otherThreads(fromBlob);
    expect(threads).toHaveLength(WORKERS);
    for (const s of threads) expect(s.counters, `thread ${s.pid}/${s.threadId}: ${fromBlob.debug?.[s.pid]?.missed.slice(0, 5).join(', ')}`).toMatchObject({ misses: 0, stale: 0, resolveStale: 0 });
  });

  it('issue 19: a copy of the packed tree (cp -r, new mtimes) still answers identically, in stat and hash mode', () => {
    expectIdentical(requests, plainCopy, fromCopy);
    expectIdentical(requests, plainCopy, fromCopyHash);
    for (const s of [...fromCopy.statuses, ...fromCopyHash.statuses]) expect(s.enabled).toBe(true);
  });

  // Issue 19, content, not time, decides: no byte changed, so what was served before the copy is
  // served after it (each module after a content check), in every thread, in stat and hash mode.
  it('issue 19: the copy serves >= 99% of the module hits and table answers it served before, in stat and hash mode', () => {
    for (const [mode, copy] of [['stat', fromCopy], ['hash', fromCopyHash]] as const) {
      for (const threads of [mainThreads, otherThreads]) {
        const before = threads(fromBlob);
        const after = threads(copy);
        expect(after.length, mode).toBe(before.length);
        expect(sum(after, 'hits'), mode).toBeGreaterThanOrEqual(0.99 * sum(before, 'hits'));
        expect(sum(after, 'resolveHits'), mode).toBeGreaterThanOrEqual(0.99 * sum(before, 'resolveHits'));
        expect(sum(after, 'stale'), mode).toBe(0);
        expect(sum(after, 'resolveStale'), mode).toBe(0);
      }
    }
    // In stat mode every module of the copy was checked by content (counted), and one line per
    // process tree said why and how to avoid it.
    expect(sum(mainThreads(fromCopy), 'timeOnly')).toBeGreaterThanOrEqual(sum(mainThreads(fromCopy), 'hits') + sum(mainThreads(fromCopy), 'jsonHits'));
    const lines = fromCopy.stderr.match(STALENESS_LINE);
    expect(lines).toHaveLength(1);
    // The blob by its own path, not the primary's descriptor the workers map (/proc/<pid>/fd/<n>).
    expect(lines![0]).toContain(` modules packed in ${join(scratch, 'copy', 'app.blob')} `);
    expect(fromBlob.stderr.match(STALENESS_LINE)).toBeNull();
  });

  // Node 20 names the pack-time file in stack frames of a script compiled from a code cache; pino
  // resolves its transport targets from its caller's file name. The blob records where it was
  // traced, and a moved app serves sources without the caches there (store.ts).
  it('a copy that keeps times (cp -a) at another path, with the packed tree gone, answers identically', async () => {
    const moved = copyTree(app.appDir, join(scratch, 'moved'), true);
    const hidden = join(scratch, 'packed-tree-gone');
    renameSync(app.appDir, hidden);
    try {
      const common = { node, requests, workers: WORKERS, passes: PASSES, app: { ...app, appDir: moved } };
      const plainMoved = await runCluster({ ...common, logDir: join(scratch, 'moved-plain-logs') });
      const fromMoved = await runCluster({ ...common, blob: join(moved, 'app.blob'), statusDir: join(scratch, 'moved-status'), logDir: join(scratch, 'moved-logs') });
      expectIdentical(requests, plainMoved, fromMoved);
      for (const s of mainThreads(fromMoved)) expect(s.counters).toMatchObject({ misses: 0, stale: 0 });
    } finally {
      renameSync(hidden, app.appDir);
      rmSync(moved, { recursive: true, force: true });
    }
  }, 180_000);
});

describe('Next.js 16 standalone server, cluster of 2 (system Node)', () => {
  const server = SERVERS.nextjs;
  let app: App;
  let scratch: string;
  let requests: { method?: string; path: string }[];
  let plain: Run;
  let fromBlob: Run;
  let plainCopy: Run;
  let fromCopy: Run;
  let packed: { entries: number; root: string };

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'codeblob-servers-nextjs-'));
    app = deployServer('nextjs', join(scratch, 'app')); // npm ci + next build, once per source change
    requests = requestsOf(server.requests);
    const blob = join(scratch, 'app.blob');
    packed = await packServer(node, app, server.requests, blob);
    const common = { node, app, requests, workers: WORKERS, passes: PASSES };
    plain = await runCluster({ ...common, statusDir: join(scratch, 'plain-status') });
    fromBlob = await runCluster({ ...common, blob, statusDir: join(scratch, 'blob-status') });
    // Issue 19: what the next `next build` (or any pipeline step) does to a deployed standalone
    // tree: copies it, resetting every mtime. The blob goes along, beside the tree as before.
    const copied = join(scratch, 'copied');
    mkdirSync(copied);
    const copy = copyTree(app.appDir, join(copied, 'app'));
    copyTree(blob, join(copied, 'app.blob'));
    plainCopy = await runCluster({ ...common, app: { ...app, appDir: copy }, statusDir: join(scratch, 'copy-plain-status') });
    fromCopy = await runCluster({ ...common, app: { ...app, appDir: copy }, blob: join(copied, 'app.blob'), statusDir: join(scratch, 'copy-status') });
  }, 600_000);
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('packs the standalone tree', () => {
    expect(packed.root).toBe(app.appDir);
    expect(packed.entries).toBeGreaterThan(400);
  });

  it('answers every request identically, byte for byte', () => {
    expectIdentical(requests, plain, fromBlob);
    expect(new Set(plain.responses.map((r) => r.status))).toEqual(new Set([200, 307, 400, 404]));
  });

  it('workers stop on SIGTERM through Next\'s own handler (exit code 143)', () => {
    for (const run of [plain, fromBlob]) {
      expect(run.exits).toHaveLength(WORKERS);
      for (const e of run.exits) expect(e).toMatchObject({ code: 143, signal: null });
    }
  });

  it('issue 19: the standalone tree copied again (cp -r, new mtimes) answers identically and serves >= 99% of the module hits and table answers it served before', () => {
    expectIdentical(requests, plainCopy, fromCopy);
    const before = fromBlob.statuses;
    const after = fromCopy.statuses;
    expect(after).toHaveLength(before.length);
    expect(sum(after, 'hits')).toBeGreaterThanOrEqual(0.99 * sum(before, 'hits'));
    expect(sum(after, 'resolveHits')).toBeGreaterThanOrEqual(0.99 * sum(before, 'resolveHits'));
    for (const s of after) expect(s.counters).toMatchObject({ misses: 0, stale: 0, resolveStale: 0 });
    expect(fromCopy.stderr.match(STALENESS_LINE)).toHaveLength(1);
  });

  it('the standalone server starts no worker thread or process of its own, and every worker loads every module from the blob', () => {
    expect(fromBlob.statuses.map((s) => `${s.pid}/${s.threadId}`).sort()).toEqual(fromBlob.workerPids.map((p) => `${p}/0`).sort());
    for (const s of fromBlob.statuses) {
      expect(s.enabled, s.reason).toBe(true);
      expect(s.counters.hits).toBeGreaterThan(400);
      expect(s.counters).toMatchObject({ misses: 0, stale: 0, resolveStale: 0 });
      expect(s.counters.resolveHits / (s.counters.resolveHits + s.counters.resolveMisses)).toBeGreaterThanOrEqual(0.99);
    }
  });
});
