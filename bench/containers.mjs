#!/usr/bin/env node
// Worker pools in real containers (podman + runc, bench/podman.mjs), the recipe of
// docs/containers.md as it is: plain `require`, Node's compile cache (Node >= 22.1, warm, on a
// volume) and codeblob (the blob in the image's layer), side by side, rounds interleaved.
// Per round and competitor: one pod (container) of M workers, then two pods of one image, each
// measured from the host (USS/PSS per process from smaps, the blob's page cache with mincore, what
// each cgroup is charged). From the one-pod figures a memory model for a node:
//   N pods × M workers = N × (M × worker USS + primary USS) + shared pages (once per node)
// where the shared pages are those the pod's processes map together (PSS − USS: the Node binary,
// libraries, and with codeblob the blob pages the workers keep mapped). The model is checked
// against the measured two-pod point. The file pages the pods read but do not keep mapped (the
// modules' files for plain and the compile cache, the blob for codeblob) sit in the page cache
// once per node and are reported beside it.
// Usage: node bench/containers.mjs [--node <bin>] [--workers 4] [--rounds 3] [--quick]
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { open } from '../dist/index.js';
import { measureCgroups } from '../dist/measure/containers.js';
import { MiB, hasCompileCache, header, mib, outDir, printHeader, printTable, ratioText as ratio, referenceCorpus, rotate, stats, why } from './lib.mjs';
import { baseImage, buildImage, layers, mountImage, podmanProblem, prepareContext, pruneBuildCache, removeContainers, startPool, unmountImage } from './podman.mjs';

const { values } = parseArgs({
  options: {
    node: { type: 'string', default: process.execPath },
    workers: { type: 'string' },
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
  },
});
const node = values.node;
const M = Number(values.workers ?? 4);
const rounds = Number(values.rounds ?? (values.quick ? 1 : 3));
mkdirSync(outDir, { recursive: true });
const h = header(node);
const file = join(outDir, `containers-${h.node}.json`);
printHeader(h, 'mmap');

const problem = podmanProblem();
if (problem) {
  console.log(`# skipped: ${problem}`);
  writeFileSync(file, JSON.stringify({ header: h, notRun: problem }, null, 2));
  process.exit(0);
}

const PREFIX = 'codeblob-bench-';
removeContainers(PREFIX);
referenceCorpus();
const work = mkdtempSync(join(tmpdir(), 'codeblob-bench-containers-'));
const t0 = performance.now();
const context = prepareContext(join(work, 'context'));
const base = baseImage(node);
const image = buildImage(context, { base, target: 'runtime', tag: `localhost/codeblob-bench-app:${h.node.slice(1)}` });
console.log(`# images built in ${((performance.now() - t0) / 1000).toFixed(0)} s (base ${base})`);
const root = mountImage(image);
const blobPath = join(root, 'blob/app.blob');
const digest = execFileSync('sha256sum', [blobPath], { encoding: 'utf8' }).split(' ')[0];
const blobSize = statSync(blobPath).size;
// `require` reads every module's file whole: with plain require and the compile cache these
// files sit in the page cache once per node (the blob records their sizes).
const store = open(blobPath, { root: join(root, 'app'), verify: 'none' });
const moduleFiles = store.entries().reduce((a, e) => a + e.fileSize, 0);
const blobEntries = store.entries().length;
store.close();
const dirSize = (dir) => readdirSync(dir, { recursive: true }).map((f) => statSync(join(dir, f))).filter((st) => st.isFile()).reduce((a, st) => a + st.size, 0);
const env = { WORKERS: String(M), CODEBLOB_FILE: '/blob/app.blob', CODEBLOB_VERIFY: 'none', CODEBLOB_SHA256: digest, GC_AFTER_LOAD: '1' };
const cacheDir = join(work, 'compile-cache');
mkdirSync(cacheDir);
chmodSync(cacheDir, 0o777);
const modes = [
  { name: 'plain require', env: { ...env, CODEBLOB_FILE: '', CODEBLOB_SHA256: '' } },
  ...(hasCompileCache(h.node) ? [{ name: 'node compile cache', env: { ...env, CODEBLOB_FILE: '', CODEBLOB_SHA256: '', NODE_COMPILE_CACHE: '/cache' }, volumes: [`${cacheDir}:/cache`] }] : []),
  { name: 'codeblob', env, blob: true },
];
const skipped = hasCompileCache(h.node) ? [] : [{ name: 'node compile cache', reason: `needs Node >= 22.1 (this is ${h.node})` }];
console.log(`# competitors: ${modes.map((m) => m.name).join(', ')}; pods of ${M} workers; ${rounds} round(s); blob ${mib(blobSize)} MiB`);

/** Drops one file's pages from the page cache (GNU dd: nocache with count=0 means the whole file). */
function evict(path) {
  spawnSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0'], { stdio: 'ignore' });
}

