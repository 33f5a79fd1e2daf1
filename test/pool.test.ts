/**
 * Worker pools: piscina threads, cluster, child_process.fork and raw worker threads all load
 * from the blob with the options codeblob/pool gives them (counters reported by the workers
 * themselves), threads of one process share one mapping, answers are right, and a new pack
 * renamed over the blob moves only new workers to it.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, cli, referenceCorpus, registerPath, repo, run, runtimes } from './helpers/env.js';

interface Report {
  pid: number;
  threadId: number;
  answer: { version: string; sum: number; chunks: number };
  enabled: boolean;
  reason?: string;
  counters: { hits: number; stale: number; misses: number; cacheRejected: number };
  mappings: number;
  blobResident?: number;
}

const piscinaModule = createRequire(join(repo, 'package.json')).resolve('piscina');

describe.each(runtimes())('pools on $name', (rt) => {
  let dir: string;
  let blob: string;
  const corpus = referenceCorpus();

  const primary = (how: string, count: number, extra: string[] = []) => {
    const r = run(rt.bin, [join(dir, 'primary.mjs'), how, blob, String(count), ...extra], {
      cwd: dir,
      env: cleanEnv({ CODEBLOB_POOL_MODULE: join(repo, 'dist/pool/index.js'), PISCINA_MODULE: piscinaModule }),
    });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as { primaryPid: number; enabled: boolean; reports: Report[] };
  };
  const expectFromBlob = (reports: Report[]) => {
    for (const r of reports) {
      expect(r.reason).toBeUndefined();
      expect(r.enabled).toBe(true);
      expect(r.answer).toEqual({ version: 'v1', sum: 465, chunks: 10 });
      expect(r.counters.hits).toBeGreaterThanOrEqual(3); // report, answer, lodash
      expect(r.counters.stale + r.counters.cacheRejected).toBe(0);
      expect(r.mappings).toBe(1);
    }
  };

  beforeAll(() => {
    // Inside the corpus so that `require('lodash')` resolves to a real package.
    dir = mkdtempSync(join(corpus, `pool-${rt.name}-`));
    cpSync(join(repo, 'test/fixtures/pool'), dir, { recursive: true });
    blob = join(dir, 'app.blob');
    const r = run(process.execPath, [cli, 'pack', '--node', rt.bin, 'worker.cjs', '--include', 'task.cjs', '-o', blob], { cwd: dir, env: cleanEnv() });
    expect(r.status, r.stderr).toBe(0);
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('piscina: every thread loads from the blob, and the process has one mapping', () => {
    const { reports } = primary('piscina', 3);
    expect(new Set(reports.map((r) => r.threadId)).size).toBeGreaterThanOrEqual(2);
    expect(new Set(reports.map((r) => r.pid)).size).toBe(1);
    expectFromBlob(reports);
  });

  it('piscina with synchronous tasks (threads blocked in Atomics.wait between tasks): the blob\'s pages are still released after loading', () => {
    const { reports } = primary('piscina-sync', 2);
    expectFromBlob(reports);
    expect(reports[0]!.blobResident).toBe(0);
  });

  it('raw worker threads: --require in execArgv runs in each thread, one mapping per process', () => {
    const { reports } = primary('worker', 3);
    expect(reports).toHaveLength(3);
    expect(new Set(reports.map((r) => r.threadId)).size).toBe(3);
    expectFromBlob(reports);
  });

  it('child_process.fork: each child maps the blob and loads from it', () => {
    const { reports, primaryPid } = primary('fork', 2);
    expect(new Set(reports.map((r) => r.pid)).size).toBe(2);
    expect(reports.every((r) => r.pid !== primaryPid)).toBe(true);
    expectFromBlob(reports);
  });

  it('cluster with preloadPrimary: workers load the pinned generation without re-hashing', () => {
    const { reports, enabled } = primary('cluster', 2, ['--primary']);
    expect(enabled).toBe(true);
    expect(reports).toHaveLength(2);
    expectFromBlob(reports);
  });

  it('hot update: old workers keep their generation, workers after a new preloadPrimary use the new one', () => {
    // An app of its own, which this test edits and packs again as a deploy would (inside the
    // corpus, as the others, for lodash): the other tests keep the app and blob as packed.
    const app = mkdtempSync(join(corpus, `pool-hot-${rt.name}-`));
    cpSync(join(repo, 'test/fixtures/pool'), app, { recursive: true });
    const appBlob = join(app, 'app.blob');
    const packed = run(process.execPath, [cli, 'pack', '--node', rt.bin, 'worker.cjs', '--include', 'task.cjs', '-o', appBlob], { cwd: app, env: cleanEnv() });
    expect(packed.status, packed.stderr).toBe(0);
    const script = join(app, 'hot.mjs');
    writeFileSync(
      script,
      `
import { fork, execFileSync } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
const { preloadPrimary } = await import(process.env.CODEBLOB_POOL_MODULE);
const [blob, node, cli] = process.argv.slice(2);
const start = (opts) => {
  const c = fork('./long-worker.cjs', [], { execArgv: opts.execArgv, env: opts.env });
  return { ask: () => new Promise((r) => { c.once('message', r); c.send('go'); }), stop: () => c.kill() };
};
const gen1 = preloadPrimary(blob);
const a = start(gen1);
const first = await a.ask();
// A new version of the app, packed and renamed over the blob while worker a runs.
writeFileSync('./lib/answer.cjs', readFileSync('./lib/answer.cjs', 'utf8').replace("'v1'", "'v2'"));
execFileSync(process.execPath, [cli, 'pack', '--node', node, 'worker.cjs', '-o', blob]);
const gen2 = preloadPrimary(blob);
const b = start(gen2);
const second = await a.ask();
const third = await b.ask();
a.stop(); b.stop(); gen1.close(); gen2.close();
console.log(JSON.stringify({ first, second, third, digests: [gen1.pin.digest, gen2.pin.digest] }));
`,
    );
    writeFileSync(
      join(app, 'long-worker.cjs'),
      `process.on('message', () => process.send(require('./report.cjs')(30)));`,
    );
    try {
      const r = run(rt.bin, [script, appBlob, rt.bin, cli], { cwd: app, env: cleanEnv({ CODEBLOB_POOL_MODULE: join(repo, 'dist/pool/index.js') }) });
      expect(r.status, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { first: Report; second: Report; third: Report; digests: string[] };
      expect(out.digests[0]).not.toBe(out.digests[1]);
      expect(out.first.answer.version).toBe('v1');
      expect(out.second.answer.version).toBe('v1'); // still the code it loaded
      expect(out.second.enabled).toBe(true);
      expect(out.third.answer.version).toBe('v2');
      expect(out.third.counters.hits).toBeGreaterThanOrEqual(3);
      expect(out.third.counters.stale).toBe(0);
    } finally {
      rmSync(app, { recursive: true, force: true });
    }
  });

  it('a primary itself started with codeblob/register passes on exactly one preload: the CommonJS bundle', () => {
    const script = join(dir, 'primary-options.mjs');
    writeFileSync(script, `
      const { preloadOptions } = await import(${JSON.stringify(join(repo, 'dist/pool/index.js'))});
      const o = preloadOptions(${JSON.stringify(blob)});
      console.log(JSON.stringify(o.execArgv));
    `);
    for (const flags of [['--require', registerPath], ['--import', 'codeblob/register'], ['--require', registerPath, '--import', join(repo, 'dist/loader/register.js')]]) {
      const r = run(rt.bin, [...flags, '--max-old-space-size=300', script], { cwd: repo, env: cleanEnv() });
      expect(r.status, r.stderr).toBe(0);
      const execArgv = JSON.parse(r.stdout.trim().split('\n').pop()!) as string[];
      expect(execArgv).toEqual(['--max-old-space-size=300', '--require', registerPath]);
    }
  });

  it('preloadPrimary costs the primary at most 2 MiB of its own memory and maps nothing, and leaves the whole blob in the page cache', () => {
    // A blob worth noticing: 16 MiB of source the primary must not keep resident.
    const big = mkdtempSync(join(tmpdir(), `codeblob-primary-${rt.name}-`));
    try {
      writeFileSync(join(big, 'package.json'), '{}');
      writeFileSync(join(big, 'big.js'), `exports.text = ${JSON.stringify('x'.repeat(16 << 20))};\n`);
      writeFileSync(join(big, 'main.js'), "require('./big.js');\n");
      const bigBlob = join(big, 'app.blob');
      expect(run(process.execPath, [cli, 'pack', '--node', rt.bin, 'main.js', '-o', bigBlob], { cwd: big, env: cleanEnv() }).status).toBe(0);
      const script = join(big, 'primary.mjs');
      writeFileSync(script, `
        import { readFileSync } from 'node:fs';
        let preload;
        if (process.argv[2] === 'preload') preload = (await import(${JSON.stringify(join(repo, 'dist/pool/index.js'))})).preloadPrimary(${JSON.stringify(bigBlob)});
        for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setImmediate(r)); }
        const rollup = readFileSync('/proc/self/smaps_rollup', 'utf8');
        const kib = (k) => Number(rollup.split('\\n').find((l) => l.startsWith(k + ':')).split(/ +/)[1]);
        console.log(JSON.stringify({ enabled: preload?.enabled, warmedBytes: preload?.warmedBytes, anonymous: kib('Anonymous'), mapsBlob: readFileSync('/proc/self/maps', 'utf8').includes('app.blob') }));
      `);
      const sample = (mode: string) => {
        const r = run(rt.bin, ['--expose-gc', script, mode], { cwd: big, env: cleanEnv() });
        expect(r.status, r.stderr).toBe(0);
        return JSON.parse(r.stdout) as { enabled?: boolean; warmedBytes?: number; anonymous: number; mapsBlob: boolean };
      };
      const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      const without: number[] = [];
      const withPreload: number[] = [];
      for (let i = 0; i < 3; i++) {
        without.push(sample('none').anonymous);
        const p = sample('preload');
        expect(p.enabled).toBe(true);
        expect(p.mapsBlob).toBe(false);
        withPreload.push(p.anonymous);
      }
      expect(median(withPreload) - median(without)).toBeLessThanOrEqual(2 * 1024);
      // Warm for the workers: every page of the file is in the page cache once the check has
      // read it, also when few were before (the pack just wrote them all: drop them first).
      const size = statSync(bigBlob).size;
      const resident = () => {
        const check = run(process.execPath, ['--input-type=module', '-e', `
          const { open } = await import(${JSON.stringify(join(repo, 'dist/index.js'))});
          const s = open(${JSON.stringify(bigBlob)}); const st = s.stats(); console.log(st.bytesResident / st.bytesMapped);
        `], { env: cleanEnv() });
        expect(check.status, check.stderr).toBe(0);
        return Number(check.stdout.trim());
      };
      const dropped = run('dd', [`if=${bigBlob}`, 'iflag=nocache', 'count=0', 'status=none']); // posix_fadvise(DONTNEED)
      expect(dropped.status, dropped.stderr).toBe(0);
      expect(resident()).toBeLessThan(0.5);
      const warmed = sample('preload');
      expect(warmed.enabled).toBe(true);
      // The checking child measured it right after reading: all of it.
      expect(warmed.warmedBytes).toBe(size);
      // And it stays there for the workers. Not asserted to the page: the kernel may evict cold
      // file pages at any time even with memory to spare (this CI's VM reclaims proactively,
      // about 1 MiB a minute of a file nobody maps).
      expect(resident()).toBeGreaterThan(0.9);
    } finally {
      rmSync(big, { recursive: true, force: true });
    }
  });

  it('preloadPrimary reports and steps aside for a corrupt blob', () => {
    const bad = join(dir, 'bad.blob');
    const bytes = readFileSync(blob);
    bytes[bytes.length - 3]! ^= 0xff;
    writeFileSync(bad, bytes);
    const r = run(rt.bin, ['--input-type=module', '-e', `
      const { preloadPrimary } = await import(${JSON.stringify(join(repo, 'dist/pool/index.js'))});
      const p = preloadPrimary(${JSON.stringify(bad)});
      console.log(JSON.stringify({ enabled: p.enabled, reason: p.reason, hasFile: 'CODEBLOB_FILE' in p.env, execArgv: p.execArgv }));
    `], { cwd: dir, env: cleanEnv() });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { enabled: boolean; reason: string; hasFile: boolean; execArgv: string[] };
    expect(out).toMatchObject({ enabled: false, hasFile: false });
    expect(out.reason).toMatch(/ERR_CODEBLOB_CORRUPT_ENTRY|integrity/);
    expect(out.execArgv.join(' ')).not.toMatch(/register/);
    expect(out.execArgv).not.toContain('-e');
  });
});

describe('measure() and codeblob mem on a process whose memory the test controls', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'codeblob-mem-'));
    writeFileSync(join(dir, 'package.json'), '{"type":"commonjs"}');
    // ~64 pages of text in one module.
    writeFileSync(join(dir, 'big.js'), `exports.text = ${JSON.stringify('x'.repeat(64 * 4096))};\n`);
    writeFileSync(join(dir, 'main.js'), "require('./big.js');\n");
    const r = run(process.execPath, [cli, 'pack', 'main.js', '-o', 'app.blob'], { cwd: dir, env: cleanEnv() });
    expect(r.status, r.stderr).toBe(0);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('counts the blob pages two children touch as shared, with PSS split between them', async () => {
    const { spawn } = await import('node:child_process');
    const { measure } = await import('../src/index.js');
    const { statSync } = await import('node:fs');
    // Each child reads every page of the blob (the kernel's fault-around maps whole windows, so
    // "every page" is the count that is exact): all of them resident, all shared by the two.
    const pages = Math.ceil(statSync(join(dir, 'app.blob')).size / 4096);
    const child = () => {
      const c = spawn(process.execPath, ['--input-type=module', '-e', `
        const { open } = await import(${JSON.stringify(join(repo, 'dist/index.js'))});
        const s = open(${JSON.stringify(join(dir, 'app.blob'))}, { verify: 'full' });
        globalThis.keep = s; // else a GC while the test measures may collect the store and unmap it
        process.stdout.write('ready\\n');
        process.stdin.resume();
      `], { stdio: ['pipe', 'pipe', 'inherit'] });
      return new Promise<typeof c>((resolve) => c.stdout.once('data', () => resolve(c)));
    };
    const a = await child();
    const b = await child();
    try {
      const ma = measure(a.pid!);
      const mb = measure(b.pid!);
      for (const m of [ma, mb]) {
        expect(m.blobs).toHaveLength(1);
        expect(m.blobs[0]!.rss).toBe(pages * 4096);
        expect(m.blobs[0]!.shared).toBe(pages * 4096);
        expect(m.blobs[0]!.pss).toBe((pages * 4096) / 2);
        expect(m.uss).toBe(m.privateClean + m.privateDirty);
        expect(m.pss).toBeLessThan(m.rss);
      }
      const r = run(process.execPath, [cli, 'mem', String(a.pid), String(b.pid), '--json'], { env: cleanEnv() });
      expect(r.status).toBe(0);
      const tree = JSON.parse(r.stdout) as { processes: unknown[]; blobs: { processes: number; rss: number }[] };
      expect(tree.processes).toHaveLength(2);
      expect(tree.blobs[0]).toMatchObject({ processes: 2, rss: 2 * pages * 4096 });
      const text = run(process.execPath, [cli, 'mem', '--tree', String(process.pid)], { env: cleanEnv() });
      expect(text.status).toBe(0);
      expect(text.stdout).toMatch(/mapped by 2 process\(es\)/);
    } finally {
      a.kill();
      b.kill();
    }
  });

  it('says clearly when a pid does not exist', () => {
    const r = run(process.execPath, [cli, 'mem', '999999999'], { env: cleanEnv() });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('codeblob: no such process: 999999999\n');
  });
});

describe('heap statistics per isolate', () => {
  it('reports the calling isolate and, where Node can, a worker thread from its parent', async () => {
    const { heapStatistics, workerHeapStatistics } = await import('../src/index.js');
    const { Worker } = await import('node:worker_threads');
    const own = heapStatistics();
    expect(own.usedHeapSize).toBeGreaterThan(0);
    expect(own.totalHeapSize).toBeGreaterThanOrEqual(own.usedHeapSize);
    expect(Object.keys(own.spaces)).toContain('old_space');
    const w = new Worker('setInterval(() => {}, 1000)', { eval: true });
    try {
      await new Promise((r) => w.once('online', r));
      const theirs = await workerHeapStatistics(w);
      const supported = typeof (w as unknown as { getHeapStatistics?: unknown }).getHeapStatistics === 'function';
      if (supported) expect(theirs!.usedHeapSize).toBeGreaterThan(0);
      else expect(theirs).toBeUndefined();
    } finally {
      await w.terminate();
    }
  });
});

describe('settleHeap: what the memory reducer gives back, now', () => {
  it.each(runtimes())('on $name, frees the garbage and the young generation V8 kept', (rt) => {
    const r = run(rt.bin, ['--input-type=module', '-e', `
      import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
      const { settleHeap } = await import(${JSON.stringify(join(repo, 'dist/index.js'))});
      let junk = []; for (let i = 0; i < 200000; i++) junk.push({ i, s: 'x' + i });
      const young = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').physical_space_size;
      const before = { used: getHeapStatistics().used_heap_size, young: young() };
      junk = undefined;
      const youngAfter = settleHeap();
      console.log(JSON.stringify({ before, after: { used: getHeapStatistics().used_heap_size, young: youngAfter } }));
    `], { env: cleanEnv() });
    expect(r.status, r.stderr).toBe(0);
    const { before, after } = JSON.parse(r.stdout) as { before: { used: number; young: number }; after: { used: number; young: number } };
    expect(after.used).toBeLessThan(before.used - 5 * 1024 * 1024);
    // V8 12+ (Node 22+) gives the young generation back too.
    if (rt.major >= 22) expect(after.young).toBeLessThan(before.young);
  });
});

describe('settleHeapAsync: the same on every Node, with no V8 flag changed', () => {
  it.each(runtimes())('on $name, frees the garbage and gives back the young generation, in the main thread and a worker thread', (rt) => {
    const dist = JSON.stringify(join(repo, 'dist/index.js'));
    // A worker thread settles its own isolate.
    const threadCode = JSON.stringify(`
      (async () => {
        const { parentPort } = await import('node:worker_threads');
        const { getHeapSpaceStatistics } = await import('node:v8');
        const { settleHeapAsync } = await import(${dist});
        let junk = []; for (let i = 0; i < 200000; i++) junk.push({ i });
        const before = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').physical_space_size;
        junk = undefined;
        parentPort.postMessage({ before, after: await settleHeapAsync() });
      })();
    `);
    const r = run(rt.bin, ['--input-type=module', '-e', `
      import { cachedDataVersionTag, getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
      import { Worker } from 'node:worker_threads';
      const { settleHeapAsync } = await import(${dist});
      const young = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').physical_space_size;
      const tag = cachedDataVersionTag();
      let junk = []; for (let i = 0; i < 200000; i++) junk.push({ i, s: 'x' + i });
      const before = { used: getHeapStatistics().used_heap_size, young: young() };
      junk = undefined;
      const youngAfter = await settleHeapAsync();
      const after = { used: getHeapStatistics().used_heap_size, young: youngAfter };
      const sameTag = cachedDataVersionTag() === tag;
      const inThread = await new Promise((resolve, reject) => {
        const w = new Worker(${threadCode}, { eval: true });
        w.once('message', (m) => { w.terminate(); resolve(m); });
        w.once('error', reject);
      });
      console.log(JSON.stringify({ before, after, sameTag, inThread }));
    `], { env: cleanEnv() });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { before: { used: number; young: number }; after: { used: number; young: number }; sameTag: boolean; inThread: { before: number; after: number } };
    expect(out.after.used).toBeLessThan(out.before.used - 5 * 1024 * 1024);
    // The young generation is given back on Node 20 too (a regular full GC keeps it there).
    expect(out.after.young).toBeLessThan(out.before.young / 2);
    expect(out.inThread.after).toBeLessThan(out.inThread.before);
    // No V8 flag was changed: code caches made before and after it are interchangeable.
    expect(out.sameTag).toBe(true);
  });
});

describe('preloadOptions', () => {
  it('keeps the operator\'s CODEBLOB_VERIFY unless the option says otherwise', async () => {
    const { preloadOptions } = await import('../src/pool/index.js');
    expect(preloadOptions('app.blob', { env: { CODEBLOB_VERIFY: 'none' } }).env.CODEBLOB_VERIFY).toBe('none');
    expect(preloadOptions('app.blob', { env: { CODEBLOB_VERIFY: 'none' }, verify: 'hash' }).env.CODEBLOB_VERIFY).toBe('hash');
    expect(preloadOptions('app.blob', { env: {} }).env.CODEBLOB_VERIFY).toBe('stat');
  });
});
