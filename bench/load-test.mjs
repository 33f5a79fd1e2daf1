#!/usr/bin/env node
// Under load: an express app on a cluster of workers loading from the blob answers N requests on
// loopback (bounded in count and time) while the blob is replaced (new file renamed over the
// path) R times and workers are restarted onto the new generation one by one. Every answer is
// compared with a plain worker's; each worker's RSS is sampled after warm-up and at the end.
// Usage: node bench/load-test.mjs [--requests 50000] [--replacements 100] [--workers 4] [--json]
// A full run (at least the default requests and replacements) saves .bench-out/load-test.json for docs/reliability.md.
import cluster from 'node:cluster';
import { copyFileSync, cpSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { measure } from '../dist/index.js';
import { preloadPrimary } from '../dist/pool/index.js';
import { outDir, pack, referenceCorpus, repo } from './lib.mjs';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '50000' }, replacements: { type: 'string', default: '100' }, workers: { type: 'string', default: '4' }, json: { type: 'boolean' } } });
const REQUESTS = Number(values.requests);
const REPLACEMENTS = Number(values.replacements);
const WORKERS = Number(values.workers);
const DEADLINE = Date.now() + 20 * 60_000;

const corpus = referenceCorpus();
const app = join(corpus, 'load-app');
cpSync(join(repo, 'demo/app'), app, { recursive: true });
writeFileSync(join(app, 'light.cjs'), `'use strict';
const express = require('express');
const _ = require('lodash');
const app = express();
app.get('/item/:id', (req, res) => res.json({ id: req.params.id, words: _.words(_.startCase('item ' + req.params.id)), pid: undefined }));
app.get('/sum/:n', (req, res) => res.json({ sum: _.sum(_.range(Number(req.params.n) + 1)) }));
const server = app.listen(0, '127.0.0.1', () => process.send && process.send({ ready: true, port: server.address().port }));
`);
const blob = join(outDir, 'load.blob');
pack(process.execPath, app, ['light.cjs'], blob, ['--settle-ms', '300']);
const spare = join(outDir, 'load-spare.blob');

cluster.setupPrimary({ exec: join(app, 'light.cjs'), silent: true });
let generation = preloadPrimary(blob);
if (!generation.enabled) throw new Error(generation.reason);
const old = [];
function startWorker(gen) {
  cluster.setupPrimary({ exec: join(app, 'light.cjs'), execArgv: gen.execArgv, silent: true });
  const w = cluster.fork(gen.env);
  return new Promise((resolve, reject) => {
    w.once('message', (m) => (m?.ready ? resolve({ w, port: m.port }) : reject(new Error('bad ready'))));
    w.once('exit', (code) => reject(new Error(`worker exited ${code}`)));
  });
}
let workers = await Promise.all(Array.from({ length: WORKERS }, () => startWorker(generation)));
const port = workers[0].port;
// A new connection per request, as independent clients make: a restarted worker finishes what
// it has and takes no more (keep-alive sockets to it would be cut mid-reuse).
const agent = new http.Agent({ keepAlive: false, maxSockets: 32 });
const get = (path) => new Promise((resolve, reject) => {
  const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
    let d = '';
    res.setEncoding('utf8');
    res.on('data', (c) => (d += c));
    res.on('end', () => resolve(`${res.statusCode} ${d}`));
  });
  req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
  req.on('error', reject);
});
const expected = (path) => {
  const [, kind, arg] = path.split('/');
  if (kind === 'item') return `200 ${JSON.stringify({ id: arg, words: arg.length ? ['Item', arg] : ['Item'] })}`;
  return `200 ${JSON.stringify({ sum: (Number(arg) * (Number(arg) + 1)) / 2 })}`;
};

const rss = new Map();
let sent = 0;
let errors = 0;
const errorKinds = {};
let mismatches = 0;
let replaced = 0;
let restarted = 0;
const paths = (i) => (i % 2 ? `/item/${i % 97}` : `/sum/${i % 1000}`);
async function load() {
  const inFlight = new Set();
  while (sent < REQUESTS && Date.now() < DEADLINE) {
    const path = paths(sent++);
    const p = get(path).then((answer) => { if (answer !== expected(path)) mismatches++; }, (e) => { errors++; errorKinds[e.code ?? e.message] = (errorKinds[e.code ?? e.message] ?? 0) + 1; }).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= 32) await Promise.race(inFlight);
    if (sent === Math.floor(REQUESTS / 2)) for (const { w } of workers) rss.set(w.process.pid, { warm: measure(w.process.pid).rss });
  }
  await Promise.all(inFlight);
}
async function churn() {
  // Replace the blob under the running pool, as a new pack does (a new file renamed over the
  // path), while the workers serve: they keep the generation they mapped.
  while (replaced < REPLACEMENTS && sent < REQUESTS && Date.now() < DEADLINE) {
    copyFileSync(blob, spare);
    renameSync(spare, blob);
    replaced++;
    await new Promise((r) => setTimeout(r, 20));
  }
}
async function rollingRestart() {
  // Then move every worker to the newest generation, one at a time: start the new one first.
  old.push(generation);
  generation = preloadPrimary(blob);
  for (let i = 0; i < workers.length; i++) {
    const fresh = await startWorker(generation);
    const gone = workers[i];
    workers[i] = fresh;
    await new Promise((r) => { gone.w.once('exit', r); gone.w.disconnect(); });
    restarted++;
  }
}
const t0 = performance.now();
await Promise.all([load(), churn()]);
const seconds = (performance.now() - t0) / 1000;
for (const { w } of workers) {
  const r = rss.get(w.process.pid);
  if (r) r.end = measure(w.process.pid).rss;
}
await rollingRestart();
// The restarted workers answer too (from the newest generation).
for (let i = 0; i < 200; i++) {
  const path = paths(i);
  try {
    if ((await get(path)) !== expected(path)) mismatches++;
  } catch {
    errors++;
  }
}
agent.destroy();
for (const { w } of workers) w.kill();
for (const g of [...old, generation]) g.close();
const growth = [...rss.values()].filter((r) => r.end).map((r) => r.end - r.warm);
const result = { requests: sent, seconds: +seconds.toFixed(1), errors, errorKinds, mismatches, replacements: replaced, restarted, rssGrowthMiB: growth.map((g) => +(g / 1048576).toFixed(1)) };
if (values.json) console.log(JSON.stringify(result));
else console.log(`${sent} requests in ${result.seconds} s while the blob was replaced ${replaced} times: ${errors} errors, ${mismatches} wrong answers; RSS growth per worker over the second half of the load (MiB): ${result.rssGrowthMiB.join(', ')}; then ${restarted} workers restarted one by one onto the newest generation and answered 200 more requests`);
// The published figures (docs/reliability.md) come from a full run only: a shortened one (the tests run 2,000
// requests) must not replace them.
if (REQUESTS >= 50_000 && REPLACEMENTS >= 100) writeFileSync(join(outDir, 'load-test.json'), JSON.stringify({ date: new Date().toISOString(), node: process.version, ...result }, null, 2));
process.exit(errors || mismatches ? 1 : 0);
