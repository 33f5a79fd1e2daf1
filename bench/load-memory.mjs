#!/usr/bin/env node
// Side by side, in one run: per-child memory (N concurrent children, after load + full GC) and
// corpus load time (one child at a time, fresh process each), plain `require` vs codeblob.
// Usage: node bench/load-memory.mjs [--node <bin>] [--children 4] [--rounds 3] [--load-runs 7]
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { measure } from '../dist/index.js';
import { MiB, header, mib, outDir, pack, printHeader, referenceCorpus, registerPath, startSample, stats, stop } from './lib.mjs';

const { values } = parseArgs({
  options: {
    node: { type: 'string', default: process.execPath },
    children: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '3' },
    'load-runs': { type: 'string', default: '7' },
  },
});
const node = values.node;
const N = Number(values.children);
const rounds = Number(values.rounds);
const loadRuns = Number(values['load-runs']);

const corpus = referenceCorpus();
mkdirSync(outDir, { recursive: true });
const h = header(node);
const blob = join(outDir, `reference-${h.node}.blob`);
const packed = pack(node, corpus, ['entry.js'], blob);
const entry = join(corpus, 'entry.js');
const base = { ...process.env, BENCH_ENTRY: entry };
for (const k of Object.keys(base)) if (k.startsWith('CODEBLOB_') || k === 'NODE_OPTIONS') delete base[k];

const modes = [
  { name: 'plain require', args: [], env: base },
  { name: 'codeblob (mmap)', args: ['--require', registerPath], env: { ...base, CODEBLOB_FILE: blob } },
  { name: 'codeblob (read)', args: ['--require', registerPath], env: { ...base, CODEBLOB_FILE: blob, CODEBLOB_BACKEND: 'read' } },
];

printHeader(h, 'mmap (and read, for comparison)');
console.log(`# blob: ${packed.entries} modules, ${mib(packed.fileSize)} MiB, packed in ${packed.ms} ms`);

const memory = Object.fromEntries(modes.map((m) => [m.name, []]));
const checks = Object.fromEntries(modes.map((m) => [m.name, []]));
for (let r = 0; r < rounds; r++) {
  for (let i = 0; i < modes.length; i++) {
    const mode = modes[(i + r) % modes.length];
    const samples = await Promise.all(Array.from({ length: N }, () => startSample(node, mode.args, mode.env)));
    for (const { child, report } of samples) {
      const m = measure(child.pid);
      const blobMap = m.blobs[0];
      memory[mode.name].push({ uss: m.uss, pss: m.pss, anon: m.privateDirty, blobRss: blobMap?.rss ?? 0, blobShared: blobMap?.shared ?? 0 });
      checks[mode.name].push(report.counters);
    }
    await Promise.all(samples.map((s) => stop(s.child)));
  }
}

const load = Object.fromEntries(modes.map((m) => [m.name, []]));
for (let r = 0; r < loadRuns; r++) {
  for (let i = 0; i < modes.length; i++) {
    const mode = modes[(i + r) % modes.length];
    const { child, report } = await startSample(node, mode.args, mode.env);
    load[mode.name].push(report.loadMs);
    await stop(child);
  }
}

const rows = modes.map((m) => {
  const mem = memory[m.name];
  return {
    mode: m.name,
    uss: stats(mem.map((x) => x.uss)).median,
    pss: stats(mem.map((x) => x.pss)).median,
    anon: stats(mem.map((x) => x.anon)).median,
    blobRss: stats(mem.map((x) => x.blobRss)).median,
    blobShared: stats(mem.map((x) => x.blobShared)).median,
    load: stats(load[m.name]),
    counters: checks[m.name][0],
  };
});
const plain = rows[0];
console.log(`\nPer child, ${N} concurrent children, after load + full GC (median of ${rounds * N}); load: one child, fresh process each (${loadRuns} runs)`);
console.log('mode               USS MiB  PSS MiB  anon(Private_Dirty) MiB  blob resident/shared MiB  load ms min/median/max   USS ratio  PSS ratio  load ratio');
for (const r of rows) {
  console.log(
    `${r.mode.padEnd(18)} ${mib(r.uss).padStart(7)}  ${mib(r.pss).padStart(7)}  ${mib(r.anon).padStart(23)}  ${`${mib(r.blobRss)}/${mib(r.blobShared)}`.padStart(24)}  ` +
      `${`${r.load.min.toFixed(0)}/${r.load.median.toFixed(0)}/${r.load.max.toFixed(0)}`.padStart(22)}  ${(r.uss / plain.uss).toFixed(2).padStart(9)}  ${(r.pss / plain.pss).toFixed(2).padStart(9)}  ${(r.load.median / plain.load.median).toFixed(2).padStart(10)}`,
  );
}
for (const r of rows.slice(1)) {
  const c = r.counters;
  console.log(`# ${r.mode}: ${c ? `${c.hits} cjs + ${c.jsonHits} json from the blob, ${c.misses} misses, ${c.cacheRejected} caches rejected, ${c.stringsCopied} strings copied` : 'loader OFF'}`);
}
const file = join(outDir, `load-memory-${h.node}.json`);
writeFileSync(file, JSON.stringify({ header: h, children: N, rounds, loadRuns, blob: packed, rows, MiB }, null, 2));
console.log(`# JSON: ${file}`);
