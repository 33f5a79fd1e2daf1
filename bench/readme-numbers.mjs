#!/usr/bin/env node
// Regenerates the published figures from the benchmark JSON in .bench-out/, never typed by hand:
// every table in docs/benchmarks.md, the README's short headline (the service app and the
// tool-heavy reference corpus side by side), and the measured paragraphs of docs/reliability.md.
// Every table is stamped with its date, machine and versions, the targets of issues 5 and 7 are
// checked against the figures, and every miss is said plainly (in both files).
// Usage: node bench/readme-numbers.mjs   (npm run bench runs it last)
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { outDir, readResults, repo, stamp } from './lib.mjs';
import { markdown as containersSection, targets as containerTargets } from './sections/containers.mjs';
import { markdown as headlineSection } from './sections/headline.mjs';
import { markdown as microSection } from './sections/micro.mjs';
import { markdown as packSection } from './sections/pack.mjs';
import { markdown as resolveSection } from './sections/resolve.mjs';
import { markdown as syntheticSection } from './sections/synthetic.mjs';

const MiB = 1024 * 1024;
const mib = (b) => (b == null || !Number.isFinite(b) ? '-' : (b / MiB).toFixed(1));
const r2 = (x) => (x == null || !Number.isFinite(x) ? '-' : x.toFixed(2));
const pct = (x) => `${(100 * x).toFixed(0)}%`;
const mmm = (s) => (s ? `${s.min.toFixed(0)} / ${s.median.toFixed(0)} / ${s.max.toFixed(0)}` : '-');
const div = (a, b) => (a != null && b ? a / b : null);
const major = (x) => x.header.node.slice(1).split('.')[0];

/**
 * Settled figures need a memory-reducing gc() (V8 12+, Node 22+); older V8 gives the young
 * generation back only by itself, 8 to 20+ s after the last allocation: not measured there.
 */
const SETTLE_NOTE = 'Settled figures are not shown for Node 20: its V8 has no memory-reducing `gc()` (V8 gives the young generation back by itself after 8 to 20+ s idle, which the benchmark does not wait for).';
const canSettle = (x) => Number(major(x)) >= 22;
/** A markdown table row without its last k cells (the settled columns, where not measured). */
const cut = (line, k) => (k === 0 ? line : line.split('|').slice(0, -(k + 1)).join('|') + '|');
function withoutSettled(x) {
  if (canSettle(x)) return x;
  return JSON.parse(JSON.stringify(x, (k, v) => (k === 'settled' || k === 'settledUss' || k === 'settledTotal' || k === 'savedSettled' || k === 'ofSourceSettled' ? undefined : v)));
}
// Files written by older versions of the scripts (no per-competitor rows) are skipped.
const current = (x) => Array.isArray(x.rows) && Array.isArray(x.rows[0]?.memory ?? x.rows[0]?.threads);
const memory = readResults(outDir, 'load-memory').filter(current).map(withoutSettled);
const pools = readResults(outDir, 'pools').filter(current).map(withoutSettled);
const resolves = readResults(outDir, 'resolve');
const alignments = readResults(outDir, 'alignment');
// The containers part has its own block (in docs/containers.md): a run of bench/containers.mjs
// alone regenerates it and leaves the numbers as they were.
const containersText = containersSection(outDir);
const haveNumbers = memory.length > 0 || pools.length > 0;
if (!haveNumbers && !containersText.trim()) throw new Error(`no benchmark results in ${outDir}: run npm run bench first`);

