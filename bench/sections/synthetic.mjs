// docs/benchmarks.md section for bench/synthetic.mjs: how load time, memory, pack time and blob size grow
// with the number of modules of a generated app.
import { readResults, stamp } from '../lib.mjs';

const MiB = 1024 * 1024;
const mib = (b) => (b / MiB).toFixed(1);
const r2 = (x) => x.toFixed(2);

/** An ES module app is imported, not required (runs before the label said so were named 'plain require'). */
const label = (x, mode) => (x.esm && mode === 'plain require' ? 'plain' : mode);

export function markdown(outDir) {
  const lines = [];
  for (const x of [...readResults(outDir, 'synthetic'), ...readResults(outDir, 'synthetic-esm')]) {
    const sizes = x.results.map((r) => r.modules.toLocaleString('en')).join(' / ');
    const what = x.esm ? `ES modules, run as \`node entry.mjs\` (bench/synthetic-corpus.mjs --esm` : 'modules (bench/synthetic-corpus.mjs';
    lines.push(`**Synthetic app of ${sizes} ${what}, seed ${x.seed}), Node ${x.header.node}** (${stamp(x.header)}; per size, one fresh process per sample, ${x.runs} per mode, interleaved, medians; memory after load + full GC; pack time median of ${x.packRuns})`, '');
    lines.push('| modules | | load ms | USS MiB | anonymous MiB | load ratio | USS ratio | anonymous ratio |', '|---|---|---|---|---|---|---|---|');
    for (const s of x.results) {
      const plain = s.rows[0];
      for (const r of s.rows) {
        lines.push(`| ${s.modules.toLocaleString('en')} | ${label(x, r.mode)} | ${r.load.median.toFixed(0)} | ${mib(r.uss)} | ${mib(r.anon)} | ${r2(r.load.median / plain.load.median)} | ${r2(r.uss / plain.uss)} | ${r2(r.anon / plain.anon)} |`);
      }
    }
    lines.push('', '| modules | JavaScript MiB | blob entries | blob MiB | pack s |', '|---|---|---|---|---|');
    for (const s of x.results) lines.push(`| ${s.modules.toLocaleString('en')} | ${mib(s.sourceBytes)} | ${s.entries} | ${mib(s.fileSize)} | ${(s.packMs.median / 1000).toFixed(1)} |`);
    if (x.steps.length > 0) {
      lines.push('', 'Each further module, between consecutive sizes:', '', '| modules | | load µs | USS KiB | anonymous KiB | load ratio | anonymous ratio |', '|---|---|---|---|---|---|---|');
      for (const s of x.steps) {
        const plain = s.rows[0];
        for (const r of s.rows) {
          lines.push(`| ${s.from.toLocaleString('en')} → ${s.to.toLocaleString('en')} | ${label(x, r.mode)} | ${(r.loadMs * 1000).toFixed(0)} | ${(r.uss / 1024).toFixed(1)} | ${(r.anon / 1024).toFixed(1)} | ${r2(r.loadMs / plain.loadMs)} | ${r2(r.anon / plain.anon)} |`);
        }
      }
      lines.push('', `Packing: ${x.steps.map((s) => `${s.packMs.toFixed(1)} ms and ${(s.blobBytes / 1024).toFixed(1)} KiB of blob (${(s.sourceBytes / 1024).toFixed(1)} KiB of JavaScript) per module from ${s.from.toLocaleString('en')} to ${s.to.toLocaleString('en')}`).join('; ')}.`);
    }
    if (!x.compileCache) lines.push('', `Not measured: node compile cache: needs Node >= 22.1 (this is ${x.header.node}).`);
    lines.push('');
  }
  return lines.join('\n');
}
