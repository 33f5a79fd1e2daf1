#!/usr/bin/env node
// Where each MiB of a worker goes (issue 13): one process per sample, plain require, Node's
// compile cache (Node >= 22.1, warm) and codeblob, side by side and interleaved, after load,
// the end of codeblob's startup burst and two full GCs (bench/breakdown-child.cjs measures from
// the inside). Apps: a tiny one (2 modules), the generated synthetic app of 100 / 1,000 /
// 10,000 modules, the service corpus and the reference corpus (--quick: tiny, synthetic 100,
// service). Medians per figure. Writes .bench-out/breakdown-<node>.json; --doc writes the
// tables of every breakdown JSON present into docs/benchmarks.md and the service table into
// README.md (between their breakdown markers).
// Usage: node bench/breakdown.mjs [--node <bin>] [--runs 3] [--apps tiny,synthetic-100,service] [--quick] [--thread]
//        node bench/breakdown.mjs --doc
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cleanEnv, hasCompileCache, header, installCorpus, mib, outDir, pack, printHeader, printTable, readResults, referenceCorpus, registerPath, repo, runUnder, stamp, runJsonChild, interleave } from './lib.mjs';
import { generateSyntheticApp } from './synthetic-corpus.mjs';

const { values } = parseArgs({
  options: {
    node: { type: 'string', default: process.execPath },
    runs: { type: 'string' },
    apps: { type: 'string' },
    quick: { type: 'boolean', default: false },
    doc: { type: 'boolean', default: false },
    thread: { type: 'boolean', default: false },
  },
});

const ROWS = [
  ['uss', 'USS (private memory), all of it'],
  ['anon', 'anonymous memory'],
  ['heapCommitted', '  V8 heap (resident)'],
  ['heapUsed', '    V8 heap used'],
  ['heapFree', '    V8 heap resident but free'],
  ['anonOther', '  anonymous, not V8 heap (thread stacks and malloc arenas, V8 zones, Node)'],
  ['mallocHeap', 'malloc main arena ([heap])'],
  ['files', 'written pages of the Node binary and other files'],
  ['addon', "codeblob's addon"],
  ['blobPrivate', "the blob's pages (private)"],
  ['blobRss', "the blob's pages resident (shared)"],
  ['externalSource', 'script sources outside the V8 heap (the blob\'s, Node\'s own)'],
  ['snapStrings', 'heap snapshot: strings on the heap'],
  ['snapCode', 'heap snapshot: code (bytecode, feedback, functions)'],
  ['snapClosures', 'heap snapshot: closures'],
  ['snapObjects', 'heap snapshot: other objects'],
  ['snapCodeblob', "heap snapshot: codeblob's own (bundle, store, index, tables, hooks)"],
  ['bytecode', 'V8 bytecode and metadata (code statistics)'],
  ['threads', 'threads'],
  ['loadMs', 'load ms'],
];

if (values.doc) {
  writeDocs();
  process.exit(0);
}

runUnder(values.node, import.meta.url);
const node = process.execPath;
const runs = Number(values.runs ?? (values.quick ? 1 : 3));
const appNames = (values.apps ?? (values.quick ? 'tiny,synthetic-100,service' : 'tiny,synthetic-100,synthetic-1000,synthetic-10000,service,reference')).split(',');
mkdirSync(outDir, { recursive: true });
const h = header(node);
printHeader(h, 'mmap (asked)');
const compileCache = hasCompileCache(h.node);
const v8Major = Number(h.v8.split('.')[0]);
const child = join(repo, 'bench/breakdown-child.cjs');

function app(name) {
  if (name === 'tiny') {
    const dir = join(outDir, 'breakdown-tiny');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), '{}');
    writeFileSync(join(dir, 'entry.js'), "module.exports = require('./b.js');\n");
    writeFileSync(join(dir, 'b.js'), 'module.exports = 42;\n');
    return { dir, entry: join(dir, 'entry.js') };
  }
  const synthetic = /^synthetic-(\d+)$/.exec(name);
  if (synthetic) {
    const dir = join(outDir, 'synthetic', h.node, synthetic[1]);
    return { dir, entry: generateSyntheticApp(dir, Number(synthetic[1]), 1).entry };
  }
  if (name === 'service') {
    const dir = installCorpus('service');
    return { dir, entry: join(dir, 'entry.js') };
  }
  if (name === 'reference') {
    const dir = referenceCorpus();
    return { dir, entry: join(dir, 'entry.js') };
  }
  throw new Error(`unknown app ${name}`);
}

const sample = (args, env) => runJsonChild(node, args, child, env);

