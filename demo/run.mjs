#!/usr/bin/env node
// `npm run demo`: packs a real express app (TypeScript, Babel, Prettier, lodash per request),
// runs it as a 4-worker cluster with plain `require` and with codeblob, side by side, sends both
// the same requests on loopback, and prints what each worker costs (USS/PSS, never RSS alone).
import cluster from 'node:cluster';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { measure, open } from '../dist/index.js';
import { preloadPrimary } from '../dist/pool/index.js';
import { header, mib, outDir, pack, printHeader, referenceCorpus, reportedBackend, repo, stats } from '../bench/lib.mjs';

const { values } = parseArgs({ options: { workers: { type: 'string', default: '4' }, rounds: { type: 'string', default: '2' } } });
const WORKERS = Number(values.workers);
const ROUNDS = Number(values.rounds);
const started = performance.now();
const step = (text) => console.log(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s] ${text}`);

step('installing the app\'s packages (typescript, @babel/core, prettier, express, lodash ... from the npm registry)');
const corpus = referenceCorpus();
const appDir = join(corpus, 'demo-app');
cpSync(join(repo, 'demo/app'), appDir, { recursive: true });
const require = createRequire(join(appDir, 'x.cjs'));
const { request } = require('./client.cjs');
const requests = require('./requests.cjs');

const h = header(process.execPath);
const out = join(outDir, 'demo');
mkdirSync(out, { recursive: true });
const blob = join(out, 'app.blob');
step('packing the app (trace the server, send the demo requests to train the caches)');
const packed = pack(process.execPath, appDir, ['server.cjs'], blob, ['--settle-ms', '500', '--train', 'warm.cjs']);
step(`packed ${packed.entries} modules into ${mib(packed.fileSize)} MiB`);

async function runCluster(mode) {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('CODEBLOB_')) delete env[k];
  let execArgv = [];
  let preload;
  const t0 = performance.now();
  if (mode === 'codeblob') {
    preload = preloadPrimary(blob);
    if (!preload.enabled) throw new Error(`codeblob could not be used: ${preload.reason}`);
    execArgv = preload.execArgv;
    Object.assign(env, preload.env);
  }
  const preloadMs = performance.now() - t0;
  cluster.setupPrimary({ exec: join(appDir, 'server.cjs'), execArgv, silent: true });
  const forkStart = performance.now();
  const workers = Array.from({ length: WORKERS }, () => cluster.fork(env));
  const ready = await Promise.all(
    workers.map((w) => new Promise((resolve, reject) => {
      w.on('message', (m) => m?.ready && resolve(m));
      w.on('exit', (code) => reject(new Error(`a ${mode} worker exited with ${code}`)));
    })),
  );
  const ports = ready.map((m) => m.port);
  const readyMs = performance.now() - forkStart;
  // New connection per request: the cluster hands them to the workers in turn.
  const answers = [];
  for (let i = 0; i < WORKERS * 2; i++) {
    for (const r of requests) answers.push(await new Promise((res, rej) => request(ports[0], r).then(res, rej)));
  }
  const memory = workers.map((w) => measure(w.process.pid));
  let pageCache = 0;
  if (mode === 'codeblob') {
    const s = open(blob, { verify: 'none' });
    pageCache = s.stats().bytesResident ?? 0; // mincore: the one copy in the page cache
    s.close();
  }
  await Promise.all(workers.map((w) => new Promise((resolve) => { w.removeAllListeners('exit'); w.on('exit', resolve); w.kill(); })));
  preload?.close();
  return { mode, preloadMs, readyMs, answers, memory, pageCache, backends: ready.map((m) => m.backend ?? null) };
}

const runs = [];
for (let r = 0; r < ROUNDS; r++) {
  for (const mode of r % 2 ? ['codeblob', 'plain'] : ['plain', 'codeblob']) {
    step(`round ${r + 1}: ${WORKERS}-worker cluster, ${mode}`);
    runs.push(await runCluster(mode));
  }
}

const reference = runs[0].answers;
const identical = runs.every((x) => x.answers.length === reference.length && x.answers.every((a, i) => a === reference[i]));
const summary = ['plain', 'codeblob'].map((mode) => {
  const mine = runs.filter((x) => x.mode === mode);
  const per = mine.flatMap((x) => x.memory);
  const totalPss = stats(mine.map((x) => x.memory.reduce((s, m) => s + m.pss, 0))).median;
  const blobs = per.map((m) => m.blobs[0]).filter(Boolean);
  return {
    mode,
    ussPerWorker: stats(per.map((m) => m.uss)).median,
    pssPerWorker: stats(per.map((m) => m.pss)).median,
    anonPerWorker: stats(per.map((m) => m.privateDirty)).median,
    totalPss,
    blobResidentPerWorker: blobs.length ? stats(blobs.map((b) => b.rss)).median : 0,
    blobSharedPerWorker: blobs.length ? stats(blobs.map((b) => b.shared)).median : 0,
    readyMs: stats(mine.map((x) => x.readyMs)).median,
    preloadMs: stats(mine.map((x) => x.preloadMs)).median,
    pageCache: stats(mine.map((x) => x.pageCache)).median,
  };
});
const [plain, cb] = summary;

// The backend codeblob's workers reported.
printHeader(h, reportedBackend(runs.filter((x) => x.mode === 'codeblob').flatMap((x) => x.backends)));
console.log(`\n${WORKERS}-worker cluster, medians of ${ROUNDS} rounds each, measured after ${reference.length} requests`);
const rows = [
  ['', 'plain require', 'codeblob', 'ratio'],
  ['USS per worker (MiB)', mib(plain.ussPerWorker), mib(cb.ussPerWorker), (cb.ussPerWorker / plain.ussPerWorker).toFixed(2)],
  ['PSS per worker (MiB)', mib(plain.pssPerWorker), mib(cb.pssPerWorker), (cb.pssPerWorker / plain.pssPerWorker).toFixed(2)],
  ['anonymous per worker (MiB)', mib(plain.anonPerWorker), mib(cb.anonPerWorker), (cb.anonPerWorker / plain.anonPerWorker).toFixed(2)],
  [`total PSS, ${WORKERS} workers (MiB)`, mib(plain.totalPss), mib(cb.totalPss), (cb.totalPss / plain.totalPss).toFixed(2)],
  ['blob in the page cache, one copy for all (MiB)', '-', `${mib(cb.pageCache)} of ${mib(packed.fileSize)}`, ''],
  ['blob mapped per worker: resident / shared (MiB)', '-', `${mib(cb.blobResidentPerWorker)} / ${mib(cb.blobSharedPerWorker)}`, ''],
  ['all workers ready (ms)', plain.readyMs.toFixed(0), cb.readyMs.toFixed(0), (cb.readyMs / plain.readyMs).toFixed(2)],
  ['primary preload: verify + warm (ms)', '-', cb.preloadMs.toFixed(0), ''],
  ['requests answered identically', '', identical ? `yes (${reference.length} x ${runs.length} runs)` : 'NO', ''],
];
const w = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
for (const r of rows) console.log(r.map((cell, c) => (c === 0 ? cell.padEnd(w[c]) : cell.padStart(w[c]))).join('   '));
console.log('\nUSS: memory only this worker uses. PSS: its fair share of shared pages too. RSS would count every');
console.log('shared page in every worker, so it is not shown. The blob\'s pages live once in the page cache;');
console.log('codeblob drops them from a worker\'s page tables after loading, so they add little to its PSS.');

const result = { header: h, workers: WORKERS, rounds: ROUNDS, packed, identical, summary, runs: runs.map(({ answers, ...x }) => x) };
writeFileSync(join(out, 'demo.json'), JSON.stringify(result, null, 2));
writeFileSync(join(out, 'demo.svg'), barChart(summary));
step(`wrote ${join(out, 'demo.json')} and ${join(out, 'demo.svg')}`);
if (!identical) process.exitCode = 1;

function barChart(data) {
  const metrics = [['ussPerWorker', 'USS / worker'], ['pssPerWorker', 'PSS / worker'], ['totalPss', `total PSS (${WORKERS})`]];
  const max = Math.max(...data.flatMap((d) => metrics.map(([k]) => d[k])));
  const W = 640;
  const rowH = 28;
  const scale = (v) => (v / max) * (W - 260);
  let y = 40;
  const parts = [`<text x="10" y="20" font-size="14" font-family="sans-serif">codeblob demo: ${WORKERS}-worker cluster, MiB (Node ${h.node})</text>`];
  for (const [k, label] of metrics) {
    for (const [i, d] of data.entries()) {
      const v = d[k];
      parts.push(`<text x="10" y="${y + 17}" font-size="12" font-family="sans-serif">${label} — ${d.mode}</text>`);
      parts.push(`<rect x="200" y="${y + 4}" width="${scale(v).toFixed(1)}" height="18" fill="${i === 0 ? '#999' : '#2a7'}"/>`);
      parts.push(`<text x="${(205 + scale(v)).toFixed(1)}" y="${y + 17}" font-size="12" font-family="sans-serif">${mib(v)}</text>`);
      y += rowH;
    }
    y += 8;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y + 10}">${parts.join('')}</svg>\n`;
}
