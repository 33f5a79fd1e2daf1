// README section for bench/containers.mjs (issue 15): worker pools in real containers, and the
// memory model of a node (N pods × M workers) made from the one-pod figures, checked against the
// measured two-pod point. Also the data of the chart (charts.mjs).
import { readResults, stamp } from '../lib.mjs';

const MiB = 1024 * 1024;
const mib = (b) => (b == null || !Number.isFinite(b) ? '-' : (b / MiB).toFixed(1));
const gib = (b) => (b / 1024 ** 3).toFixed(2);
const r2 = (x) => (x == null || !Number.isFinite(x) ? '-' : x.toFixed(2));
const pct = (x) => (Math.abs(x) < 0.0005 ? '0.0%' : `${x > 0 ? '+' : ''}${(100 * x).toFixed(1)}%`);

/** The pods and workers the model table shows. */
export const MODEL_PODS = [1, 2, 8, 32];
export const MODEL_WORKERS = [4, 8];

/** Node memory for n pods of m workers: private per worker and per pod, shared pages and page cache once. */
export function model(row, n, m) {
  return n * (m * row.perWorker.uss + row.perPod.primaryUss) + row.shared + row.pageCache;
}

/** Every complete run (not skipped, every competitor measured). */
export function results(outDir) {
  return readResults(outDir, 'containers').filter((x) => !x.notRun && x.rows?.every((r) => r.perWorker.uss != null));
}

/** The targets of issue 15, per run: { what, where, value, limit, met, shown, want }. */
export function targets(outDir) {
  const out = [];
  for (const x of results(outDir)) {
    const where = `Node ${x.header.node}, reference corpus, two pods of ${x.workers} workers, ${x.header.date.slice(0, 10)}`;
    const cb = x.rows.find((r) => r.name === 'codeblob');
    const plain = x.rows.find((r) => r.name === 'plain require');
    const check = (what, value, limit) => out.push({ what, where, value, limit, met: value != null && value <= limit, shown: r2(value), want: `≤ ${r2(limit)}` });
    check('blob in the page cache for both pods, vs the file\'s size (one file on the node)', cb.blobFiles === 1 ? cb.blobPageCacheTwo / x.blob.size : null, 1.05);
    check(`PSS of the ${2 * x.workers} workers, vs plain require`, cb.twoPods.workersPss / plain.twoPods.workersPss, 0.6);
  }
  return out;
}

