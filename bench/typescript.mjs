#!/usr/bin/env node
// TypeScript as Node runs it (issue 14), side by side, rounds interleaved (the order rotates):
// plain `node app.ts` (Node strips every file, loading its stripper), Node's compile cache
// (NODE_COMPILE_CACHE, warmed by two runs first: it stores the stripped text and a code cache),
// and codeblob (the stripped text and CommonJS caches from the blob, `--require register`).
// Two apps:
//  - service: corpus/typescript (171 generated .ts files over find-my-way, zod, pino, dayjs), one
//    process, and a cluster of W workers (per-worker USS);
//  - ts300: 300 .ts ES modules and nothing else (the second target: ready and anonymous
//    memory against Node's compile cache).
// Each sample reports through bench/typescript/probe.cjs (preloaded in every mode): ready = time
// from process start until the server listens (or the app's end), then a full GC, then anonymous
// memory and USS from smaps_rollup, and whether amaro (the stripper) was loaded.
// Runs under --node (re-executing itself there). JSON: .bench-out/typescript-<node>.json.
// Usage: node bench/typescript.mjs [--node <bin>] [--rounds 7] [--cluster-rounds 3] [--workers 8] [--quick]
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { askedBackend, cleanEnv, header, installCorpus, outDir, pack, printHeader, printTable, repo, rotate, runUnder, stats } from './lib.mjs';

