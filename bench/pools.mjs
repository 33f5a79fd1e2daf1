#!/usr/bin/env node
// Worker pools on the reference corpus, plain `require` vs codeblob, side by side in one run:
// (a) one process with a piscina pool of N threads that each load the corpus: whole-process
// USS and anonymous memory; (b) a cluster of N workers (preloadPrimary for codeblob): per-worker
// USS/PSS after load + full GC, and time until all are ready.
// Usage: node bench/pools.mjs [--node <bin>] [--workers 4] [--rounds 3]
import cluster from 'node:cluster';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { measure } from '../dist/index.js';
import { preloadPrimary } from '../dist/pool/index.js';
import { childLoad, header, mib, outDir, pack, printHeader, referenceCorpus, repo, stats } from './lib.mjs';

const { values } = parseArgs({ options: { node: { type: 'string', default: process.execPath }, workers: { type: 'string', default: '4' }, rounds: { type: 'string', default: '3' } } });
const node = values.node;
const N = Number(values.workers);
const rounds = Number(values.rounds);
const corpus = referenceCorpus();
mkdirSync(outDir, { recursive: true });
const h = header(node);
const blob = join(outDir, `reference-${h.node}.blob`);
pack(node, corpus, ['entry.js'], blob);
const base = { ...process.env, BENCH_ENTRY: join(corpus, 'entry.js') };
for (const k of Object.keys(base)) if (k.startsWith('CODEBLOB_') || k === 'NODE_OPTIONS') delete base[k];
printHeader(h, 'mmap');

function threadSample(withBlob) {
  const out = execFileSync(node, [join(repo, 'bench/thread-pool.mjs'), String(N), ...(withBlob ? [blob] : [])], { env: base, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return JSON.parse(out.trim().split('\n').pop());
}

async function clusterSample(withBlob) {
  let execArgv = [];
  const env = { ...base };
  let preload;
  if (withBlob) {
    preload = preloadPrimary(blob);
    if (!preload.enabled) throw new Error(preload.reason);
    execArgv = preload.execArgv;
    Object.assign(env, preload.env);
  }
  cluster.setupPrimary({ exec: childLoad, execArgv, silent: true, stdio: ['pipe', 'pipe', 'ignore', 'ipc'] });
  const t0 = performance.now();
  const workers = Array.from({ length: N }, () => cluster.fork(env));
  await Promise.all(workers.map((w) => new Promise((resolve) => {
    let out = '';
    w.process.stdout.on('data', (d) => { out += d; if (out.includes('\n')) resolve(); });
  })));
  const readyMs = performance.now() - t0;
  const mem = workers.map((w) => measure(w.process.pid));
  await Promise.all(workers.map((w) => new Promise((resolve) => { w.on('exit', resolve); w.process.stdin.end(); })));
  preload?.close();
  return { readyMs, mem };
}

const threads = { plain: [], codeblob: [] };
const clusters = { plain: [], codeblob: [] };
for (let r = 0; r < rounds; r++) {
  for (const mode of r % 2 ? ['codeblob', 'plain'] : ['plain', 'codeblob']) {
    threads[mode].push(threadSample(mode === 'codeblob'));
    clusters[mode].push(await clusterSample(mode === 'codeblob'));
  }
}

const t = Object.fromEntries(Object.entries(threads).map(([k, v]) => [k, {
  uss: stats(v.map((x) => x.uss)).median, anon: stats(v.map((x) => x.anon)).median, pss: stats(v.map((x) => x.pss)).median,
  readyMs: stats(v.map((x) => x.readyMs)).median, blobMappings: Math.max(...v.map((x) => x.blobMappings)), blobRss: stats(v.map((x) => x.blobRss)).median,
}]));
const c = Object.fromEntries(Object.entries(clusters).map(([k, v]) => {
  const per = v.flatMap((x) => x.mem);
  return [k, { uss: stats(per.map((m) => m.uss)).median, pss: stats(per.map((m) => m.pss)).median, anon: stats(per.map((m) => m.privateDirty)).median, readyMs: stats(v.map((x) => x.readyMs)).median }];
}));
const ratio = (a, b) => (a / b).toFixed(2);
console.log(`\n(a) one process, piscina pool of ${N} threads each loading the corpus (median of ${rounds})`);
console.log(`    whole-process USS     plain ${mib(t.plain.uss)} MiB   codeblob ${mib(t.codeblob.uss)} MiB   ratio ${ratio(t.codeblob.uss, t.plain.uss)}`);
console.log(`    anonymous (Priv_Dirty) plain ${mib(t.plain.anon)} MiB   codeblob ${mib(t.codeblob.anon)} MiB   ratio ${ratio(t.codeblob.anon, t.plain.anon)}`);
console.log(`    all threads loaded     plain ${t.plain.readyMs.toFixed(0)} ms   codeblob ${t.codeblob.readyMs.toFixed(0)} ms   ratio ${ratio(t.codeblob.readyMs, t.plain.readyMs)}`);
console.log(`    blob mappings in the process: ${t.codeblob.blobMappings}; blob resident ${mib(t.codeblob.blobRss)} MiB (one process: its clean file pages count as private)`);
console.log(`(b) cluster of ${N} workers, per worker after load + full GC (median of ${rounds * N})`);
console.log(`    PSS   plain ${mib(c.plain.pss)} MiB   codeblob ${mib(c.codeblob.pss)} MiB   ratio ${ratio(c.codeblob.pss, c.plain.pss)}`);
console.log(`    USS   plain ${mib(c.plain.uss)} MiB   codeblob ${mib(c.codeblob.uss)} MiB   ratio ${ratio(c.codeblob.uss, c.plain.uss)}`);
console.log(`    anon  plain ${mib(c.plain.anon)} MiB   codeblob ${mib(c.codeblob.anon)} MiB   ratio ${ratio(c.codeblob.anon, c.plain.anon)}`);
console.log(`    all workers ready   plain ${c.plain.readyMs.toFixed(0)} ms   codeblob ${c.codeblob.readyMs.toFixed(0)} ms   ratio ${ratio(c.codeblob.readyMs, c.plain.readyMs)}`);
const file = join(outDir, `pools-${h.node}.json`);
writeFileSync(file, JSON.stringify({ header: h, workers: N, rounds, threads: t, cluster: c, raw: { threads, clusters: Object.fromEntries(Object.entries(clusters).map(([k, v]) => [k, v.map((x) => ({ readyMs: x.readyMs, mem: x.mem.map(({ blobs, ...m }) => m) }))])) } }, null, 2));
console.log(`# JSON: ${file}`);