// ---- Targets (issues 5 and 7), checked against the figures of one run each.
const targets = [];
function target(what, where, value, limit, shown, atMost = true) {
  const met = value != null && (atMost ? value <= limit : value >= limit);
  targets.push({ what, where, value, limit, met, shown: value == null ? 'not measured' : shown(value), want: atMost ? `≤ ${shown(limit)}` : `≥ ${shown(limit)}` });
}
const x24 = memory.findLast((x) => major(x) === '24'); // the newest Node 24 run
if (x24) {
  const n = Math.max(...x24.children);
  const row = (name) => x24.rows.find((r) => r.name === name);
  const at = (name) => row(name)?.memory.find((c) => c.n === n)?.perWorker.uss;
  const settled = (name) => row(name)?.memory.find((c) => c.n === n)?.settled?.uss;
  const load = (name) => row(name)?.startup.load?.median;
  const where = `Node ${x24.header.node}, reference corpus, ${x24.header.date.slice(0, 10)}`;
  target(`USS per worker, ${n} child processes, vs plain`, where, div(at('codeblob (mmap)'), at('plain require')), 0.6, r2);
  target(`USS per worker, ${n} child processes, vs Node's compile cache`, where, div(at('codeblob (mmap)'), at('node compile cache')), 0.7, r2);
  target(`settled USS per worker (V8's headroom given back, as when idle), ${n} child processes, vs plain`, where, div(settled('codeblob (mmap)'), settled('plain require')), 0.6, r2);
  target(`settled USS per worker, ${n} child processes, vs Node's compile cache`, where, div(settled('codeblob (mmap)'), settled('node compile cache')), 0.7, r2);
  target('corpus load time vs plain', where, div(load('codeblob (mmap)'), load('plain require')), 0.55, r2);
  target("corpus load time vs Node's compile cache", where, div(load('codeblob (mmap)'), load('node compile cache')), 0.75, r2);
}
const p24 = pools.findLast((x) => major(x) === '24');
if (p24) {
  const n = Math.max(...p24.threads);
  const t = (name) => p24.rows.find((r) => r.name === name)?.threads.find((x) => x.n === n);
  const where = `Node ${p24.header.node}, reference corpus, ${p24.header.date.slice(0, 10)}`;
  target(`whole-process USS, piscina pool of ${n} threads, vs plain`, where, div(t('codeblob')?.uss, t('plain require')?.uss), 0.7, r2);
  target(`settled whole-process USS, piscina pool of ${n} threads, vs plain`, where, div(t('codeblob')?.settled?.uss, t('plain require')?.settled?.uss), 0.7, r2);
}
for (const x of resolves.filter((r) => ['20', '24'].includes(major(r)))) {
  const where = (c) => `Node ${x.header.node}, ${c.corpus} corpus, ${x.header.date.slice(0, 10)}`;
  for (const c of x.results) {
    target('time spent resolving, vs codeblob without the table: cut by', where(c), c.summary.resolveReduction, 0.8, pct, false);
    if (c.corpus === 'reference') target('corpus load time with the table vs plain', where(c), c.summary.loadRatioToPlain, 0.45, r2);
    else target(`load time gained by the table (vs without it), at least the share plain spent resolving (${pct(c.summary.resolveShareOfPlain)})`, where(c), c.summary.loadGainOverNoTable, c.summary.resolveShareOfPlain, pct, false);
    const [, noTable, table] = c.rows;
    target('blob pages resident after startup, with the table vs without (KiB)', where(c), table.blobResident / 1024, noTable.blobResident / 1024, (v) => v.toFixed(0));
  }
}
const lines = [];
if (targets.length > 0) {
  lines.push('**Targets** (issues 5 and 7), checked by the generator against the figures below:', '');
  lines.push('| target | where | measured | wanted | |', '|---|---|---|---|---|');
  for (const t of targets) lines.push(`| ${t.what} | ${t.where} | ${t.shown} | ${t.want} | ${t.met ? 'met' : '**missed**'} |`);
  lines.push('');
}