export function markdown(outDir) {
  const lines = [];
  const checked = targets(outDir);
  if (checked.length) {
    lines.push('**Targets in containers** (issue 15), checked by the generator against the figures below:', '');
    lines.push('| target | where | measured | wanted | |', '|---|---|---|---|---|');
    for (const t of checked) lines.push(`| ${t.what} | ${t.where} | ${t.shown} | ${t.want} | ${t.met ? 'met' : '**missed**'} |`);
    lines.push('');
  }
  for (const x of readResults(outDir, 'containers').filter((r) => r.notRun)) {
    lines.push(`**Containers, Node ${x.header.node}**: not measured (${x.notRun}).`, '');
  }
  for (const x of results(outDir)) {
    const M = x.workers;
    const plain = x.rows.find((r) => r.name === 'plain require');
    const cb = x.rows.find((r) => r.name === 'codeblob');
    lines.push(`**Containers: pools of ${M} workers in pods of one image, reference corpus, Node ${x.header.node}** (${stamp(x.header)}; podman + runc, the recipe of [docs/containers.md](docs/containers.md) as it is; medians of ${x.rounds} rounds, competitors interleaved; memory measured from the host after load and a memory-reducing full GC in each worker (on Node 20 V8's low-memory notification, through its inspector), as when idle: \`GC_AFTER_LOAD=1\`)`, '');
    lines.push(`One pod: what the model is made of. Private memory per worker and per pod (the primary) is USS; pages the pod's processes map together (the Node binary, libraries) count once per node (PSS − USS); so does the page cache no process keeps mapped: the modules' files that \`require\` reads (${mib(x.moduleFiles)} MiB), plus the compile cache's files, or with codeblob the blob's pages the workers touched (of its ${mib(x.blob.size)} MiB):`, '');
    lines.push('| | worker USS MiB | worker PSS MiB | primary USS MiB | shared once MiB | page cache once MiB | worker load ms | worker USS ratio |', '|---|---|---|---|---|---|---|---|');
    for (const r of x.rows) {
      lines.push(`| ${r.name} | ${mib(r.perWorker.uss)} | ${mib(r.perWorker.pss)} | ${mib(r.perPod.primaryUss)} | ${mib(r.shared)} | ${mib(r.pageCache)} | ${r.loadMs.median.toFixed(0)} | ${r2(r.perWorker.uss / plain.perWorker.uss)} |`);
    }
    lines.push('', `Model: N pods × M workers cost N × (M × worker USS + primary USS) + shared once + page cache once. Node memory in GiB:`, '');
    lines.push(`| pods × workers | ${x.rows.map((r) => r.name).join(' | ')} | codeblob / plain |`, `|---|${x.rows.map(() => '---|').join('')}---|`);
    for (const m of MODEL_WORKERS) {
      for (const n of MODEL_PODS) {
        lines.push(`| ${n} × ${m} | ${x.rows.map((r) => gib(model(r, n, m))).join(' | ')} | ${r2(model(cb, n, m) / model(plain, n, m))} |`);
      }
    }
    lines.push('', `Checked against two pods of ${M} workers measured together (the same image, started one after the other): PSS summed over every process of both pods against the model's private and shared parts (the page cache no process maps is not in PSS):`, '');
    lines.push(`| | model MiB | measured MiB | model error | ${2 * M} workers' PSS MiB | workers' PSS ratio | page cache charged to pod 1 / pod 2 MiB | kubelet working sets, summed MiB |`, '|---|---|---|---|---|---|---|---|');
    for (const r of x.rows) {
      const t = r.twoPods;
      lines.push(`| ${r.name} | ${mib(t.modelPss)} | ${mib(t.measuredPss)} | ${pct(t.modelPss / t.measuredPss - 1)} | ${mib(t.workersPss)} | ${r2(t.workersPss / plain.twoPods.workersPss)} | ${t.chargedPageCache.map(mib).join(' / ')} | ${mib(t.kubeletWorkingSets)} |`);
    }
    lines.push(
      '',
      `The blob: ${cb.blobFiles} file on the node for both pods (the image layer's), ${mib(cb.blobPageCacheTwo)} MiB of its ${mib(x.blob.size)} MiB in the page cache (${r2(cb.blobPageCacheTwo / x.blob.size)}× the file). Every worker of every competitor gave the same answers: ${x.distinctAnswers === 1 ? 'yes' : `no (${x.distinctAnswers} distinct)`}. The page cache a pod brings in is charged to it, not to the pods after it (see docs/containers.md).`,
      '',
    );
    if (x.layerCheck) {
      const l = x.layerCheck;
      lines.push(`Rolling updates: rebuilt after a change to \`probe.cjs\` (a file the blob does not hold, copied before the pack), the pack ran again and wrote ${l.blobBytesSame ? 'the same bytes' : '**different bytes**'}; the new image ${l.blobLayerSame && l.sameBelowBlob ? 'kept the blob\'s layer and every layer below it' : '**did not keep the blob\'s layer**'} (${l.changed} of its ${l.layers} layers changed; rebuild ${l.rebuildSeconds.toFixed(0)} s with the build cache).`, '');
    }
    for (const s of x.skipped ?? []) lines.push(`Not measured: ${s.name}: ${s.reason}.`, '');
    for (const r of x.rows) for (const f of r.failures) lines.push(`Failed: ${r.name}, ${f}.`, '');
    lines.push(`![node memory against pods, Node ${x.header.node}](docs/bench/containers-${x.header.node}.svg)`, '');
  }
  return lines.join('\n');
}
