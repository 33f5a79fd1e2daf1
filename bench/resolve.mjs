#!/usr/bin/env node
// Issue 7, side by side in one run: module resolution from the blob's table. For each corpus
// (the reference corpus, and the service-style corpus of many small modules, corpus/service),
// fresh processes interleaved: plain `require`, codeblob without its resolution table
// (CODEBLOB_RESOLVE=0), codeblob with it, and codeblob with it but hashing every section and
// statting every file on the loading thread (CODEBLOB_VERIFY_AHEAD=0, as before the background
// checks). Reports load time, time spent in Module._resolveFilename (timed outermost, so the
// table's own cost counts), the number of resolutions, and the blob's pages resident in the
// process after startup.
// Usage: node bench/resolve.mjs [--node <bin>] [--runs 21] [--corpus reference,service] [--quick]
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { askedBackend, cleanEnv, header, installCorpus, outDir, pack, printHeader, referenceCorpus, registerPath, reportedBackend, repo, stats, runJsonChild, interleave } from './lib.mjs';

const { values } = parseArgs({
  options: {
    node: { type: 'string', default: process.execPath },
    runs: { type: 'string' },
    corpus: { type: 'string', default: 'reference,service' },
    quick: { type: 'boolean', default: false },
  },
});
const node = values.node;
const runs = Number(values.runs ?? (values.quick ? 3 : 21)); // 9 left medians too noisy to compare (2026-12-02)
mkdirSync(outDir, { recursive: true });
const h = header(node);
const child = join(repo, 'bench/child-resolve.cjs');

const sample = (args, env) => runJsonChild(node, args, child, env);

const base = cleanEnv();

const results = [];
for (const name of values.corpus.split(',')) {
  if (name === 'service' && !existsSync(join(repo, 'corpus/service/package-lock.json'))) {
    console.log('# skipped the service corpus: corpus/service is missing');
    continue;
  }
  const dir = name === 'reference' ? referenceCorpus() : installCorpus(name);
  const entry = join(dir, 'entry.js');
  const blob = join(outDir, `${name}-resolve-${h.node}.blob`);
  const packed = pack(node, dir, ['entry.js'], blob);
  const env = { ...base, BENCH_ENTRY: entry };
  const withBlob = { ...env, CODEBLOB_FILE: blob, ...askedBackend };
  const modes = [
    { name: 'plain require', args: [], env },
    { name: 'codeblob, no resolution table', args: ['--require', registerPath], env: { ...withBlob, CODEBLOB_RESOLVE: '0' } },
    { name: 'codeblob', args: ['--require', registerPath], env: withBlob },
    { name: 'codeblob, checks on the loading thread', args: ['--require', registerPath], env: { ...withBlob, CODEBLOB_VERIFY_AHEAD: '0' } },
  ];
  const warm = [];
  for (const m of modes) warm.push(await sample(m.args, m.env)); // warm the page cache for everyone
  // Before the first corpus's figures: the backend codeblob's warm-up samples reported.
  const backend = reportedBackend(warm.slice(1).map((w) => w.backend));
  if (results.length === 0) printHeader(h, backend);
  const samples = await interleave(modes, runs, (m) => sample(m.args, m.env));
  const rows = modes.map((m) => {
    const s = samples[m.name];
    const c = s[0].counters;
    return {
      mode: m.name,
      load: stats(s.map((x) => x.loadMs)),
      resolve: stats(s.map((x) => x.resolveMs)),
      calls: s[0].calls,
      blobResident: Math.max(...s.map((x) => x.blobResident)),
      counters: c && { hits: c.hits, resolveHits: c.resolveHits, resolveMisses: c.resolveMisses, resolveStale: c.resolveStale },
      verifiedAhead: c ? stats(s.map((x) => x.counters.verifiedAhead ?? 0)) : undefined,
    };
  });
  const [plain, noTable, table, inline] = rows;
  const summary = {
    resolveShareOfPlain: plain.resolve.median / plain.load.median,
    resolveShareNoTable: noTable.resolve.median / noTable.load.median,
    resolveReduction: 1 - table.resolve.median / noTable.resolve.median,
    loadGainOverNoTable: 1 - table.load.median / noTable.load.median,
    loadRatioToPlain: table.load.median / plain.load.median,
    verifyAheadGain: 1 - table.load.median / inline.load.median,
  };
  results.push({ corpus: name, backend, modules: packed.entries, resolutions: packed.resolutions, blobBytes: packed.fileSize, rows, summary });

  console.log(`\n${name} corpus: ${packed.entries} modules, ${packed.resolutions.answers} recorded resolutions on ${packed.resolutions.guards} guards; ${runs} fresh processes per mode, interleaved`);
  console.log('mode                             load ms min/med/max   resolve ms min/med/max   resolutions  blob resident after startup');
  for (const r of rows) {
    const f = (s) => `${s.min.toFixed(0)}/${s.median.toFixed(0)}/${s.max.toFixed(0)}`;
    console.log(`${r.mode.padEnd(32)} ${f(r.load).padStart(19)}   ${f(r.resolve).padStart(22)}   ${String(r.calls).padStart(11)}  ${(r.blobResident / 1024).toFixed(0).padStart(8)} KiB`);
  }
  const pct = (x) => `${(100 * x).toFixed(0)}%`;
  console.log(`resolving: ${pct(summary.resolveShareOfPlain)} of plain load, ${pct(summary.resolveShareNoTable)} of codeblob's without the table; the table cuts it by ${pct(summary.resolveReduction)}`);
  console.log(`load: with the table ${pct(summary.loadGainOverNoTable)} faster than without; ${summary.loadRatioToPlain.toFixed(2)}x plain`);
  console.log(`checks ahead on background threads (hashes, file stats): load ${pct(summary.verifyAheadGain)} faster than checking on the loading thread (sections checked ahead, median ${table.verifiedAhead.median})`);
  if (table.counters) console.log(`# codeblob counters: ${JSON.stringify(table.counters)}`);
}
const file = join(outDir, `resolve-${h.node}.json`);
writeFileSync(file, JSON.stringify({ header: h, runs, results }, null, 2));
console.log(`# JSON: ${file}`);
