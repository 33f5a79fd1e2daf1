#!/usr/bin/env node
// Every way to load the reference corpus, side by side in one run: plain `require`, Node's
// compile cache (Node >= 22.1), v8-compile-cache (both warm), codeblob (mmap) and codeblob
// (read, which copies the file into each process: what the mapping itself is worth).
// Memory: N concurrent child processes for each N, each measured after load + full GC: USS,
// PSS and anonymous (Private_Dirty) per child, the blob's resident and shared bytes, and how
// the total grows with N (least squares: MiB per added worker). Startup: one fresh process per
// sample, interleaved: the corpus load time it reports and its wall time from spawn to exit.
// The limit: V8 keeps bytecode private per isolate, so what sharing can save per worker is
// about the loaded source as it would sit in a heap; anonymous memory saved per worker vs plain
// is reported as a fraction of it. Runs under --node (re-executing itself there), so that the
// children share the Node binary's pages with this process and a child's USS is its own cost.
// Usage: node bench/load-memory.mjs [--node <bin>] [--children 1,2,4,8] [--rounds 3] [--load-runs 7] [--quick]
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { measure, open } from '../dist/index.js';
import {
  MiB, childLoad, cleanEnv, fitLine, hasCompileCache, header, mib, numbers, outDir, pack, printHeader, printTable,
  msText as ms, ratioText as ratio, referenceCorpus, registerPath, rotate, runUnder, startSample, stats, stop, why,
} from './lib.mjs';

const { values } = parseArgs({
  options: {
    node: { type: 'string', default: process.execPath },
    children: { type: 'string' },
    rounds: { type: 'string' },
    'load-runs': { type: 'string' },
    quick: { type: 'boolean', default: false },
  },
});
runUnder(values.node, import.meta.url);
const node = process.execPath;
const Ns = numbers(values.children ?? (values.quick ? '1,4' : '1,2,4,8'));
const rounds = Number(values.rounds ?? (values.quick ? 1 : 3));
const loadRuns = Number(values['load-runs'] ?? (values.quick ? 3 : 7));

const corpus = referenceCorpus();
mkdirSync(outDir, { recursive: true });
const h = header(node);
const blob = join(outDir, `reference-${h.node}.blob`);
const packed = pack(node, corpus, ['entry.js'], blob);
const base = cleanEnv({ BENCH_ENTRY: join(corpus, 'entry.js') });

/** The modules the traced run loaded, as their source would sit in a V8 heap: 1 byte a char for Latin-1, else 2. */
function sourceInHeap() {
  const store = open(blob);
  try {
    const loaded = store.entries().filter((e) => e.order >= 0 && ['cjs', 'esm', 'json'].includes(e.kind));
    return {
      modules: loaded.length,
      chars: loaded.reduce((s, e) => s + e.chars, 0),
      bytes: loaded.reduce((s, e) => s + e.chars * (e.encoding === 'utf16le' ? 2 : 1), 0),
    };
  } finally {
    store.close();
  }
}
const source = sourceInHeap();

// v8-compile-cache is installed here for the benchmark only.
const competitorsDir = join(outDir, 'competitors');
if (!existsSync(join(competitorsDir, 'node_modules/v8-compile-cache'))) {
  mkdirSync(competitorsDir, { recursive: true });
  writeFileSync(join(competitorsDir, 'package.json'), '{"private":true}');
  execFileSync('npm', ['install', '--no-audit', '--no-fund', 'v8-compile-cache@2.4.0'], { cwd: competitorsDir, stdio: 'ignore' });
}
const candidates = [
  { name: 'plain require', args: [], env: base },
  { name: 'node compile cache', args: [], env: { ...base, NODE_COMPILE_CACHE: join(outDir, `node-compile-cache-${h.node}`) } },
  { name: 'v8-compile-cache', args: ['--require', join(competitorsDir, 'node_modules/v8-compile-cache/v8-compile-cache.js')], env: { ...base, V8_COMPILE_CACHE_CACHE_DIR: join(outDir, `v8-compile-cache-${h.node}`) } },
  { name: 'codeblob (mmap)', args: ['--require', registerPath], env: { ...base, CODEBLOB_FILE: blob } },
  { name: 'codeblob (read)', args: ['--require', registerPath], env: { ...base, CODEBLOB_FILE: blob, CODEBLOB_BACKEND: 'read' } },
];

