#!/usr/bin/env node
// How each cost grows with the number of modules, on a generated app (bench/synthetic-corpus.mjs,
// seeded) of 100, 1,000 and 10,000 modules (--quick: 100 and 1,000). For each size, side by
// side in one run: load time and memory (USS, anonymous) of one fresh process per sample after
// load + full GC, interleaved: plain require, Node's compile cache (Node >= 22.1, warm) and
// codeblob (mmap); pack time and blob size. Then the cost of each further module, between
// consecutive sizes. Runs under --node (re-executing itself there), so that the samples share
// the Node binary's pages with this process and a sample's USS is what it alone costs.
// --esm: the app as ES modules, run as `node entry.mjs` runs it (the ES module loader), with
// codeblob through --require and through --import (Node 22+).
// Usage: node bench/synthetic.mjs [--node <bin>] [--runs 7] [--sizes 100,1000,10000] [--seed 1] [--quick] [--esm]
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { measure } from '../dist/index.js';
import { MiB, askedBackend, cleanEnv, hasCompileCache, header, mib, outDir, pack, printHeader, printTable, registerImportPath, registerPath, reportedBackend, runUnder, startSample, stats, stop, interleave } from './lib.mjs';
import { generateSyntheticApp } from './synthetic-corpus.mjs';

const { values } = parseArgs({
  options: {
    node: { type: 'string', default: process.execPath },
    runs: { type: 'string' },
    sizes: { type: 'string' },
    seed: { type: 'string', default: '1' },
    quick: { type: 'boolean', default: false },
    esm: { type: 'boolean', default: false },
  },
});
runUnder(values.node, import.meta.url);
const node = process.execPath;
const runs = Number(values.runs ?? (values.quick ? 3 : 7));
const packRuns = values.quick ? 1 : 3;
const sizes = (values.sizes ?? (values.quick ? '100,1000' : '100,1000,10000')).split(',').map(Number);
const seed = Number(values.seed);
mkdirSync(outDir, { recursive: true });
const h = header(node);
const compileCache = hasCompileCache(h.node);
const esm = values.esm;
const kind = esm ? 'synthetic-esm' : 'synthetic';
if (esm && Number(h.node.slice(1).split('.')[0]) < 22) throw new Error(`--esm needs Node 22+ (module.registerHooks for codeblob's ES module path); this is ${h.node}`);

