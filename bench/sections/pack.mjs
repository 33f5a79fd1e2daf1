// docs/benchmarks.md section for bench/pack-cost.mjs: what packing the reference corpus costs.
import { readResults, stamp } from '../lib.mjs';

const MiB = 1024 * 1024;
const mib = (b) => (b / MiB).toFixed(1);

export function markdown(outDir) {
  const lines = [];
  for (const x of readResults(outDir, 'pack-cost')) {
    const mmm = (s, f) => `${f(s.min)} / ${f(s.median)} / ${f(s.max)}`;
    const sec = (ms) => (ms / 1000).toFixed(1);
    lines.push(`**Packing the reference corpus, Node ${x.header.node}** (${stamp(x.header)}; ${x.runs} runs per variant, interleaved; min / median / max; peaks are VmHWM, the packer's and the tracer child's polled from /proc, the tree's ${x.exactTreePeak ? 'exact (wait4)' : 'the larger of the two'})`, '');
    lines.push('| | wall s | packer peak MiB | tracer peak MiB | peak, whole tree MiB | blob MiB | blob / files |', '|---|---|---|---|---|---|---|');
    for (const r of x.rows) {
      lines.push(`| ${r.variant} | ${mmm(r.wallMs, sec)} | ${mmm(r.packerPeak, mib)} | ${mmm(r.tracerPeak, mib)} | ${mmm(r.treePeak, mib)} | ${mib(r.fileSize)} | ${(r.fileSize / x.fileBytes).toFixed(2)} |`);
    }
    const r = x.rows[0];
    lines.push(
      '',
      `${r.entries} entries (${r.cached} with a code cache; ${r.latin1} stored as Latin-1, ${r.utf16} as UTF-16) from ${mib(x.fileBytes)} MiB of files: ` +
        `sources ${mib(r.sourceBytes)} MiB as stored, caches ${mib(r.cacheBytes)} MiB, index ${mib(r.indexBytes)} MiB (resolution table ${mib(r.resolutionBytes)} MiB), padding ${(r.paddingBytes / 1024).toFixed(1)} KiB.`,
      '',
    );
  }
  return lines.join('\n');
}
