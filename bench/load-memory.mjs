#!/usr/bin/env node
// Side by side, in one run: per-child memory (N concurrent children, after load + full GC) and
// corpus load time (one child at a time, fresh process each), plain `require` vs codeblob.
// Usage: node bench/load-memory.mjs [--node <bin>] [--children 4] [--rounds 3] [--load-runs 7]
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync, mkdirSync } from 'node:fs';
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

// Competitors, each warm: Node's built-in compile cache (Node >= 22.1) and the v8-compile-cache
// package (installed here for the benchmark only).
const competitors = join(outDir, 'competitors');
if (!existsSync(join(competitors, 'node_modules/v8-compile-cache'))) {
  mkdirSync(competitors, { recursive: true });
  writeFileSync(join(competitors, 'package.json'), '{"private":true}');
  execFileSync('npm', ['install', '--no-audit', '--no-fund', 'v8-compile-cache@2.4.0'], { cwd: competitors, stdio: 'ignore' });
}
const compileCacheDir = join(outDir, `node-compile-cache-${h.node}`);
const v8ccDir = join(outDir, `v8-compile-cache-${h.node}`);
const hasCompileCache = Number(h.node.slice(1).split('.')[0]) >= 23 || (h.node.startsWith('v22.') && Number(h.node.split('.')[1]) >= 1);
const candidates = [
  { name: 'plain require', args: [], env: base },
  ...(hasCompileCache ? [{ name: 'node compile cache', args: [], env: { ...base, NODE_COMPILE_CACHE: compileCacheDir } }] : []),
  { name: 'v8-compile-cache', args: ['--require', join(competitors, 'node_modules/v8-compile-cache/v8-compile-cache.js')], env: { ...base, V8_COMPILE_CACHE_CACHE_DIR: v8ccDir } },
  { name: 'codeblob (mmap)', args: ['--require', registerPath], env: { ...base, CODEBLOB_FILE: blob } },
  { name: 'codeblob (read)', args: ['--require', registerPath], env: { ...base, CODEBLOB_FILE: blob, CODEBLOB_BACKEND: 'read' } },
];
const skipped = hasCompileCache ? [] : [`node compile cache: needs Node >= 22.1 (this is ${h.node})`];
// Warm every cache once before anything is measured; a competitor that cannot load the corpus
// is reported, not measured.
const modes = [];
for (const mode of candidates) {
  try {
    const { child } = await startSample(node, mode.args, mode.env);
    await stop(child);
    modes.push(mode);
  } catch (error) {
    const why = String(error.message).split('\n').find((l) => /Error/.test(l)) ?? String(error.message).split('\n')[0];
    skipped.push(`${mode.name}: cannot load the corpus on ${h.node} (${why.trim()})`);
  }
}

printHeader(h, 'mmap (and read, for comparison)');
console.log(`# competitors: ${modes.map((m) => m.name).join(', ')}`);
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
for (const why of skipped) console.log(`# skipped ${why}`);
for (const r of rows.filter((x) => x.mode.startsWith('codeblob'))) {
  const c = r.counters;
  console.log(`# ${r.mode}: ${c ? `${c.hits} cjs + ${c.jsonHits} json from the blob, ${c.misses} misses, ${c.cacheRejected} caches rejected, ${c.stringsCopied} strings copied` : 'loader OFF'}`);
}
const file = join(outDir, `load-memory-${h.node}.json`);
writeFileSync(file, JSON.stringify({ header: h, children: N, rounds, loadRuns, blob: packed, rows, skipped, MiB }, null, 2));
console.log(`# JSON: ${file}`);