const results = [];
for (const modules of sizes) {
  const dir = join(outDir, kind, h.node, String(modules)); // a blob of another Node's run stays fresh
  const app = generateSyntheticApp(dir, modules, seed, { esm });
  const blob = join(outDir, `${kind}-${modules}-${h.node}.blob`);
  const packs = Array.from({ length: packRuns }, () => pack(node, dir, [esm ? 'entry.mjs' : 'entry.js'], blob));
  const cacheDir = join(outDir, `${kind}-compile-cache-${modules}-${h.node}`);
  rmSync(cacheDir, { recursive: true, force: true }); // the app was just rewritten
  const env = cleanEnv({ BENCH_ENTRY: app.entry });
  const modes = [
    { name: esm ? 'plain' : 'plain require', args: [], env },
    ...(compileCache ? [{ name: 'node compile cache', args: [], env: { ...env, NODE_COMPILE_CACHE: cacheDir } }] : []),
    { name: 'codeblob', args: ['--require', registerPath], env: { ...env, CODEBLOB_FILE: blob, ...askedBackend } },
    // What `node --import codeblob/register` loads (package.json "exports", import condition).
    ...(esm ? [{ name: 'codeblob --import', args: ['--import', pathToFileURL(registerImportPath).href], env: { ...env, CODEBLOB_FILE: blob, ...askedBackend } }] : []),
  ];
  // One unmeasured run each: the page cache for everyone, the compile cache for Node's. The
  // codeblob mode is named by the backend its run reported, as is the header (first size).
  let backend;
  for (const m of modes) {
    const { child, report } = await startSample(node, m.args, m.env);
    await stop(child);
    if (!m.env.CODEBLOB_FILE) continue;
    backend = reportedBackend([report.backend]);
    m.name = m.name.replace('codeblob', `codeblob (${backend})`);
  }
  if (results.length === 0) printHeader(h, backend);
  if (compileCache && readdirSync(cacheDir).length === 0) throw new Error(`Node wrote no compile cache into ${cacheDir}`);

  const samples = await interleave(modes, runs, async (m) => {
    const { child, report } = await startSample(node, m.args, m.env);
    const mem = measure(child.pid);
    await stop(child);
    return { loadMs: report.loadMs, uss: mem.uss, anon: mem.privateDirty, counters: report.counters };
  });
  const rows = modes.map((m) => {
    const s = samples[m.name];
    return {
      mode: m.name,
      load: stats(s.map((x) => x.loadMs)),
      uss: stats(s.map((x) => x.uss)).median,
      anon: stats(s.map((x) => x.anon)).median,
      counters: s[0].counters,
    };
  });
  const packMs = stats(packs.map((p) => p.ms));
  results.push({ modules, backend, packages: app.packages, sourceBytes: app.bytes, entries: packs[0].entries, fileSize: packs[0].fileSize, packMs, rows });

  const plain = rows[0];
  console.log(`\n${modules} ${esm ? 'ES modules' : 'modules'} (${app.packages} packages, ${mib(app.bytes)} MiB of JavaScript): blob ${packs[0].entries} entries, ${mib(packs[0].fileSize)} MiB; packed in ${(packMs.median / 1000).toFixed(1)} s (median of ${packRuns})`);
  printTable(
    ['mode', 'load ms min/median/max', 'USS MiB', 'anon MiB', 'load ratio', 'USS ratio', 'anon ratio'],
    rows.map((r) => [
      r.mode,
      `${r.load.min.toFixed(0)}/${r.load.median.toFixed(0)}/${r.load.max.toFixed(0)}`,
      mib(r.uss),
      mib(r.anon),
      (r.load.median / plain.load.median).toFixed(2),
      (r.uss / plain.uss).toFixed(2),
      (r.anon / plain.anon).toFixed(2),
    ]),
  );
  const c = rows.find((r) => r.mode.startsWith('codeblob')).counters;
  console.log(`# codeblob: ${c ? `${c.hits + (c.esmHits ?? 0)} modules from the blob (${c.esmHits ?? 0} through the ES module hooks), ${c.misses} misses, ${c.cacheRejected} caches rejected` : 'loader OFF'}`);
}

// The cost of each further module between consecutive sizes: if it stays flat, the cost is
// linear in the number of modules.
const steps = [];
for (let i = 1; i < results.length; i++) {
  const [a, b] = [results[i - 1], results[i]];
  const per = (f) => (f(b) - f(a)) / (b.modules - a.modules);
  steps.push({
    from: a.modules,
    to: b.modules,
    packMs: per((x) => x.packMs.median),
    blobBytes: per((x) => x.fileSize),
    sourceBytes: per((x) => x.sourceBytes),
    rows: a.rows.map((r, j) => ({
      mode: r.mode,
      loadMs: per((x) => x.rows[j].load.median),
      uss: per((x) => x.rows[j].uss),
      anon: per((x) => x.rows[j].anon),
    })),
  });
}
console.log(`\nPer further module (between consecutive sizes; medians of ${runs} fresh processes per mode and size)`);
printTable(
  ['modules', 'mode', 'load µs', 'USS KiB', 'anon KiB', 'load ratio', 'anon ratio'],
  steps.flatMap((s) =>
    s.rows.map((r) => [`${s.from} → ${s.to}`, r.mode, (r.loadMs * 1000).toFixed(0), (r.uss / 1024).toFixed(1), (r.anon / 1024).toFixed(1), (r.loadMs / s.rows[0].loadMs).toFixed(2), (r.anon / s.rows[0].anon).toFixed(2)]),
  ),
);
printTable(
  ['modules', 'pack ms', 'blob KiB', 'source KiB'],
  steps.map((s) => [`${s.from} → ${s.to}`, s.packMs.toFixed(1), (s.blobBytes / 1024).toFixed(2), (s.sourceBytes / 1024).toFixed(2)]),
);
if (!compileCache) console.log(`# skipped node compile cache: needs Node >= 22.1 (this is ${h.node})`);
const file = join(outDir, `${kind}-${h.node}.json`);
writeFileSync(file, JSON.stringify({ header: h, runs, packRuns, seed, esm, compileCache, results, steps, MiB }, null, 2));
console.log(`# JSON: ${file}`);