/** One fresh process that loads the corpus and exits: its report, and its wall time from spawn to exit. */
function timedRun(mode) {
  return new Promise((done, fail) => {
    const t0 = performance.now();
    const child = spawn(node, [...mode.args, childLoad, '--exit'], { env: mode.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let wallMs;
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', () => (wallMs = performance.now() - t0));
    child.on('close', (code) => (code === 0 ? done({ wallMs, ...JSON.parse(out) }) : fail(new Error(`sample exited with ${code}:\n${err.slice(-2000)}`))));
  });
}

// Warm every cache once before anything is measured; a competitor that cannot load the corpus
// (or is absent from this Node) is reported, not measured.
const modes = [];
const skipped = [];
for (const mode of candidates) {
  if (mode.name === 'node compile cache' && !hasCompileCache(h.node)) {
    skipped.push({ name: mode.name, reason: `needs Node >= 22.1 (this is ${h.node})` });
    continue;
  }
  try {
    mode.warm = await timedRun(mode);
    modes.push(mode);
  } catch (error) {
    skipped.push({ name: mode.name, reason: `cannot load the corpus on ${h.node} (${why(error)})` });
  }
}
const backend = modes.find((m) => m.name === 'codeblob (mmap)')?.warm.backend ?? 'none';
printHeader(h, backend);
console.log(`# competitors: ${modes.map((m) => m.name).join(', ')}`);
console.log(`# blob: ${packed.entries} modules, ${mib(packed.fileSize)} MiB, packed in ${packed.ms} ms; the run loaded ${source.modules} of them, ${mib(source.bytes)} MiB of source as it would sit in a heap`);
console.log(`# N = ${Ns.join(', ')} concurrent children, ${rounds} round(s); startup: ${loadRuns} fresh processes per competitor`);

/**
 * One (competitor, N) cell: N children load the corpus at once; each is measured once all have
 * loaded and collected garbage. A child that fails fails the cell, after the others are stopped.
 */
async function memoryCell(mode, n) {
  const started = await Promise.allSettled(Array.from({ length: n }, () => startSample(node, mode.args, mode.env)));
  const samples = started.filter((s) => s.status === 'fulfilled').map((s) => s.value);
  try {
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    const first = samples.map(({ child, report }) => {
      const m = measure(child.pid);
      return { uss: m.uss, pss: m.pss, anon: m.privateDirty, blobRss: m.blobs[0]?.rss ?? 0, blobShared: m.blobs[0]?.shared ?? 0, counters: report.counters };
    });
    // Then settled: all N give back V8's headroom at once, and are measured again.
    const settled = await Promise.all(samples.map((s) => s.settle()));
    return first.map((f, i) => {
      const m = measure(samples[i].child.pid);
      return { ...f, settled: { uss: m.uss, pss: m.pss, anon: m.privateDirty, youngBytes: settled[i].youngBytes } };
    });
  } finally {
    await Promise.all(samples.map((s) => stop(s.child)));
  }
}

const runs = new Map(modes.map((m) => [m.name, { memory: new Map(Ns.map((n) => [n, []])), load: [], wall: [], failures: [] }]));
for (let r = 0; r < rounds; r++) {
  for (const [j, n] of Ns.entries()) {
    for (const mode of rotate(modes, r + j)) {
      const run = runs.get(mode.name);
      try {
        run.memory.get(n).push(await memoryCell(mode, n));
      } catch (error) {
        run.failures.push(`${n} children, round ${r + 1}: ${why(error)}`);
      }
    }
  }
}
for (let r = 0; r < loadRuns; r++) {
  for (const mode of rotate(modes, r)) {
    const run = runs.get(mode.name);
    try {
      const { loadMs, wallMs } = await timedRun(mode);
      run.load.push(loadMs);
      run.wall.push(wallMs);
    } catch (error) {
      run.failures.push(`startup run ${r + 1}: ${why(error)}`);
    }
  }
}

const median = (list) => (list.length ? stats(list).median : null);
const rows = modes.map((mode) => {
  const run = runs.get(mode.name);
  const memory = Ns.filter((n) => run.memory.get(n).length > 0).map((n) => {
    const cells = run.memory.get(n);
    const all = cells.flat();
    return {
      n,
      samples: all.length,
      perWorker: Object.fromEntries(['uss', 'pss', 'anon', 'blobRss', 'blobShared'].map((k) => [k, median(all.map((x) => x[k]))])),
      settled: {
        ...Object.fromEntries(['uss', 'pss', 'anon', 'youngBytes'].map((k) => [k, median(all.map((x) => x.settled[k]))])),
        // Samples whose young generation V8 had released when measured (else the wait timed out).
        released: all.filter((x) => x.settled.youngBytes <= 2 * MiB).length,
      },
      total: { uss: median(cells.map((c) => c.reduce((s, x) => s + x.uss, 0))), pss: median(cells.map((c) => c.reduce((s, x) => s + x.pss, 0))) },
      settledTotal: { uss: median(cells.map((c) => c.reduce((s, x) => s + x.settled.uss, 0))) },
    };
  });
  // Every round's total is a point: the fit sees the noise, not just the medians.
  const points = (k) => Ns.flatMap((n) => run.memory.get(n).map((c) => [n, c.reduce((s, x) => s + x[k], 0)]));
  return {
    name: mode.name,
    memory,
    growth: { uss: fitLine(points('uss')), pss: fitLine(points('pss')), settledUss: fitLine(Ns.flatMap((n) => run.memory.get(n).map((c) => [n, c.reduce((s, x) => s + x.settled.uss, 0)]))) },
    startup: { load: run.load.length ? stats(run.load) : null, wall: run.wall.length ? stats(run.wall) : null },
    counters: run.memory.get(Ns[Ns.length - 1])[0]?.[0].counters ?? mode.warm.counters,
    failures: run.failures,
  };
});

const plain = rows.find((r) => r.name === 'plain require');
const cell = (row, n) => row?.memory.find((c) => c.n === n);
const fmt = (x) => (x == null ? '-' : mib(x));
console.log('\nPer child after load + full GC (medians), the total over the N children, and settled (V8 headroom given back, as when idle)');
printTable(
  ['competitor', 'N', 'USS MiB', 'PSS MiB', 'anon MiB', 'blob resident/shared MiB', 'total USS MiB', 'USS ratio', 'settled USS MiB', 'settled anon MiB', 'settled USS ratio'],
  rows.flatMap((r) => r.memory.map((c) => [
    r.name, c.n, mib(c.perWorker.uss), mib(c.perWorker.pss), mib(c.perWorker.anon), `${mib(c.perWorker.blobRss)}/${mib(c.perWorker.blobShared)}`,
    mib(c.total.uss), ratio(c.perWorker.uss, cell(plain, c.n)?.perWorker.uss),
    `${mib(c.settled.uss)}${c.settled.released < c.samples ? ` (${c.settled.released}/${c.samples} released)` : ''}`, mib(c.settled.anon), ratio(c.settled.uss, cell(plain, c.n)?.settled.uss),
  ])),
);
console.log('\nGrowth with N: least-squares slope of the total over N (MiB per added worker)');
printTable(
  ['competitor', 'USS MiB/worker', 'PSS MiB/worker', 'USS slope ratio', 'settled USS MiB/worker'],
  rows.map((r) => [r.name, fmt(r.growth.uss?.slope), fmt(r.growth.pss?.slope), ratio(r.growth.uss?.slope, plain?.growth.uss?.slope), fmt(r.growth.settledUss?.slope)]),
);

const nMax = Ns[Ns.length - 1];
console.log(`\nThe limit, ${nMax} children: the loaded source would take ${mib(source.bytes)} MiB of each heap (${source.modules} modules, ${(source.chars / 1e6).toFixed(1)} M chars); anonymous memory saved per worker vs plain, after the full GC and settled`);
const limit = rows.map((r) => {
  const p = cell(plain, nMax);
  const c = cell(r, nMax);
  const saved = p && c ? p.perWorker.anon - c.perWorker.anon : null;
  const savedSettled = p && c ? p.settled.anon - c.settled.anon : null;
  return {
    name: r.name, n: nMax, anon: c?.perWorker.anon ?? null, uss: c?.perWorker.uss ?? null,
    saved, ofSource: saved == null ? null : saved / source.bytes,
    savedSettled, ofSourceSettled: savedSettled == null ? null : savedSettled / source.bytes,
  };
});
const frac = (x) => (x == null ? '-' : x.toFixed(2));
printTable(
  ['competitor', 'anon MiB', 'USS MiB', 'anon saved MiB', 'of the source', 'settled: anon saved MiB', 'of the source'],
  limit.map((l) => [l.name, fmt(l.anon), fmt(l.uss), fmt(l.saved), frac(l.ofSource), fmt(l.savedSettled), frac(l.ofSourceSettled)]),
);

console.log(`\nStartup: one fresh process per sample, interleaved (${loadRuns} per competitor); ms min/median/max`);
printTable(
  ['competitor', 'corpus load ms', 'load ratio', 'process wall ms', 'wall ratio'],
  rows.map((r) => [r.name, ms(r.startup.load), ratio(r.startup.load?.median, plain?.startup.load?.median), ms(r.startup.wall), ratio(r.startup.wall?.median, plain?.startup.wall?.median)]),
);

for (const s of skipped) console.log(`# skipped ${s.name}: ${s.reason}`);
for (const r of rows) for (const f of r.failures) console.log(`# FAILED ${r.name}: ${f}`);
for (const r of rows.filter((x) => x.name.startsWith('codeblob'))) {
  const c = r.counters;
  console.log(`# ${r.name}: ${c ? `${c.hits} cjs + ${c.jsonHits} json from the blob, ${c.misses} misses, ${c.cacheRejected} caches rejected, ${c.stringsCopied} strings copied` : 'loader OFF'}`);
}
const file = join(outDir, `load-memory-${h.node}.json`);
writeFileSync(file, JSON.stringify({ header: h, backend, children: Ns, rounds, loadRuns, blob: packed, source, rows, limit, skipped, MiB }, null, 2));
console.log(`# JSON: ${file}`);
