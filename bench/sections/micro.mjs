// docs/benchmarks.md section for bench/micro.mjs: the store's hot paths, in-process (tinybench).
import { readResults, stamp } from '../lib.mjs';

const us = (ms) => (ms * 1000).toFixed(ms < 0.01 ? 3 : 1);

export function markdown(outDir) {
  const lines = [];
  for (const x of readResults(outDir, 'micro')) {
    lines.push(`**Micro-benchmarks, reference corpus blob (${x.blob.entries} entries, ${(x.blob.fileSize / 1024 ** 2).toFixed(1)} MiB), Node ${x.header.node}** (${stamp(x.header)}; tinybench in one process, ${x.timePerTaskMs} ms per task, backend ${x.backend})`, '');
    lines.push('| operation | ops/s | mean µs | median µs | p99 µs | what |', '|---|---|---|---|---|---|');
    for (const r of x.results) {
      lines.push(`| ${r.name} | ${Math.round(r.opsPerSec).toLocaleString('en')} | ${us(r.meanMs)} | ${us(r.p50Ms)} | ${us(r.p99Ms)} | ${r.batch > 1 ? `${r.note}; per item` : r.note} |`);
    }
    lines.push('');
  }
  return lines.join('\n');
}