// ---- Every competitor, N child processes: memory, growth, the limit, startup.
for (const x of memory) {
  const n = Math.max(...x.children);
  const plain = x.rows.find((r) => r.name === 'plain require');
  const cell = (r, k) => r.memory.find((c) => c.n === k);
  lines.push(`**Reference corpus, every competitor, Node ${x.header.node}** (${stamp(x.header)}; backend ${x.backend}; blob of ${x.blob.entries} modules, ${mib(x.blob.fileSize)} MiB)`, '');
  lines.push(
    `Memory per child process, ${n} children at once (medians of ${x.rounds} rounds × ${n}): after load + a full GC` +
      (canSettle(x) ? `, then settled (the same processes after a memory-reducing GC gave back V8's headroom, its young generation and free heap pages: ${mib(cell(plain, n)?.perWorker.anon - cell(plain, n)?.settled?.anon)} MiB for plain here, as V8 does by itself once a process is idle for a few seconds). ` : '. ') +
      `The total over the N children grows by the slope per added worker (least squares over N = ${x.children.join(', ')}):`,
    '',
  );
  const k4 = canSettle(x) ? 0 : 4;
  lines.push(cut('| | USS MiB | PSS MiB | anonymous MiB | blob resident / shared MiB | USS ratio | PSS ratio | slope: USS MiB per worker | settled: USS MiB | settled: anonymous MiB | settled: USS ratio | settled: slope MiB per worker |', k4), cut('|---|---|---|---|---|---|---|---|---|---|---|---|', k4));
  for (const r of x.rows) {
    const c = cell(r, n);
    const p = cell(plain, n);
    if (!c) continue;
    // Where V8 had not yet released the young generation of every sample when measured.
    const partly = (x) => {
      const st = x?.settled;
      if (!st) return '';
      if (st.released !== undefined) return st.released < x.samples ? ` (${st.released} of ${x.samples} released)` : '';
      return st.youngBytes > 2 * MiB ? ' (not released)' : '';
    };
    lines.push(cut(`| ${r.name} | ${mib(c.perWorker.uss)} | ${mib(c.perWorker.pss)} | ${mib(c.perWorker.anon)} | ${mib(c.perWorker.blobRss)} / ${mib(c.perWorker.blobShared)} | ${r2(div(c.perWorker.uss, p?.perWorker.uss))} | ${r2(div(c.perWorker.pss, p?.perWorker.pss))} | ${mib(r.growth.uss?.slope)} | ${mib(c.settled?.uss)}${partly(c)} | ${mib(c.settled?.anon)} | ${r2(div(c.settled?.uss, p?.settled?.uss))}${partly(p)} | ${mib(r.growth.settledUss?.slope)} |`, k4));
  }
  if (!canSettle(x)) lines.push('', SETTLE_NOTE);
  lines.push('', `Per child at every N (USS MiB): ${x.rows.map((r) => `${r.name} ${r.memory.map((c) => `${c.n}: ${mib(c.perWorker.uss)}`).join(', ')}`).join('; ')}.`, '');
  lines.push(
    `How close to the limit: V8 keeps bytecode private per isolate, so what sharing can save per worker is about the loaded source as it would sit in a heap: ${mib(x.source.bytes)} MiB here (${x.source.modules} modules, ${(x.source.chars / 1e6).toFixed(1)} M characters at 1 byte each for Latin-1, 2 otherwise). ` +
      `Anonymous memory saved per worker against plain, as a fraction of that, after the full GC${canSettle(x) ? ' and settled' : ''}: ${x.limit.filter((l) => l.name !== 'plain require').map((l) => `${l.name} ${mib(l.saved)} MiB (${r2(l.ofSource)})${canSettle(x) ? ` and ${mib(l.savedSettled)} MiB (${r2(l.ofSourceSettled)})` : ''}`).join('; ')}. ` +
      'Above 1 means the parser\'s garbage and the compiler\'s work were saved too, not only the text.',
    '',
  );
  lines.push(`Startup: one fresh process per sample, ${x.loadRuns} per competitor, interleaved; ms min / median / max:`, '');
  lines.push('| | corpus load ms | load ratio | whole process, spawn to exit, ms | wall ratio |', '|---|---|---|---|---|');
  for (const r of x.rows) {
    lines.push(`| ${r.name} | ${mmm(r.startup.load)} | ${r2(div(r.startup.load?.median, plain?.startup.load?.median))} | ${mmm(r.startup.wall)} | ${r2(div(r.startup.wall?.median, plain?.startup.wall?.median))} |`);
  }
  lines.push('');
  for (const s of x.skipped ?? []) lines.push(`Not measured: ${s.name}: ${s.reason}.`, '');
  for (const r of x.rows) for (const f of r.failures) lines.push(`Failed: ${r.name}, ${f}.`, '');
  lines.push(`![memory against N child processes, Node ${x.header.node}](bench/memory-processes-${x.header.node}.svg) ![startup, Node ${x.header.node}](bench/startup-${x.header.node}.svg)`, '');
}

