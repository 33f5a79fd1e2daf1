// docs/benchmarks.md section for bench/resolve.mjs (issue 7): resolution from the blob's table.
import { readResults, stamp } from '../lib.mjs';

const pct = (x) => `${(100 * x).toFixed(0)}%`;

export function markdown(outDir) {
  const runs = readResults(outDir, 'resolve');
  const lines = [];
  for (const x of runs) {
    for (const c of x.results) {
      lines.push(`**Module resolution, ${c.corpus} corpus (${c.modules} modules, ${c.resolutions.answers} recorded resolutions), Node ${x.header.node}** (${stamp(x.header)}; ${x.runs} fresh processes per mode, interleaved; medians)`, '');
      lines.push('| | load ms | resolving ms | resolutions | blob resident after startup KiB | load ratio to plain |', '|---|---|---|---|---|---|');
      const plain = c.rows[0];
      for (const r of c.rows) {
        lines.push(`| ${r.mode} | ${r.load.median.toFixed(0)} | ${r.resolve.median.toFixed(1)} | ${r.calls} | ${(r.blobResident / 1024).toFixed(0)} | ${(r.load.median / plain.load.median).toFixed(2)} |`);
      }
      const s = c.summary;
      const ahead = s.verifyAheadGain === undefined ? '' :
        ` Checking ahead on background threads (\`codeblob\`: the startup range's hashes, ${c.rows[2].verifiedAhead.median} sections found checked, and the startup modules' file stats) instead of on the loading thread (the last row) makes the load ${pct(s.verifyAheadGain)} faster.`;
      lines.push('', `Resolving took ${pct(s.resolveShareOfPlain)} of plain \`require\`'s load and ${pct(s.resolveShareNoTable)} of codeblob's without the table; the table cuts the time spent resolving by ${pct(s.resolveReduction)} and the load time by ${pct(s.loadGainOverNoTable)}.${ahead}`, '');
    }
  }
  return lines.join('\n');
}
