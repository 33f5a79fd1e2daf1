#!/usr/bin/env node
// Under load: an express app on a cluster of workers loading from the blob answers N requests on
// loopback (bounded in count and time) while the blob is replaced (new file renamed over the
// path) R times and workers are restarted onto the new generation one by one. Every answer is
// compared with a plain worker's; each worker's RSS is sampled after warm-up and at the end.
// Usage: node bench/load-test.mjs [--requests 50000] [--replacements 100] [--workers 4] [--json]
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
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
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
let mismatches = 0;
let replaced = 0;
let restarted = 0;
const paths = (i) => (i % 2 ? `/item/${i % 97}` : `/sum/${i % 1000}`);
async function load() {
  const inFlight = new Set();
  while (sent < REQUESTS && Date.now() < DEADLINE) {
    const path = paths(sent++);
    const p = get(path).then((answer) => { if (answer !== expected(path)) mismatches++; }, () => errors++).finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= 32) await Promise.race(inFlight);
    if (sent === Math.floor(REQUESTS / 10)) for (const { w } of workers) rss.set(w.process.pid, { warm: measure(w.process.pid).rss });
  }
  await Promise.all(inFlight);
}
async function churn() {
  // Replace the blob under the running pool: a new file renamed over the path (as a new pack
  // does), then move one worker at a time to the new generation.
  while (replaced < REPLACEMENTS && sent < REQUESTS && Date.now() < DEADLINE) {
    copyFileSync(blob, spare);
    renameSync(spare, blob);
    replaced++;
    if (replaced % 10 === 0) {
      old.push(generation);
      generation = preloadPrimary(blob);
      const i = (replaced / 10) % workers.length;
      const fresh = await startWorker(generation);
      const gone = workers[i];
      workers[i] = fresh;
      gone.w.disconnect();
      restarted++;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
const t0 = performance.now();
await Promise.all([load(), churn()]);
const seconds = (performance.now() - t0) / 1000;
for (const { w } of workers) {
  const r = rss.get(w.process.pid);
  if (r) r.end = measure(w.process.pid).rss;
}
agent.destroy();
for (const { w } of workers) w.kill();
for (const g of [...old, generation]) g.close();
const growth = [...rss.values()].filter((r) => r.end).map((r) => r.end - r.warm);
const result = { requests: sent, seconds: +seconds.toFixed(1), errors, mismatches, replacements: replaced, restarted, rssGrowthMiB: growth.map((g) => +(g / 1048576).toFixed(1)) };
if (values.json) console.log(JSON.stringify(result));
else console.log(`${sent} requests in ${result.seconds} s, ${errors} errors, ${mismatches} wrong answers; blob replaced ${replaced} times, ${restarted} workers restarted onto new generations; RSS growth after warm-up per surviving worker (MiB): ${result.rssGrowthMiB.join(', ') || 'n/a'}`);
writeFileSync(join(outDir, 'load-test.json'), JSON.stringify({ date: new Date().toISOString(), node: process.version, ...result }, null, 2));
process.exit(errors || mismatches ? 1 : 0);