// ---- Pools: piscina threads at every N, and a cluster.
for (const x of pools) {
  const plain = x.rows.find((r) => r.name === 'plain require');
  const t = (r, n) => r.threads.find((c) => c.n === n);
  lines.push(`**Worker pools, reference corpus, Node ${x.header.node}** (${stamp(x.header)}; medians of ${x.rounds} rounds, competitors interleaved)`, '');
  lines.push('piscina, one process with N threads each loading the corpus: whole-process memory after load + GC, and time until all N have loaded:', '');
  const k2 = canSettle(x) ? 0 : 2;
  lines.push(cut('| | N | USS MiB | PSS MiB | anonymous MiB | all loaded, ms (min / median / max) | USS ratio | anonymous ratio | ready ratio | settled: USS MiB | settled: USS ratio |', k2), cut('|---|---|---|---|---|---|---|---|---|---|---|', k2));
  for (const r of x.rows) {
    for (const c of r.threads) {
      const p = t(plain, c.n);
      lines.push(cut(`| ${r.name} | ${c.n} | ${mib(c.uss)} | ${mib(c.pss)} | ${mib(c.anon)} | ${mmm(c.ready)} | ${r2(div(c.uss, p?.uss))} | ${r2(div(c.anon, p?.anon))} | ${r2(div(c.ready.median, p?.ready.median))} | ${mib(c.settled?.uss)} | ${r2(div(c.settled?.uss, p?.settled?.uss))} |`, k2));
    }
  }
  if (!canSettle(x)) lines.push('', SETTLE_NOTE);
  lines.push('', `Growth per added thread (least squares): ${x.rows.map((r) => `${r.name} ${mib(r.threadGrowth.uss?.slope)} MiB USS${r.threadGrowth.settledUss ? ` (settled ${mib(r.threadGrowth.settledUss.slope)})` : ''}, ${mib(r.threadGrowth.anon?.slope)} MiB anonymous`).join('; ')}.`, '');
  const withCluster = x.rows.filter((r) => r.cluster);
  if (withCluster.length) {
    lines.push(`cluster of ${x.workers} worker processes (codeblob through \`preloadPrimary\`), per worker after load + full GC, and time until all are ready:`, '');
    lines.push(cut('| | USS MiB | PSS MiB | anonymous MiB | all ready, ms (min / median / max) | USS ratio | PSS ratio | ready ratio | settled: USS MiB | settled: USS ratio |', k2), cut('|---|---|---|---|---|---|---|---|---|---|', k2));
    for (const r of withCluster) {
      lines.push(cut(`| ${r.name} | ${mib(r.cluster.uss)} | ${mib(r.cluster.pss)} | ${mib(r.cluster.anon)} | ${mmm(r.cluster.ready)} | ${r2(div(r.cluster.uss, plain?.cluster?.uss))} | ${r2(div(r.cluster.pss, plain?.cluster?.pss))} | ${r2(div(r.cluster.ready.median, plain?.cluster?.ready.median))} | ${mib(r.cluster.settled?.uss)} | ${r2(div(r.cluster.settled?.uss, plain?.cluster?.settled?.uss))} |`, k2));
    }
    lines.push('');
  }
  for (const s of x.skipped ?? []) lines.push(`Not measured: ${s.name}: ${s.reason}.`, '');
  for (const r of x.rows) for (const f of r.failures) lines.push(`Failed: ${r.name}, ${f}.`, '');
  lines.push(`![memory against N piscina threads, Node ${x.header.node}](bench/memory-threads-${x.header.node}.svg)`, '');
}

for (const section of [resolveSection, syntheticSection, packSection, microSection]) {
  const text = section(outDir);
  if (text.trim()) lines.push(text.trimEnd(), '');
}

for (const x of alignments) {
  lines.push(`**Layout, reference corpus, Node ${x.header.node}** (${stamp(x.header)}; ${x.runs} runs)`, '');
  lines.push('| layout | file MiB | padding MiB | blob resident after load: pages kept / released MiB | load ms (median) |', '|---|---|---|---|---|');
  for (const r of x.rows) lines.push(`| ${r.align} | ${mib(r.fileSize)} | ${mib(r.padding)} | ${mib(r.residentKept)} / ${mib(r.residentReleased)} | ${r.load.median.toFixed(0)} |`);
  lines.push('');
}

