#!/usr/bin/env node
// Micro-benchmarks (tinybench), in-process, on the reference corpus blob packed by the Node
// under test: open + validate + close of a store (mmap, and read for comparison), index decode,
// lookups, an entry's compile text as an external string and its cache view (the first use,
// which hash-checks the section, and again), and measure() of a process. Runs under --node,
// re-executing itself there: the caches, the strings and the heap are that Node's.
// Usage: node bench/micro.mjs [--node <bin>] [--quick]
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Bench } from 'tinybench';
import { measure, open } from '../dist/index.js';
import { decodeIndex } from '../dist/format/index.js';
import { header, mib, outDir, pack, printHeader, printTable, referenceCorpus, repo, runUnder, stats } from './lib.mjs';

const { values } = parseArgs({ options: { node: { type: 'string', default: process.execPath }, quick: { type: 'boolean', default: false } } });
runUnder(values.node, import.meta.url);
const node = process.execPath;
const time = values.quick ? 200 : 1000;

const corpus = referenceCorpus();
mkdirSync(outDir, { recursive: true });
const h = header(node);
const blob = join(outDir, `micro-${h.node}.blob`);
const packed = pack(node, corpus, ['entry.js'], blob);

const store = open(blob);
const backend = store.backend;
const { indexOffset, indexLength, entryCount } = store.header;
const cjs = store.entries().filter((e) => e.kind === 'cjs' && e.cacheLength > 0).sort((a, b) => a.sourceLength - b.sourceLength);
const median = cjs[cjs.length >> 1];
const largest = cjs[cjs.length - 1];
const keys = store.entries().map((e) => e.key);
const paths = store.entries().map((e) => store.filename(e));
const entry = store.get(median.key);
store.compileSource(entry);
store.cacheView(entry);
const indexBytes = readFileSync(blob).subarray(indexOffset, indexOffset + indexLength);

// What a worker pays once: the first open in a fresh process (loads the addon, maps the file).
// In this process the file stays mapped (by `store`), so open() below reuses the mapping.
const firstOpen = [];
for (let i = 0; i < (values.quick ? 5 : 20); i++) {
  const script = `const { open } = await import(${JSON.stringify(join(repo, 'dist/index.js'))}); const t0 = performance.now(); open(${JSON.stringify(blob)}); console.log(performance.now() - t0);`;
  firstOpen.push(Number(execFileSync(node, ['--input-type=module', '-e', script], { encoding: 'utf8' })));
}

const bench = new Bench({ throws: true, time, warmupTime: time / 4 });
const rows = [];
/**
 * A task whose figures are per call of `fn`: an iteration calls it once per item. When `fn`
 * returns a number, that many ms is the part that counts (its set-up is not timed).
 */
function add(name, note, fn, items = [undefined]) {
  rows.push({ name, note, batch: items.length });
  bench.add(name, () => {
    let part = 0;
    let parted = false;
    const t0 = bench.now();
    for (const x of items) {
      const r = fn(x);
      if (typeof r === 'number') (part += r), (parted = true);
    }
    const d = bench.now() - t0;
    return { overriddenDuration: (parted ? part : d) / items.length, overriddenIterationCost: d };
  });
}
/** The ms of `use(store, entry)` on a store just opened: the entry's first use, hash check included. */
function firstUse(key, use) {
  const fresh = open(blob);
  const e = fresh.get(key);
  const t0 = performance.now();
  use(fresh, e);
  const d = performance.now() - t0;
  fresh.close();
  return d;
}
const kib = (e) => `${(e.sourceLength / 1024).toFixed(1)} KiB source, ${(e.cacheLength / 1024).toFixed(1)} KiB cache`;
const hundred = Array(100).fill(); // calls per iteration of the sub-microsecond tasks

add(`open + validate + close (${backend}, file already mapped here)`, `${entryCount} entries, ${mib(packed.fileSize)} MiB`, () => open(blob).close());
add('open + validate + close (read)', 'reads the whole file', () => open(blob, { backend: 'read' }).close());
add('index decode', `${(indexLength / 1024).toFixed(0)} KiB of msgpack`, () => decodeIndex(indexBytes, entryCount));
add('lookup by key', `all ${keys.length} keys`, (k) => store.get(k), keys);
add('lookup by absolute path', 'all, as the loader asks', (p) => store.get(p), paths);
add('compileSource, first use', `median entry ${median.key}: ${kib(median)}`, () => firstUse(median.key, (s, e) => s.compileSource(e)));
add('compileSource, first use, largest entry', `${largest.key}: ${kib(largest)}`, () => firstUse(largest.key, (s, e) => s.compileSource(e)));
add('compileSource, again', 'hash already checked: the external string alone', () => store.compileSource(entry), hundred);
add('cacheView, first use', 'median entry', () => firstUse(median.key, (s, e) => s.cacheView(e)));
add('cacheView, again', 'the view alone', () => store.cacheView(entry), hundred);
add('measure(pid) of this process', 'smaps_rollup + smaps', () => measure(process.pid));
await bench.run();

printHeader(h, backend);
console.log(`# blob: ${packed.entries} entries, ${mib(packed.fileSize)} MiB; tinybench, ${time} ms per task`);
// ops/s from the mean latency, so the figures agree.
const results = rows.map((r, i) => {
  const { latency } = bench.tasks[i].result;
  return { ...r, opsPerSec: 1000 / latency.mean, meanMs: latency.mean, p50Ms: latency.p50, p99Ms: latency.p99, samples: latency.samplesCount };
});
const sorted = [...firstOpen].sort((a, b) => a - b);
const mean = firstOpen.reduce((a, b) => a + b, 0) / firstOpen.length;
results.splice(1, 0, {
  name: 'first open in a fresh process',
  note: 'addon load + mmap + validate, one process per sample',
  batch: 1,
  opsPerSec: 1000 / mean,
  meanMs: mean,
  p50Ms: stats(firstOpen).median,
  p99Ms: sorted[Math.ceil(0.99 * sorted.length) - 1],
  samples: sorted.length,
});
const us = (ms) => (ms * 1000).toFixed(ms < 0.01 ? 3 : 1);
printTable(
  ['task', 'ops/s', 'mean µs', 'median µs', 'p99 µs', 'samples', 'what'],
  results.map((r) => [r.name, Math.round(r.opsPerSec).toLocaleString('en'), us(r.meanMs), us(r.p50Ms), us(r.p99Ms), r.samples, r.batch > 1 ? `${r.note}, per item (batches of ${r.batch})` : r.note]),
);
const file = join(outDir, `micro-${h.node}.json`);
writeFileSync(file, JSON.stringify({ header: h, timePerTaskMs: time, backend, blob: { entries: packed.entries, fileSize: packed.fileSize }, results }, null, 2));
console.log(`# JSON: ${file}`);
