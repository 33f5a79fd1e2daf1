#!/usr/bin/env node
// Page-aligned sections (the default) vs dense 8-byte packing, side by side in one run: file
// size, blob pages resident in a child after load (pages kept, and after codeblob's release),
// and corpus load time. Usage: node bench/alignment.mjs [--node <bin>] [--runs 7]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { measure } from '../dist/index.js';
import { askedBackend, cleanEnv, header, mib, outDir, pack, printHeader, referenceCorpus, registerPath, reportedBackend, startSample, stats, stop } from './lib.mjs';

const { values } = parseArgs({ options: { node: { type: 'string', default: process.execPath }, runs: { type: 'string', default: '7' } } });
const node = values.node;
const runs = Number(values.runs);
const corpus = referenceCorpus();
mkdirSync(outDir, { recursive: true });
const h = header(node);

const base = cleanEnv({ BENCH_ENTRY: join(corpus, 'entry.js'), ...askedBackend });
const layouts = ['page', 'dense'].map((align) => {
  const blob = join(outDir, `reference-${h.node}-${align}.blob`);
  return { align, blob, packed: pack(node, corpus, ['entry.js'], blob, ['--align', align]) };
});
// One unmeasured run per layout: the page cache, and the backend the samples report for the header.
const warm = [];
for (const l of layouts) {
  const { child, report } = await startSample(node, ['--require', registerPath], { ...base, CODEBLOB_FILE: l.blob });
  await stop(child);
  warm.push(report.backend);
}
const backend = reportedBackend(warm);
printHeader(h, backend);

const results = Object.fromEntries(layouts.map((l) => [l.align, { load: [], kept: [], released: [] }]));
for (let r = 0; r < runs; r++) {
  for (const l of r % 2 ? [...layouts].reverse() : layouts) {
    for (const keep of ['1', '0']) {
      const { child, report } = await startSample(node, ['--require', registerPath], { ...base, CODEBLOB_FILE: l.blob, CODEBLOB_KEEP_PAGES: keep });
      await new Promise((d) => setTimeout(d, 50)); // let the release run
      const blobRss = measure(child.pid).blobs[0]?.rss ?? 0;
      await stop(child);
      results[l.align][keep === '1' ? 'kept' : 'released'].push(blobRss);
      if (keep === '0') results[l.align].load.push(report.loadMs);
    }
  }
}

console.log('\nlayout  file MiB  padding MiB  blob resident after load, pages kept / released MiB   load ms min/median/max');
const rows = layouts.map((l) => {
  const x = results[l.align];
  const row = {
    align: l.align,
    fileSize: l.packed.fileSize,
    padding: l.packed.paddingBytes,
    residentKept: stats(x.kept).median,
    residentReleased: stats(x.released).median,
    load: stats(x.load),
  };
  console.log(`${l.align.padEnd(6)}  ${mib(row.fileSize).padStart(7)}  ${mib(row.padding).padStart(11)}  ${`${mib(row.residentKept)} / ${mib(row.residentReleased)}`.padStart(51)}   ${row.load.min.toFixed(0)}/${row.load.median.toFixed(0)}/${row.load.max.toFixed(0)}`);
  return row;
});
const file = join(outDir, `alignment-${h.node}.json`);
writeFileSync(file, JSON.stringify({ header: h, backend, runs, rows }, null, 2));
console.log(`# JSON: ${file}`);