/** Starts `count` pods of a competitor one after another, measures them together, stops them. */
async function sample(mode, count, round) {
  if (mode.blob) evict(blobPath); // so that the page cache and its charge show what the pods brought in
  const pods = [];
  try {
    for (let i = 0; i < count; i++) {
      pods.push(await startPool(image, { name: `${PREFIX}${mode.name.replace(/\W+/g, '-')}-${round}-${i}`, env: mode.env, volumes: mode.volumes ?? [] }));
    }
    const mem = measureCgroups(pods.map((p) => p.id));
    const nsPid = (pid) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/^NSpid:.*\s(\d+)$/m)[1]);
    const perPod = pods.map((p) => {
      const c = mem.cgroups.find((x) => x.cgroup.spec === p.id);
      const workerPids = new Set(p.ready.workers.map((w) => w.pid));
      const procs = c.memory.processes.map((x) => ({ ...x, worker: workerPids.has(nsPid(x.pid)) }));
      return {
        workers: procs.filter((x) => x.worker).map((x) => ({ uss: x.uss, pss: x.pss, anon: x.anonymous, blobRss: x.blobs[0]?.rss ?? 0 })),
        primary: procs.filter((x) => !x.worker).map((x) => ({ uss: x.uss, pss: x.pss })),
        charged: c.accounting,
        loadMs: p.ready.workers.map((w) => w.loadMs),
        counters: p.ready.workers.map((w) => w.codeblob?.counters ?? null),
        answers: p.ready.workers.map((w) => JSON.stringify(w.answer)),
      };
    });
    if (mode.blob && perPod.some((p) => p.counters.some((c) => !c || c.hits === 0))) throw new Error('a worker loaded nothing from the blob');
    const total = { uss: mem.total.uss, pss: mem.total.pss };
    return { pods: perPod, total, blobs: mem.blobs.map((b) => ({ files: 1, size: b.file.size, pageCache: b.pageCache, rss: b.rss, pss: b.pss, via: b.file.via })) };
  } finally {
    for (const p of pods) await p.stop();
  }
}

// Warm the compile cache (and the page cache) once before measuring.
for (const mode of modes.filter((m) => !m.blob)) await sample(mode, 1, 'warm');

const runs = new Map(modes.map((m) => [m.name, { one: [], two: [], failures: [] }]));
for (let r = 0; r < rounds; r++) {
  for (const mode of rotate(modes, r)) {
    for (const [count, key] of [[1, 'one'], [2, 'two']]) {
      try {
        runs.get(mode.name)[key].push(await sample(mode, count, r));
      } catch (error) {
        runs.get(mode.name).failures.push(`${count} pod(s), round ${r + 1}: ${why(error)}`);
      }
    }
  }
}
const compileCacheFiles = dirSize(cacheDir);
unmountImage(image);

// Rolling updates: rebuild after a change to a file the blob does not hold (probe.cjs, copied
// into the build stage before the pack): the pack runs again; the same bytes should come out, and
// the image should keep the blob's layer and every layer below it.
const layerCheck = (() => {
  const probe = join(context, 'probe.cjs');
  const original = readFileSync(probe);
  const before = layers(image);
  const blobDigest = (img) => {
    const at = mountImage(img);
    try {
      return execFileSync('sha256sum', [join(at, 'blob/app.blob')], { encoding: 'utf8' }).split(' ')[0];
    } finally {
      unmountImage(img);
    }
  };
  const first = blobDigest(image);
  writeFileSync(probe, `${original}// a change to a file the blob does not hold\n`);
  const t = performance.now();
  const next = buildImage(context, { base, target: 'runtime', tag: `localhost/codeblob-bench-app-next:${h.node.slice(1)}` });
  const seconds = (performance.now() - t) / 1000;
  const after = layers(next);
  const second = blobDigest(next);
  spawnSync('podman', ['rmi', next], { stdio: 'ignore' });
  // The runtime stage's layers: the base image's, then dependencies, blob, app files.
  const blobLayer = before.length - 2;
  return { layers: before.length, sameBelowBlob: before.slice(0, blobLayer).every((l, i) => l === after[i]), blobLayerSame: before[blobLayer] === after[blobLayer], blobBytesSame: first === second, changed: before.filter((l, i) => l !== after[i]).length, rebuildSeconds: seconds };
})();
console.log(`# rebuild after a change to probe.cjs: blob bytes ${layerCheck.blobBytesSame ? 'identical' : 'DIFFERENT'}, blob layer ${layerCheck.blobLayerSame ? 'kept' : 'CHANGED'}, ${layerCheck.changed} of ${layerCheck.layers} layers changed`);
rmSync(work, { recursive: true, force: true });
pruneBuildCache();

