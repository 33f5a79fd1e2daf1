#!/usr/bin/env node
// What packing the reference corpus costs, and what comes out: wall time, peak memory of the
// packer and of the tracer child it runs the app in (VmHWM of each, polled from /proc; and the
// exact peak over the whole process tree from wait4, through /usr/bin/time when present), the
// number of entries, and the blob's size against the total size of the files it holds. With
// and without the resolution table (--no-resolutions); the CLI has no switch for code caches
// (every CommonJS module gets one), so the cache bytes are shown instead. Runs interleaved.
// Usage: node bench/pack-cost.mjs [--node <bin>] [--runs 5] [--quick]
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { open } from '../dist/index.js';
import { MiB, cleanEnv, cli, header, mib, outDir, printHeader, printTable, referenceCorpus, stats, interleave } from './lib.mjs';

const { values } = parseArgs({
  options: {
    node: { type: 'string', default: process.execPath },
    runs: { type: 'string' },
    quick: { type: 'boolean', default: false },
  },
});
const node = values.node;
const runs = Number(values.runs ?? (values.quick ? 2 : 5));
const corpus = referenceCorpus();
mkdirSync(outDir, { recursive: true });
const h = header(node);
const timeBin = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
const blob = join(outDir, `pack-cost-${h.node}.blob`);
const timeFile = join(outDir, `pack-cost-${h.node}.time`);

/** Direct children of a process (all its threads), from /proc/<pid>/task/<tid>/children. */
function children(pid) {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) => readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
  } catch {
    return []; // exited meanwhile
  }
}
function vmHWM(pid) {
  try {
    return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
  } catch {
    return 0;
  }
}

/** One pack, the packer itself running on `node` too; resolves with its JSON, wall time and peaks. */
function packOnce(extra) {
  const argv = [node, cli, 'pack', '--node', node, '--json', '-o', blob, ...extra, 'entry.js'];
  const cmd = timeBin ? [timeBin, '-f', '%M', '-o', timeFile, ...argv] : argv;
  return new Promise((done, fail) => {
    const t0 = performance.now();
    const child = spawn(cmd[0], cmd.slice(1), { cwd: corpus, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    // VmHWM only grows, so the last value read is the peak, short of its final 20 ms at most.
    const peak = { packer: 0, tracer: 0 };
    const poll = setInterval(() => {
      const packer = timeBin ? children(child.pid)[0] : child.pid;
      if (packer === undefined) return;
      peak.packer = Math.max(peak.packer, vmHWM(packer));
      for (const tracer of children(packer)) peak.tracer = Math.max(peak.tracer, vmHWM(tracer));
    }, 20);
    child.on('error', fail);
    child.on('close', (code) => {
      clearInterval(poll);
      const wallMs = performance.now() - t0;
      if (code !== 0) return fail(new Error(`pack exited with ${code}:\n${err.slice(-2000)}`));
      const tree = timeBin ? Number(readFileSync(timeFile, 'utf8').trim().split('\n').pop()) * 1024 : Math.max(peak.packer, peak.tracer);
      done({ result: JSON.parse(out), wallMs, peak: { ...peak, tree } });
    });
  });
}

const variants = [
  { name: 'default', args: [] },
  { name: 'no resolution table', args: ['--no-resolutions'] },
];
await packOnce([]); // warm the page cache and the packer's own files
const samples = await interleave(variants, runs, (v) => packOnce(v.args));
// Total size of the packed files as they are on disk (the blob records each one's size); the
// header names the backend this store opened the blob with.
const store = open(blob);
const fileBytes = store.entries().reduce((n, e) => n + e.fileSize, 0);
const backend = store.backend;
store.close();
rmSync(blob);
if (timeBin) rmSync(timeFile);

const rows = variants.map((v) => {
  const s = samples[v.name];
  const r = s[0].result;
  return {
    variant: v.name,
    wallMs: stats(s.map((x) => x.wallMs)),
    packMs: stats(s.map((x) => x.result.ms)),
    packerPeak: stats(s.map((x) => x.peak.packer)),
    tracerPeak: stats(s.map((x) => x.peak.tracer)),
    treePeak: stats(s.map((x) => x.peak.tree)),
    entries: r.entries,
    latin1: r.latin1,
    utf16: r.utf16,
    cached: r.cached,
    fileSize: r.fileSize,
    sourceBytes: r.sourceBytes,
    cacheBytes: r.cacheBytes,
    indexBytes: r.indexBytes,
    resolutionBytes: r.resolutionBytes,
    paddingBytes: r.paddingBytes,
  };
});

printHeader(h, backend);
console.log(`# reference corpus: ${rows[0].entries} entries, ${mib(fileBytes)} MiB of files; ${runs} runs per variant, interleaved; min/median/max`);
console.log(`# peak memory: VmHWM of the packer and of the tracer (polled every 20 ms); tree: ${timeBin ? 'the maximum over the process tree, exact (wait4, /usr/bin/time)' : 'the larger of the two (no /usr/bin/time here)'}`);
const mmm = (s, f) => `${f(s.min)}/${f(s.median)}/${f(s.max)}`;
const sec = (ms) => (ms / 1000).toFixed(1);
printTable(
  ['variant', 'wall s', 'pack s (in packer)', 'packer peak MiB', 'tracer peak MiB', 'tree peak MiB'],
  rows.map((r) => [r.variant, mmm(r.wallMs, sec), mmm(r.packMs, sec), mmm(r.packerPeak, mib), mmm(r.tracerPeak, mib), mmm(r.treePeak, mib)]),
);
console.log('');
printTable(
  ['variant', 'entries', 'with cache', 'blob MiB', 'sources MiB', 'caches MiB', 'index MiB', 'padding KiB', 'blob / files'],
  rows.map((r) => [r.variant, r.entries, r.cached, mib(r.fileSize), mib(r.sourceBytes), mib(r.cacheBytes), mib(r.indexBytes), (r.paddingBytes / 1024).toFixed(1), (r.fileSize / fileBytes).toFixed(2)]),
);
const file = join(outDir, `pack-cost-${h.node}.json`);
writeFileSync(file, JSON.stringify({ header: h, backend, runs, exactTreePeak: Boolean(timeBin), fileBytes, rows, MiB }, null, 2));
console.log(`# JSON: ${file}`);
