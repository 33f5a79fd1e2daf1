#!/usr/bin/env node
// Worker pools on the reference corpus, side by side in one run: plain `require`, Node's compile
// cache (Node >= 22.1, warm) and codeblob.
// (a) piscina: one process with a pool of N threads (N = 1, 2, 4, 8) that each load the corpus;
//     whole-process USS, PSS and anonymous memory once all have loaded and collected garbage,
//     the slope per added thread, and the time until all N threads have loaded.
// (b) cluster: N worker processes (codeblob through preloadPrimary, the primary holding the blob
//     mapped); per-worker USS/PSS/anonymous after load + full GC and the time until all are ready.
// Every sample is a fresh process (or fresh cluster), competitors interleaved, rotated per round.
// Runs under --node (re-executing itself there).
// Usage: node bench/pools.mjs [--node <bin>] [--threads 1,2,4,8] [--workers 8] [--rounds 3] [--quick]
import cluster from 'node:cluster';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { measure } from '../dist/index.js';
import { preloadPrimary } from '../dist/pool/index.js';
import {
  MiB, childLoad, cleanEnv, fitLine, hasCompileCache, header, mib, numbers, outDir, pack, printHeader, printTable,
  askedBackend, msText as ms, ratioText as ratio, referenceCorpus, reportedBackend, repo, rotate, runUnder, stats, why,
} from './lib.mjs';

const { values } = parseArgs({
  options: {
    node: { type: 'string', default: process.execPath },
    threads: { type: 'string' },
    workers: { type: 'string' },
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
  },
});
runUnder(values.node, import.meta.url);
const node = process.execPath;
const Ns = numbers(values.threads ?? (values.quick ? '1,4' : '1,2,4,8'));
const W = Number(values.workers ?? (values.quick ? 4 : 8));
const rounds = Number(values.rounds ?? (values.quick ? 1 : 3));
const corpus = referenceCorpus();
mkdirSync(outDir, { recursive: true });
const h = header(node);
const blob = join(outDir, `reference-${h.node}.blob`);
pack(node, corpus, ['entry.js'], blob);
const base = cleanEnv({ BENCH_ENTRY: join(corpus, 'entry.js') });
// cluster.fork() adds its env to this process's: keep codeblob's variables and NODE_OPTIONS out.
for (const k of Object.keys(process.env)) if (k.startsWith('CODEBLOB_') || k === 'NODE_OPTIONS') delete process.env[k];
const cacheDir = join(outDir, `node-compile-cache-${h.node}`);
const modes = [
  { name: 'plain require', env: base },
  ...(hasCompileCache(h.node) ? [{ name: 'node compile cache', env: { ...base, NODE_COMPILE_CACHE: cacheDir, BENCH_COMPILE_CACHE: cacheDir } }] : []),
  { name: 'codeblob', env: { ...base, ...askedBackend }, blob },
];
const skipped = hasCompileCache(h.node) ? [] : [{ name: 'node compile cache', reason: `needs Node >= 22.1 (this is ${h.node})` }];