/** One sample's figures, flat, in bytes (threads and ms as they are). */
function flat(s) {
  const sm = s.smaps;
  const uss = sm.anon + sm.mallocHeap + sm.stack + sm.blob + sm.addon + sm.files + sm.other;
  return {
    uss,
    anon: sm.anon,
    heapCommitted: s.heapCommitted,
    heapUsed: s.heapUsed,
    heapFree: s.heapCommitted - s.heapUsed,
    anonOther: sm.anon - s.heapCommitted,
    mallocHeap: sm.mallocHeap,
    files: sm.files,
    addon: sm.addon,
    blobPrivate: sm.blob,
    blobRss: sm.blobRss,
    externalSource: s.externalSource,
    // From V8 12 a heap snapshot gives an external string its length as size: those are script
    // sources (the blob's modules, Node's own), counted in the row above instead.
    snapStrings: s.heap.strings - (v8Major >= 12 ? s.externalSource : 0),
    snapCode: s.heap.code,
    snapClosures: s.heap.closures,
    snapObjects: s.heap.objects,
    snapCodeblob: s.heap.codeblob,
    bytecode: s.bytecode,
    threads: s.threads,
    loadMs: s.loadMs,
  };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

if (values.thread) {
  await threadCost();
  process.exit(0);
}

/**
 * --thread: what codeblob costs a worker thread that loads nothing from the blob, by the blob's
 * size (plain vs codeblob, interleaved, medians): the thread's heap after a GC in it, and the
 * process's anonymous memory.
 */
async function threadCost() {
  const threadChild = join(repo, 'bench/breakdown-thread.cjs');
  const rows = [];
  for (const name of appNames) {
    const a = app(name);
    const blob = join(outDir, `breakdown-${name}-${h.node}.blob`);
    const packed = pack(node, a.dir, [a.entry], blob);
    const modes = [
      { name: 'plain', env: cleanEnv({}) },
      { name: 'codeblob', env: cleanEnv({ BENCH_THREAD_BLOB: blob, BENCH_REGISTER: registerPath }) },
    ];
    const got = await interleave(modes, runs, (m) => runJsonChild(node, [], threadChild, m.env));
    const med = (mode, f) => median(got[mode].map(f));
    const cells = (f) => ['plain', 'codeblob'].map((m) => med(m, f));
    const young = (s) => s.thread.spaces.new_space?.[0] ?? 0;
    const old = (s) => s.thread.spaces.old_space?.[0] ?? 0;
    const row = { app: name, entries: packed.entries, blobBytes: packed.fileSize, physical: cells((s) => s.thread.physical), used: cells((s) => s.thread.used), young: cells(young), old: cells(old), anon: cells((s) => s.processAnon) };
    rows.push(row);
  }
  printTable(['app (blob)', 'thread heap resident MiB', 'used', 'young generation', 'old space', 'process anonymous MiB'],
    rows.map((r) => [`${r.app} (${r.entries} modules, ${mib(r.blobBytes)} MiB)`, ...['physical', 'used', 'young', 'old', 'anon'].map((k) => `${mib(r[k][0])} -> ${mib(r[k][1])}`)]));
  const file = join(outDir, `breakdown-thread-${h.node}.json`);
  writeFileSync(file, JSON.stringify({ header: h, runs, rows }, null, 2));
  console.log(`# wrote ${file}`);
}

const results = [];
for (const name of appNames) {
  const a = app(name);
  const blob = join(outDir, `breakdown-${name}-${h.node}.blob`);
  const packed = pack(node, a.dir, [a.entry], blob);
  const cacheDir = join(outDir, `breakdown-compile-cache-${name}-${h.node}`);
  rmSync(cacheDir, { recursive: true, force: true });
  const env = cleanEnv({ BENCH_ENTRY: a.entry });
  const modes = [
    { name: 'plain require', args: [], env },
    ...(compileCache ? [{ name: 'node compile cache', args: [], env: { ...env, NODE_COMPILE_CACHE: cacheDir } }] : []),
    { name: 'codeblob', args: ['--require', registerPath], env: { ...env, CODEBLOB_FILE: blob } },
  ];
  for (const m of modes) await sample(m.args, m.env); // warm: the page cache, Node's compile cache
  let counters;
  const samples = await interleave(modes, runs, async (m) => {
    const s = await sample(m.args, m.env);
    if (s.codeblob) counters = s.codeblob;
    return flat(s);
  });
  const cols = modes.map((m) => ({ mode: m.name, ...Object.fromEntries(ROWS.map(([k]) => [k, median(samples[m.name].map((x) => x[k]))])) }));
  results.push({ app: name, entries: packed.entries, blobBytes: packed.fileSize, counters, cols });
  console.log(`\n${name}: ${packed.entries} modules in the blob; codeblob served ${counters?.hits ?? 0} cjs + ${counters?.esmHits ?? 0} esm, ${counters?.misses ?? '?'} misses`);
  printTable(['MiB', ...cols.map((c) => c.mode)], ROWS.map(([k, label]) => [label, ...cols.map((c) => cell(k, c[k]))]));
}
const file = join(outDir, `breakdown-${h.node}.json`);
writeFileSync(file, JSON.stringify({ header: h, runs, compileCache, results }, null, 2));
console.log(`\n# wrote ${file}`);

function cell(key, v) {
  if (v === undefined || v === null) return '-';
  if (key === 'threads') return String(v);
  if (key === 'loadMs') return v.toFixed(0);
  return mib(v);
}

/** Markdown tables of every breakdown JSON present; the service one goes to the README too. */
function writeDocs() {
  const all = readResults(outDir, 'breakdown');
  if (all.length === 0) throw new Error(`no breakdown results in ${outDir}: run bench/breakdown.mjs first`);
  const table = (x, r) => {
    const lines = [`| MiB | ${r.cols.map((c) => c.mode).join(' | ')} | codeblob − plain |`, `|---|${r.cols.map(() => '---|').join('')}---|`];
    for (const [k, label] of ROWS) {
      const plain = r.cols[0][k];
      const cb = r.cols.at(-1)[k];
      const diff = k === 'threads' ? String(cb - plain) : k === 'loadMs' ? (cb - plain).toFixed(0) : ((cb - plain) / 1048576).toFixed(1);
      lines.push(`| ${label.trim()} | ${r.cols.map((c) => cell(k, c[k])).join(' | ')} | ${diff} |`);
    }
    return lines.join('\n');
  };
  const title = (x, r) => `**${r.app}** (${r.entries.toLocaleString('en')} modules in the blob), Node ${x.header.node}`;
  const docs = [
    'Generated by `node bench/breakdown.mjs` (one process per sample, modes interleaved, medians; after load, the end of codeblob\'s startup burst and two full GCs; measured from inside without allocating on the V8 heap). ' +
      'USS counts every private page of the one process: the written pages of the Node binary are private to a lone process and shared between workers. ' +
      'The heap snapshot rows are V8\'s object sizes (they include its read-only space): compare them across columns, not with "heap used". ' +
      '"codeblob\'s own" is exact: what stays reachable only through codeblob\'s bundle, hooks and status record.',
    '',
  ];
  for (const x of all) {
    docs.push(`Node ${x.header.node} (${stamp(x.header)}; ${x.runs} samples per mode)`, '');
    for (const r of x.results) docs.push(title(x, r), '', table(x, r), '');
  }
  replaceBlock(join(repo, 'docs/benchmarks.md'), 'breakdown', docs.join('\n'));
  // The README: every app on every Node in one line each, then where the service's MiB go on the newest Node.
  const apps = [...new Set(all.flatMap((x) => x.results.map((r) => r.app)))];
  const readme = [
    'One process after load and a full GC, USS in MiB, plain `require` → codeblob (ratio); a service of many small modules first, the tool-heavy reference corpus last:',
    '',
    `| app | ${all.map((x) => `Node ${x.header.node}`).join(' | ')} |`,
    `|---|${all.map(() => '---|').join('')}`,
  ];
  const order = ['service', ...apps.filter((a) => a !== 'service')];
  for (const app of order) {
    const cells = all.map((x) => {
      const r = x.results.find((y) => y.app === app);
      if (!r) return '-';
      const [p, c] = [r.cols[0].uss, r.cols.at(-1).uss];
      return `${mib(p)} → ${mib(c)} (${(c / p).toFixed(2)})`;
    });
    const r = all.flatMap((x) => x.results).find((y) => y.app === app);
    readme.push(`| ${app} (${r.entries.toLocaleString('en')} modules) | ${cells.join(' | ')} |`);
  }
  const newest = all.at(-1);
  const service = newest.results.find((y) => y.app === 'service');
  if (service) readme.push('', `Where each MiB of the service (${service.entries.toLocaleString('en')} modules) goes on Node ${newest.header.node} (${stamp(newest.header)}; every app and Node: [docs/benchmarks.md](docs/benchmarks.md#where-each-mib-goes)):`, '', table(newest, service), '');
  replaceBlock(join(repo, 'README.md'), 'breakdown', readme.join('\n'));
}

function replaceBlock(path, name, body) {
  const text = readFileSync(path, 'utf8');
  const start = `<!-- ${name}:start (generated by bench/breakdown.mjs --doc; do not edit) -->`;
  const end = `<!-- ${name}:end -->`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i === -1 || j === -1) throw new Error(`${path} has no ${name} markers`);
  writeFileSync(path, text.slice(0, i + start.length) + '\n' + body.trimEnd() + '\n' + text.slice(j));
  console.log(`wrote ${path}`);
}