const missed = targets.filter((t) => !t.met);
// The headroom a plain worker still holds right after its full GC (what the memory-reducing GC
// gives back), per Node measured with settled figures.
const young = memory.filter(canSettle).map((x) => {
  const p = x.rows.find((r) => r.name === 'plain require')?.memory.at(-1);
  return p?.settled ? `${mib(p.perWorker.anon - p.settled.anon)} MiB on Node ${x.header.node}` : null;
}).filter(Boolean);
// The smallest synthetic app where codeblob's fixed cost (its own modules, addon, index) outweighs what it saves.
const small = readResults(outDir, 'synthetic').flatMap((x) => {
  const s0 = x.results[0];
  const plain = s0?.rows.find((r) => r.mode === 'plain require');
  const blob = s0?.rows.find((r) => r.mode.startsWith('codeblob'));
  return plain && blob && blob.uss > plain.uss ? [`${s0.modules} modules on Node ${x.header.node}: ${mib(blob.uss)} vs ${mib(plain.uss)} MiB USS`] : [];
});
// Why a table's load gain can fall short of plain's resolving share: it can only remove the share
// resolving has in codeblob's own load (without the table), and only the part of it it cuts.
const tableBounds = resolves.flatMap((x) =>
  x.results
    .filter((c) => c.corpus !== 'reference' && c.summary.loadGainOverNoTable < c.summary.resolveShareOfPlain)
    .map((c) => `on the ${c.corpus} corpus on Node ${x.header.node}, resolving is ${pct(c.summary.resolveShareNoTable)} of codeblob's load without the table and the table cuts ${pct(c.summary.resolveReduction)} of it, so about ${pct(c.summary.resolveShareNoTable * c.summary.resolveReduction)} is all it can gain, against ${pct(c.summary.resolveShareOfPlain)} wanted; it measured ${pct(c.summary.loadGainOverNoTable)}`),
);
lines.push(
  '**Where codeblob does not win.** ' +
    (targets.length === 0 ? 'No target was measured in these runs (they need the Node 24 and resolution benchmarks). ' : missed.length ? `Targets missed in these runs: ${missed.map((t) => `${t.what} (${t.where}): ${t.shown}, wanted ${t.want}`).join('; ')}. ` : 'Every target above was met in these runs. ') +
    (tableBounds.length ? `The resolution table's gain is bounded: ${tableBounds.join('; ')}. ` : '') +
    'V8 keeps bytecode private per isolate, so the code cache is deserialized into every heap; what sharing saves is the source text and the parser\'s garbage, never the bytecode. ' +
    'Fixed costs stay: right after a full GC every isolate still holds headroom, its young generation and free heap pages, whatever it loaded' +
    (young.length ? ` (${young.join(', ')}, for plain \`require\`)` : '') +
    ', which weighs on every ratio until V8 gives it back once the process is idle; the settled columns show memory after that. ' +
    (small.length ? `On small apps codeblob's own modules, addon and index cost more memory than the source it saves (synthetic app of ${small.join('; ')}). ` : '') +
    'With one process, the blob\'s clean file pages count in its USS (reclaimable page cache, like the files plain `require` reads). ' +
    'The `read` backend, which copies the file into each process, shows what the mapping itself is worth.',
);

/** Replaces the text between two markers of `file` (relative to the repository) with `body`. */
function fill(file, startMarker, endMarker, body) {
  const path = join(repo, file);
  const text = readFileSync(path, 'utf8');
  if (!text.includes(startMarker) || !text.includes(endMarker)) throw new Error(`${file} has no ${startMarker} markers`);
  writeFileSync(path, text.slice(0, text.indexOf(startMarker) + startMarker.length) + '\n' + body + '\n' + text.slice(text.indexOf(endMarker)));
}