/** One process with a pool of n threads; its report. */
function threadSample(mode, n) {
  return new Promise((done, fail) => {
    const p = spawn(node, [join(repo, 'bench/thread-pool.mjs'), String(n), ...(mode.blob ? [mode.blob] : [])], { env: mode.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => {
      if (code !== 0) return fail(new Error(`pool sample exited with ${code}:\n${err.slice(-2000)}`));
      const r = JSON.parse(out.trim().split('\n').pop());
      if (r.threads !== n || r.settled.threads !== n) return fail(new Error(`${r.threads} and ${r.settled.threads} distinct threads ran the ${n} load and settle tasks`));
      if (mode.blob && !r.codeblob) return fail(new Error('a thread loaded nothing from the blob'));
      if (mode.env.BENCH_COMPILE_CACHE && !r.compileCache) return fail(new Error('the compile cache was not on in a thread'));
      done(r);
    });
  });
}

/** A cluster of W workers loading the corpus at once: time until all are ready, and each one's memory. */
async function clusterSample(mode) {
  let execArgv = [];
  const env = { ...mode.env };
  let preload;
  if (mode.blob) {
    preload = preloadPrimary(mode.blob);
    if (!preload.enabled) throw new Error(preload.reason);
    execArgv = preload.execArgv;
    Object.assign(env, preload.env);
  }
  cluster.setupPrimary({ exec: childLoad, execArgv, silent: true, stdio: ['pipe', 'pipe', 'pipe', 'ipc'] });
  const t0 = performance.now();
  const workers = Array.from({ length: W }, () => cluster.fork(env));
  try {
    const reports = await Promise.all(workers.map((w) => new Promise((resolve, reject) => {
      let out = '';
      let err = '';
      w.process.stderr.on('data', (d) => (err += d));
      w.process.stdout.on('data', (d) => { out += d; if (out.includes('\n')) resolve(JSON.parse(out.slice(0, out.indexOf('\n')))); });
      w.on('exit', (code) => reject(new Error(`worker exited with ${code} before loading:\n${err.slice(-2000)}`)));
    })));
    const readyMs = performance.now() - t0;
    if (mode.blob && reports.some((r) => !r.counters || r.counters.hits === 0)) throw new Error('a worker loaded nothing from the blob');
    const mem = workers.map((w) => measure(w.process.pid)).map((m) => ({ uss: m.uss, pss: m.pss, anon: m.privateDirty, blobRss: m.blobs[0]?.rss ?? 0 }));
    // Then settled (see child-load.cjs): all workers give back V8's headroom at once.
    await Promise.all(workers.map((w) => new Promise((resolve, reject) => {
      let out = '';
      w.process.stdout.removeAllListeners('data');
      w.process.stdout.on('data', (d) => { out += d; if (out.includes('\n')) resolve(); });
      w.once('exit', (code) => reject(new Error(`worker exited with ${code} while settling`)));
      w.process.stdin.on('error', () => {});
      w.process.stdin.write('settle\n');
    })));
    workers.forEach((w, i) => {
      const m = measure(w.process.pid);
      mem[i].settled = { uss: m.uss, pss: m.pss, anon: m.privateDirty };
    });
    return { readyMs, mem };
  } finally {
    await Promise.all(workers.map((w) => new Promise((resolve) => {
      if (w.process.exitCode !== null || w.process.signalCode !== null) return resolve();
      w.removeAllListeners('exit');
      w.on('exit', resolve);
      w.process.stdin.end();
    })));
    preload?.close();
  }
}

// Warm the compile cache (and the page cache) once per competitor before measuring; the header
// names the backend codeblob's warm-up thread reported.
const warm = [];
for (const mode of modes) warm.push(await threadSample(mode, 1));
const backend = reportedBackend(warm[modes.findIndex((m) => m.blob)].backends);
printHeader(h, backend);
console.log(`# competitors: ${modes.map((m) => m.name).join(', ')}; piscina N = ${Ns.join(', ')} threads; cluster of ${W} workers; ${rounds} round(s)`);

const runs = new Map(modes.map((m) => [m.name, { threads: new Map(Ns.map((n) => [n, []])), cluster: [], failures: [] }]));
for (let r = 0; r < rounds; r++) {
  for (const [j, n] of Ns.entries()) {
    for (const mode of rotate(modes, r + j)) {
      try {
        runs.get(mode.name).threads.get(n).push(await threadSample(mode, n));
      } catch (error) {
        runs.get(mode.name).failures.push(`${n} threads, round ${r + 1}: ${why(error)}`);
      }
    }
  }
  for (const mode of rotate(modes, r)) {
    try {
      runs.get(mode.name).cluster.push(await clusterSample(mode));
    } catch (error) {
      runs.get(mode.name).failures.push(`cluster, round ${r + 1}: ${why(error)}`);
    }
  }
}

const med = (list) => (list.length ? stats(list).median : null);
const rows = modes.map((mode) => {
  const run = runs.get(mode.name);
  const threads = Ns.filter((n) => run.threads.get(n).length > 0).map((n) => {
    const s = run.threads.get(n);
    return { n, samples: s.length, settled: { uss: med(s.map((x) => x.settled.uss)), anon: med(s.map((x) => x.settled.anon)), threads: Math.min(...s.map((x) => x.settled.threads)) }, uss: med(s.map((x) => x.uss)), pss: med(s.map((x) => x.pss)), anon: med(s.map((x) => x.anon)), blobRss: med(s.map((x) => x.blobRss)), blobMappings: Math.max(...s.map((x) => x.blobMappings)), ready: stats(s.map((x) => x.readyMs)) };
  });
  const points = (k) => Ns.flatMap((n) => run.threads.get(n).map((x) => [n, x[k]]));
  const per = run.cluster.flatMap((c) => c.mem);
  return {
    name: mode.name,
    threads,
    threadGrowth: { uss: fitLine(points('uss')), anon: fitLine(points('anon')), settledUss: fitLine(Ns.flatMap((n) => run.threads.get(n).map((x) => [n, x.settled.uss]))) },
    cluster: run.cluster.length
      ? { workers: W, samples: per.length, settled: { uss: med(per.map((m) => m.settled.uss)), pss: med(per.map((m) => m.settled.pss)), anon: med(per.map((m) => m.settled.anon)) }, uss: med(per.map((m) => m.uss)), pss: med(per.map((m) => m.pss)), anon: med(per.map((m) => m.anon)), blobRss: med(per.map((m) => m.blobRss)), ready: stats(run.cluster.map((c) => c.readyMs)) }
      : null,
    failures: run.failures,
  };
});

const plain = rows.find((r) => r.name === 'plain require');
const tcell = (row, n) => row?.threads.find((t) => t.n === n);
console.log('\n(a) piscina: one process, N threads each loading the corpus; whole process after load + GC (medians)');
printTable(
  ['competitor', 'N', 'USS MiB', 'PSS MiB', 'anon MiB', 'blob resident MiB', 'ready ms min/med/max', 'USS ratio', 'ready ratio', 'settled USS MiB', 'settled USS ratio'],
  rows.flatMap((r) => r.threads.map((t) => [
    r.name, t.n, mib(t.uss), mib(t.pss), mib(t.anon), mib(t.blobRss), ms(t.ready), ratio(t.uss, tcell(plain, t.n)?.uss), ratio(t.ready.median, tcell(plain, t.n)?.ready.median),
    mib(t.settled.uss), ratio(t.settled.uss, tcell(plain, t.n)?.settled.uss),
  ])),
);
console.log('\nGrowth with N threads: least-squares slope (MiB per added thread)');
printTable(['competitor', 'USS MiB/thread', 'anon MiB/thread', 'USS slope ratio'], rows.map((r) => [r.name, r.threadGrowth.uss ? mib(r.threadGrowth.uss.slope) : '-', r.threadGrowth.anon ? mib(r.threadGrowth.anon.slope) : '-', ratio(r.threadGrowth.uss?.slope, plain?.threadGrowth.uss?.slope)]));
console.log(`\n(b) cluster of ${W} workers: per worker after load + full GC (medians), time until all are ready`);
printTable(
  ['competitor', 'USS MiB', 'PSS MiB', 'anon MiB', 'ready ms min/med/max', 'USS ratio', 'PSS ratio', 'ready ratio', 'settled USS MiB', 'settled USS ratio'],
  rows.filter((r) => r.cluster).map((r) => [
    r.name, mib(r.cluster.uss), mib(r.cluster.pss), mib(r.cluster.anon), ms(r.cluster.ready), ratio(r.cluster.uss, plain?.cluster?.uss), ratio(r.cluster.pss, plain?.cluster?.pss), ratio(r.cluster.ready.median, plain?.cluster?.ready.median),
    mib(r.cluster.settled.uss), ratio(r.cluster.settled.uss, plain?.cluster?.settled.uss),
  ]),
);
for (const s of skipped) console.log(`# skipped ${s.name}: ${s.reason}`);
for (const r of rows) for (const f of r.failures) console.log(`# FAILED ${r.name}: ${f}`);
const file = join(outDir, `pools-${h.node}.json`);
writeFileSync(file, JSON.stringify({ header: h, backend, threads: Ns, workers: W, rounds, rows, skipped, MiB }, null, 2));
console.log(`# JSON: ${file}`);