const med = (xs) => (xs.length ? stats(xs).median : null);
const answers = new Set();
const rows = modes.map((mode) => {
  const run = runs.get(mode.name);
  for (const s of [...run.one, ...run.two]) for (const p of s.pods) for (const a of p.answers) answers.add(a);
  const one = run.one;
  const worker = med(one.flatMap((s) => s.pods[0].workers.map((w) => w.uss)));
  const workerPss = med(one.flatMap((s) => s.pods[0].workers.map((w) => w.pss)));
  const primary = med(one.map((s) => s.pods[0].primary.reduce((a, p) => a + p.uss, 0)));
  // Pages the pod's processes map together, counted once: what PSS adds to USS over the pod.
  const shared = med(one.map((s) => s.total.pss - s.total.uss));
  // Page cache once per node that no process keeps mapped: the blob's touched pages (measured,
  // after evicting it before each sample), or the modules' files (and the compile cache's files).
  const pageCache = mode.blob ? med(one.map((s) => s.blobs[0]?.pageCache ?? 0)) : moduleFiles + (mode.volumes ? compileCacheFiles : 0);
  const two = run.two;
  const measuredTwo = med(two.map((s) => s.total.pss));
  const workersPssTwo = med(two.map((s) => s.pods.flatMap((p) => p.workers).reduce((a, w) => a + w.pss, 0)));
  const chargedFirst = med(two.map((s) => s.pods[0].charged.file));
  const chargedSecond = med(two.map((s) => s.pods[1].charged.file));
  const workingSets = med(two.map((s) => s.pods.reduce((a, p) => a + p.charged.workingSet, 0)));
  return {
    name: mode.name,
    samples: { one: one.length, two: two.length },
    perWorker: { uss: worker, pss: workerPss },
    perPod: { primaryUss: primary },
    shared,
    pageCache,
    blobFiles: mode.blob ? Math.max(...two.map((s) => s.blobs.length)) : null,
    blobPageCacheTwo: mode.blob ? med(two.map((s) => s.blobs.reduce((a, b) => a + (b.pageCache ?? 0), 0))) : null,
    pageCacheSource: mode.blob ? 'blob pages in the page cache (mincore)' : mode.volumes ? 'module files and compile cache files (sizes)' : 'module files (sizes)',
    twoPods: {
      measuredPss: measuredTwo,
      modelPss: worker != null ? 2 * (M * worker + primary) + shared : null,
      workersPss: workersPssTwo,
      chargedPageCache: [chargedFirst, chargedSecond],
      kubeletWorkingSets: workingSets,
    },
    loadMs: stats(one.flatMap((s) => s.pods[0].loadMs)),
    failures: run.failures,
  };
});

const plain = rows.find((r) => r.name === 'plain require');
console.log(`\nOne pod of ${M} workers (medians over ${rounds} round(s)): what the model is made of`);
printTable(
  ['competitor', 'worker USS MiB', 'worker PSS MiB', 'primary USS MiB', 'shared once MiB', 'page cache once MiB', 'worker load ms (median)', 'worker USS ratio'],
  rows.map((r) => [r.name, mib(r.perWorker.uss), mib(r.perWorker.pss), mib(r.perPod.primaryUss), mib(r.shared), mib(r.pageCache), r.loadMs.median.toFixed(0), ratio(r.perWorker.uss, plain?.perWorker.uss)]),
);
console.log(`\nTwo pods of one image, ${M} workers each: model against measurement (PSS summed over every process of both)`);
printTable(
  ['competitor', 'model MiB', 'measured MiB', 'model / measured', `${2 * M} workers' PSS MiB`, 'workers PSS ratio', 'page cache charged: pod 1 / pod 2 MiB', 'kubelet working sets summed MiB'],
  rows.map((r) => [r.name, mib(r.twoPods.modelPss), mib(r.twoPods.measuredPss), ratio(r.twoPods.modelPss, r.twoPods.measuredPss), mib(r.twoPods.workersPss), ratio(r.twoPods.workersPss, plain?.twoPods.workersPss), r.twoPods.chargedPageCache.map(mib).join(' / '), mib(r.twoPods.kubeletWorkingSets)]),
);
const cb = rows.find((r) => r.name === 'codeblob');
if (cb) console.log(`# blob: ${cb.blobFiles} file(s) on the node for both pods; ${mib(cb.blobPageCacheTwo)} MiB in the page cache of ${mib(blobSize)} MiB (${ratio(cb.blobPageCacheTwo, blobSize)}x)`);
console.log(`# answers: ${answers.size} distinct over every worker of every competitor (1 means identical)`);
for (const s of skipped) console.log(`# skipped ${s.name}: ${s.reason}`);
for (const r of rows) for (const f of r.failures) console.log(`# FAILED ${r.name}: ${f}`);
writeFileSync(file, JSON.stringify({ header: h, workers: M, rounds, blob: { size: blobSize, entries: blobEntries }, moduleFiles, distinctAnswers: answers.size, layerCheck, rows, skipped, MiB }, null, 2));
console.log(`# JSON: ${file}`);
