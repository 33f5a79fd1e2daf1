#!/usr/bin/env node
// Issue 19, side by side in one run: what "content, not time, decides" costs. Two builds of
// codeblob, each loading a blob its own packer wrote: --base (a checkout with its dist/ built,
// e.g. the commit before) and this one, with plain `require` beside them; fresh processes
// interleaved (bench/child-resolve.cjs: load time, time spent resolving, the loader's counters).
//
//   unchanged   the corpus as packed: must cost nothing (the load time no worse than --base)
//   touched     every file and folder of the corpus given a new mtime, content unchanged (what
//               `cp -r` or an artifact upload does): --base loads everything from disk; this
//               build reads and hashes each file and serves it from the blob. Also in hash mode.
//
// Each corpus is copied (times kept) into a scratch dir first, so the caches stay untouched.
// Usage: node bench/ab-freshness.mjs --base <dir> [--node <bin>] [--runs 15] [--corpus reference,service]
//        [--scenarios unchanged,touched] [--no-hash]
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cleanEnv, cli, header, outDir, printHeader, printTable, registerPath, repo, stats, runJsonChild, interleave } from './lib.mjs';

const { values } = parseArgs({
  options: {
    base: { type: 'string' },
    node: { type: 'string', default: process.execPath },
    runs: { type: 'string', default: '15' },
    corpus: { type: 'string', default: 'reference,service' },
    scenarios: { type: 'string', default: 'unchanged,touched' },
    hash: { type: 'boolean', default: true },
    'no-hash': { type: 'boolean', default: false },
  },
});
const scenarios = values.scenarios.split(',');
const withHash = values.hash && !values['no-hash'];
if (!values.base) throw new Error('--base <dir>: a codeblob checkout with dist/ built, to compare with');
const node = values.node;
const runs = Number(values.runs);
const builds = {
  base: { cli: join(values.base, 'dist/cli/main.js'), register: join(values.base, 'dist/loader/register.cjs') },
  this: { cli, register: registerPath },
};
const child = join(repo, 'bench/child-resolve.cjs');
const corpora = {
  reference: join(repo, 'node_modules/.cache/codeblob-test/reference-corpus'),
  service: join(repo, 'node_modules/.cache/codeblob-test/service-corpus'),
};

const sample = (args, env) => runJsonChild(node, args, child, env);

/** A new mtime on every file and folder (not following symlinks), as a copy without -p leaves them. */
function touchTree(dir, when = new Date('2021-03-04T05:06:07.891Z')) {
  const walk = (p) => {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return;
    if (st.isDirectory()) for (const name of readdirSync(p)) walk(join(p, name));
    utimesSync(p, when, when);
  };
  walk(dir);
}

async function measure(modes) {
  for (const m of modes) await sample(m.args, m.env); // warm the page cache for everyone
  const samples = await interleave(modes, runs, (m) => sample(m.args, m.env));
  return modes.map((m) => {
    const s = samples[m.name];
    const c = s[0].counters;
    return {
      mode: m.name,
      load: stats(s.map((x) => x.loadMs)),
      resolve: stats(s.map((x) => x.resolveMs)),
      counters: c && {
        hits: c.hits, stale: c.stale, timeOnly: c.timeOnly ?? null,
        resolveHits: c.resolveHits, resolveStale: c.resolveStale, resolveTimeOnly: c.resolveTimeOnly ?? null,
      },
    };
  });
}

const h = header(node);
printHeader(h, 'mmap');
console.log(`# uptime: ${execFileSync('uptime', { encoding: 'utf8' }).trim()}`);
const scratch = mkdtempSync(join(tmpdir(), 'codeblob-ab-'));
const results = [];
try {
  for (const name of values.corpus.split(',')) {
    const dir = join(scratch, name);
    execFileSync('cp', ['-a', corpora[name], dir]);
    const blobs = {};
    for (const [build, b] of Object.entries(builds)) {
      blobs[build] = join(scratch, `${name}-${build}.blob`);
      execFileSync(process.execPath, [b.cli, 'pack', '--node', node, '--json', '-o', blobs[build], 'entry.js'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
    }
    const env = { ...cleanEnv(), BENCH_ENTRY: join(dir, 'entry.js') };
    const mode = (build, verify) => ({
      name: `codeblob ${build}${verify ? `, CODEBLOB_VERIFY=${verify}` : ''}`,
      args: ['--require', builds[build].register],
      env: { ...env, CODEBLOB_FILE: blobs[build], ...(verify && { CODEBLOB_VERIFY: verify }) },
    });
    const plain = { name: 'plain require', args: [], env };
    const modes = [plain, mode('base'), mode('this'), ...(withHash ? [mode('base', 'hash'), mode('this', 'hash')] : [])];
    const measured = [];
    if (scenarios.includes('unchanged')) measured.push(['unchanged', await measure(modes)]);
    if (scenarios.includes('touched')) {
      touchTree(dir);
      measured.push(['every file and folder touched', await measure(modes)]);
    }
    for (const [scenario, rows] of measured) {
      console.log(`\n## ${name} corpus, ${scenario} (${runs} fresh processes per mode, interleaved)`);
      const baseLoad = rows.find((r) => r.mode === 'codeblob base')?.load.median;
      printTable(
        ['mode', 'load ms min/median/max', 'resolving ms (median)', 'vs base', 'cjs hits', 'stale', 'time only', 'resolutions from table', 'stale', 'rechecked'],
        rows.map((r) => [
          r.mode,
          `${r.load.min.toFixed(0)}/${r.load.median.toFixed(0)}/${r.load.max.toFixed(0)}`,
          r.resolve.median.toFixed(1),
          baseLoad ? (r.load.median / baseLoad).toFixed(2) : '-',
          r.counters?.hits ?? '-', r.counters?.stale ?? '-', r.counters?.timeOnly ?? '-',
          r.counters?.resolveHits ?? '-', r.counters?.resolveStale ?? '-', r.counters?.resolveTimeOnly ?? '-',
        ]),
      );
      results.push({ corpus: name, scenario, rows });
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
mkdirSync(outDir, { recursive: true });
const file = join(outDir, `ab-freshness-${h.node}.json`);
writeFileSync(file, JSON.stringify({ header: h, runs, base: values.base, results }, null, 2) + '\n');
console.log(`\nwrote ${file}`);