const fuzzFile = join(outDir, 'fuzz.json');
const loadFile = join(outDir, 'load-test.json');
const RELIABILITY_START = '<!-- reliability:start (generated by bench/readme-numbers.mjs; do not edit) -->';
// A paragraph whose run is not in .bench-out (the long runs are not part of npm run bench) stays as it was.
const reliabilityText = readFileSync(join(repo, 'docs/reliability.md'), 'utf8');
const previous = reliabilityText.includes(RELIABILITY_START) ? reliabilityText.slice(reliabilityText.indexOf(RELIABILITY_START) + RELIABILITY_START.length, reliabilityText.indexOf('<!-- reliability:end -->')) : '';
const kept = (title) => previous.split(/\n\s*\n/).map((p) => p.trim()).find((p) => p.startsWith(title));
const reliability = [];
if (existsSync(loadFile)) {
  const l = JSON.parse(readFileSync(loadFile, 'utf8'));
  reliability.push(
    `**Under load** (\`node bench/load-test.mjs\`, ${l.date.slice(0, 10)}, Node ${l.node}): an express app on a 4-worker cluster from the blob answered ${l.requests.toLocaleString('en')} requests on loopback in ${l.seconds} s while the blob was replaced ${l.replacements} times (new file renamed over the path): **${l.errors} errors, ${l.mismatches} wrong answers**; ` +
      `RSS growth per worker over the second half of the load: ${l.rssGrowthMiB.join(', ')} MiB; then all ${l.restarted} workers were restarted one by one onto the newest generation and kept answering.`,
    '',
  );
} else if (kept('**Under load**')) reliability.push(kept('**Under load**'), '');
if (existsSync(fuzzFile)) {
  const f = JSON.parse(readFileSync(fuzzFile, 'utf8'));
  reliability.push([
    `**Fuzzing** (\`npm run fuzz\`, ${f.date.slice(0, 10)}, Node ${f.node}): ${f.cases.toLocaleString('en')} mutated copies of a ${(f.blobBytes / MiB).toFixed(1)} MiB blob of reference-corpus packages (express, lodash, @babel/core) in ${f.seconds} s;`,
    `by kind ${Object.entries(f.byKind).map(([k, v]) => `${k} ${v}`).join(', ')}. ` +
      `${f.typedErrors} refused at open with a typed error, ${f.opened} opened; ${f.entriesServed} entries served (each byte-identical to the original), ${f.entriesRefused} refused by their checks; ` +
      `${f.cachesRejected} caches rejected by V8 (every grafted cache from another V8 among them)` +
      (f.tablesUsed !== undefined ? `; ${f.tablesUsed} damaged resolution tables that still decoded were used to resolve without a crash` : '') +
      `. **Crashes: ${f.crashes.length}. Wrong answers: ${f.wrong.length}.**`,
  ].join('\n'));
} else if (kept('**Fuzzing**')) reliability.push(kept('**Fuzzing**'));
if (reliability.length > 0) fill('docs/reliability.md', RELIABILITY_START, '<!-- reliability:end -->', reliability.join('\n'));
const NUMBERS_START = '<!-- numbers:start (generated by bench/readme-numbers.mjs; do not edit) -->';
if (haveNumbers) {
  fill('docs/benchmarks.md', NUMBERS_START, '<!-- numbers:end -->', lines.join('\n'));
  fill('README.md', NUMBERS_START, '<!-- numbers:end -->', headlineSection({ memory, pools, resolves, targets }));
} else {
  console.log(`README.md, docs/benchmarks.md: numbers left as they were (no load-memory or pools results in ${outDir})`);
}
if (containersText.trim()) fill('docs/containers.md', '<!-- containers:start (generated by bench/readme-numbers.mjs; do not edit) -->', '<!-- containers:end -->', containersText.trimEnd());
const all = [...(haveNumbers ? targets : []), ...containerTargets(outDir)];
writeFileSync(join(outDir, 'targets.json'), JSON.stringify(all, null, 2));
const allMissed = all.filter((t) => !t.met);
console.log(`${haveNumbers ? 'README.md, docs/benchmarks.md: numbers; ' : ''}${containersText.trim() ? 'docs/containers.md: containers; ' : ''}regenerated from ${outDir}; targets met ${all.length - allMissed.length} of ${all.length}${allMissed.length ? `; missed: ${allMissed.map((t) => `${t.what} (${t.where}) ${t.shown}`).join('; ')}` : ''}`);
