// The README's headline (bench/readme-numbers.mjs writes it between the README's numbers
// markers): the service app and the tool-heavy reference corpus side by side, on one Node (the
// newest Node 24 run, as the targets; else the newest run), plain `require` against codeblob,
// with the targets' tally. Every table is in docs/benchmarks.md.
import { stamp } from '../lib.mjs';

const MiB = 1024 * 1024;
const mib = (b) => (b / MiB).toFixed(1);
const ms = (v) => v.toFixed(0);
const major = (x) => x.header.node.slice(1).split('.')[0];
const newest = (list) => list.findLast((x) => major(x) === '24') ?? list.at(-1);
/** `plain → codeblob (ratio)`, or 'not measured'. */
const change = (plain, codeblob, f) => (plain == null || codeblob == null ? 'not measured' : `${f(plain)} → ${f(codeblob)} (${(codeblob / plain).toFixed(2)})`);

/**
 * `memory`, `pools`, `resolves`: the results of bench/load-memory.mjs, pools.mjs and
 * resolve.mjs (readResults(), the settled figures already dropped where V8 cannot settle);
 * `targets`: the targets as bench/readme-numbers.mjs checked them.
 */
export function markdown({ memory, pools, resolves, targets }) {
  const mem = newest(memory);
  const pool = newest(pools);
  const res = newest(resolves);
  const corpora = [['service', 'service app (`corpus/service`)'], ['reference', 'tool-heavy reference corpus (`corpus/reference`)']];
  const resolved = (corpus) => res?.results.find((c) => c.corpus === corpus);
  const load = (corpus, mode) => resolved(corpus)?.rows.find((r) => r.mode === mode)?.load.median;
  // The memory and pool benchmarks run on the reference corpus only.
  const n = mem && Math.max(...mem.children);
  const child = (name) => (mem ? mem.rows.find((r) => r.name === name)?.memory.find((c) => c.n === n) : undefined);
  const threads = pool && Math.max(...pool.threads);
  const thread = (name) => (pool ? pool.rows.find((r) => r.name === name)?.threads.find((x) => x.n === threads) : undefined);
  const reference = (corpus, plain, codeblob) => change(corpus === 'reference' ? plain : null, corpus === 'reference' ? codeblob : null, mib);

  const rows = [
    ['modules packed', ...corpora.map(([c]) => String(resolved(c)?.modules ?? 'not measured'))],
    ['load time, ms (median of fresh processes)', ...corpora.map(([c]) => change(load(c, 'plain require'), load(c, 'codeblob'), ms))],
  ];
  if (mem) {
    rows.push([`USS per worker, ${n} child processes, after load + full GC, MiB`, ...corpora.map(([c]) => reference(c, child('plain require')?.perWorker.uss, child('codeblob (mmap)')?.perWorker.uss))]);
    if (child('plain require')?.settled) {
      rows.push(['the same, settled (V8\'s headroom given back, as when idle), MiB', ...corpora.map(([c]) => reference(c, child('plain require')?.settled?.uss, child('codeblob (mmap)')?.settled?.uss))]);
    }
  }
  if (pool) rows.push([`whole-process USS, piscina pool of ${threads} threads, MiB`, ...corpora.map(([c]) => reference(c, thread('plain require')?.uss, thread('codeblob')?.uss))]);

  const out = ['Plain `require` → codeblob, and codeblob\'s ratio to plain (lower is better):', ''];
  out.push(`| | ${corpora.map(([, title]) => title).join(' | ')} |`, `|---|${corpora.map(() => '---|').join('')}`);
  for (const r of rows) out.push(`| ${r.join(' | ')} |`);
  out.push('');
  const sources = [[res, '`bench/resolve.mjs`'], [mem, '`bench/load-memory.mjs`'], [pool, '`bench/pools.mjs`']].filter(([x]) => x);
  const stamps = [...new Set(sources.map(([x]) => stamp(x.header)))];
  // The backend each benchmark's codeblob children reported (older results of pools and resolve did not record it).
  const backends = [...new Set([mem?.backend, pool?.backend, ...(res?.results.map((c) => c.backend) ?? [])].filter(Boolean))];
  out.push(`Measured by ${sources.map(([, name]) => name).join(', ')}: ${stamps.join('; ')}${backends.length ? `; codeblob backend ${backends.join(' + ')}` : ''}.`, '');
  const missed = targets.filter((t) => !t.met);
  out.push(
    (targets.length === 0
      ? 'No target was measured in these runs. '
      : `Targets (issues 5 and 7): ${targets.length - missed.length} of ${targets.length} met${missed.length ? `; missed: ${missed.map((t) => `${t.what} (${t.where}): ${t.shown}, wanted ${t.want}`).join('; ')}` : ''}. `) +
      'Every table, chart and target, on every Node measured, and where codeblob does not win: [docs/benchmarks.md](docs/benchmarks.md).',
  );
  return out.join('\n');
}