const { values } = parseArgs({
  options: {
    node: { type: 'string', default: process.execPath },
    rounds: { type: 'string' },
    'cluster-rounds': { type: 'string' },
    workers: { type: 'string', default: '8' },
    quick: { type: 'boolean', default: false },
  },
});
runUnder(values.node, import.meta.url);
const node = process.execPath;
const rounds = Number(values.rounds ?? (values.quick ? 5 : 9));
const clusterRounds = Number(values['cluster-rounds'] ?? (values.quick ? 2 : 3));
const W = Number(values.workers);
const h = header(node);
if (!process.features.typescript) {
  console.log(`# Node ${h.node} does not strip types: nothing to measure`);
  process.exit(0);
}
printHeader(h, 'mmap');
console.log(`# load average at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log(`# ${rounds} rounds single-process, ${clusterRounds} rounds of a ${W}-worker cluster; modes interleaved; medians`);

const probe = join(repo, 'bench/typescript/probe.cjs');
const register = join(repo, 'dist/loader/register.cjs');
const work = join(outDir, `typescript-${h.node}`);
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

/** The service corpus, installed from its lockfile, its sources generated. */
function serviceApp() {
  const dir = installCorpus('typescript');
  execFileSync(node, [join(dir, 'generate.mjs'), dir], { stdio: 'ignore' });
  return { name: 'service', dir, entry: join(dir, 'server.ts') };
}

/** 300 .ts ES modules (interfaces, typed functions and classes), a k-ary import tree, no dependencies. */
function ts300App() {
  const dir = join(work, 'ts300');
  const N = 300;
  mkdirSync(join(dir, 'src'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
  for (let i = 0; i < N; i++) {
    const kids = [1, 2, 3].map((c) => 3 * i + c).filter((k) => k < N);
    let s = `interface Rec${i} { id: number; name: string; tags: string[]; meta?: Record<string, unknown> }\ntype Key${i} = keyof Rec${i};\n`;
    for (const k of kids) s += `import { f${k}, v${k} } from './m${k}.ts';\n`;
    s += `export const v${i}: number = ${i};\nexport function f${i}(x: number): number {\n  let acc: number = x + ${i};\n`;
    for (const k of kids) s += `  acc += v${k} + f${k}(0);\n`;
    s += `  return acc;\n}\nexport class C${i} {\n  items: Rec${i}[] = [];\n  add(r: Rec${i}): this { this.items.push(r); return this; }\n  find(id: number): Rec${i} | undefined { return this.items.find((r) => r.id === id); }\n}\n`;
    s += `export function validate${i}(o: unknown): o is Rec${i} {\n  if (typeof o !== 'object' || o === null) return false;\n  const r = o as Rec${i};\n  return typeof r.id === 'number' && typeof r.name === 'string';\n}\n`;
    writeFileSync(join(dir, 'src', `m${i}.ts`), s);
  }
  writeFileSync(join(dir, 'main.ts'), "import { f0 } from './src/m0.ts';\nconst n: number = f0(1);\nif (n < 0) console.log('never');\n");
  return { name: 'ts300', dir, entry: join(dir, 'main.ts') };
}

const MODES = ['plain', 'cc', 'codeblob'];

/** Per app: the blob, the warm compile cache directory; the environment and preloads of each mode. */
function prepare(app) {
  const blob = join(work, `${app.name}.blob`);
  const t0 = performance.now();
  const packed = pack(node, app.dir, [app.entry], blob);
  const packMs = performance.now() - t0;
  const ccDir = join(work, `${app.name}-cc`);
  const base = cleanEnv({ PORT: '0', LOG_LEVEL: 'warn' });
  const modes = {
    plain: { env: base, execArgv: ['--require', probe] },
    cc: { env: { ...base, NODE_COMPILE_CACHE: ccDir }, execArgv: ['--require', probe] },
    codeblob: { env: { ...base, ...askedBackend, CODEBLOB_FILE: blob }, execArgv: ['--require', probe, '--require', register] },
  };
  for (let i = 0; i < 2; i++) single(app, modes.cc); // warm Node's compile cache
  console.log(`# ${app.name}: ${packed.entries ?? packed.modules ?? '?'} modules packed in ${(packMs / 1000).toFixed(1)} s, blob ${(packed.fileSize / 1024).toFixed(0)} KiB`);
  return modes;
}

function single(app, mode) {
  const out = join(work, 'probe.json');
  rmSync(out, { force: true });
  const r = spawnSync(node, [...mode.execArgv, app.entry], { cwd: app.dir, env: { ...mode.env, PROBE_OUT: out }, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${app.name} failed (${r.status ?? r.signal}): ${r.stderr.slice(-1500)}`);
  return JSON.parse(readFileSync(out, 'utf8'));
}

function clusterRun(app, mode) {
  const r = spawnSync(node, [join(repo, 'bench/typescript/cluster.mjs')], {
    cwd: app.dir,
    env: { ...mode.env, APP: app.entry, WORKERS: String(W), EXEC_ARGV: JSON.stringify(mode.execArgv) },
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (r.status !== 0) throw new Error(`cluster of ${app.name} failed (${r.status ?? r.signal}): ${r.stderr.slice(-1500)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const med = (list) => stats(list).median;
const results = { header: h, rounds, clusterRounds, workers: W, apps: {} };

for (const app of [serviceApp(), ts300App()]) {
  const modes = prepare(app);
  const samples = Object.fromEntries(MODES.map((m) => [m, []]));
  for (let r = 0; r < rounds; r++) for (const m of rotate(MODES, r)) samples[m].push(single(app, modes[m]));
  const one = Object.fromEntries(MODES.map((m) => [m, {
    readyMs: med(samples[m].map((s) => s.readyMs)),
    anonMiB: med(samples[m].map((s) => s.anonMiB)),
    ussMiB: med(samples[m].map((s) => s.ussMiB)),
    amaro: samples[m].filter((s) => s.amaro).length,
    n: samples[m].length,
  }]));
  const res = { single: one };
  if (app.name === 'service') {
    const cl = Object.fromEntries(MODES.map((m) => [m, []]));
    for (let r = 0; r < clusterRounds; r++) for (const m of rotate(MODES, r)) cl[m].push(clusterRun(app, modes[m]));
    res.cluster = Object.fromEntries(MODES.map((m) => {
      const workers = cl[m].flatMap((c) => c.workers);
      return [m, {
        allReadyMs: med(cl[m].map((c) => c.allReadyMs)),
        workerUssMiB: med(workers.map((w) => w.ussMiB)),
        workerAnonMiB: med(workers.map((w) => w.anonMiB)),
        workerReadyMs: med(workers.map((w) => w.readyMs)),
        amaro: workers.filter((w) => w.amaro).length,
        n: workers.length,
      }];
    }));
  }
  results.apps[app.name] = res;
  const x = (a, b) => (a / b).toFixed(2);
  console.log(`\n## ${app.name}, one process (median of ${rounds}): ready ms, anonymous and USS MiB after load + GC`);
  printTable(['mode', 'ready ms', 'x plain', 'x cc', 'anon MiB', 'USS MiB', 'x plain', 'x cc', 'amaro'],
    MODES.map((m) => [m, one[m].readyMs.toFixed(0), x(one[m].readyMs, one.plain.readyMs), x(one[m].readyMs, one.cc.readyMs),
      one[m].anonMiB.toFixed(1), one[m].ussMiB.toFixed(1), x(one[m].ussMiB, one.plain.ussMiB), x(one[m].ussMiB, one.cc.ussMiB), `${one[m].amaro}/${one[m].n}`]));
  if (res.cluster) {
    const c = res.cluster;
    console.log(`\n## ${app.name}, ${W}-worker cluster (${clusterRounds} rounds; medians over every worker)`);
    printTable(['mode', 'all ready ms', 'worker ready ms', 'x plain', 'x cc', 'worker USS MiB', 'x plain', 'x cc', 'worker anon MiB', 'amaro'],
      MODES.map((m) => [m, c[m].allReadyMs.toFixed(0), c[m].workerReadyMs.toFixed(0), x(c[m].workerReadyMs, c.plain.workerReadyMs), x(c[m].workerReadyMs, c.cc.workerReadyMs),
        c[m].workerUssMiB.toFixed(1), x(c[m].workerUssMiB, c.plain.workerUssMiB), x(c[m].workerUssMiB, c.cc.workerUssMiB), c[m].workerAnonMiB.toFixed(1), `${c[m].amaro}/${c[m].n}`]));
  }
}
console.log(`# load average at end ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
writeFileSync(join(outDir, `typescript-${h.node}.json`), JSON.stringify(results, null, 2));
