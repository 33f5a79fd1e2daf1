#!/usr/bin/env node
// SVG charts of the benchmark results in .bench-out/, drawn with Vega-Lite (rendered to SVG by
// Vega, no browser): per Node version, memory against the number of workers for every
// competitor (child processes: total USS; piscina threads: whole-process USS) and startup per
// competitor (corpus load time, median with min-max). Written to docs/bench/.
// Usage: node bench/charts.mjs   (after bench/load-memory.mjs and bench/pools.mjs)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import { MiB, outDir, readResults, repo } from './lib.mjs';
import { MODEL_PODS, model, results as containerResults } from './sections/containers.mjs';

const chartDir = join(repo, 'docs/bench');

async function svg(spec) {
  const { spec: compiled } = vegaLite.compile({ $schema: 'https://vega.github.io/schema/vega-lite/v6.json', background: 'white', ...spec });
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  return view.toSVG();
}

const colour = { field: 'competitor', type: 'nominal', title: null, legend: { orient: 'bottom', columns: 3 } };

/** Lines of `y` MiB against N, one per competitor. */
function memorySpec(title, points, yTitle) {
  return {
    title,
    width: 420,
    height: 260,
    data: { values: points },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'n', type: 'quantitative', title: 'N', scale: { domain: [0, Math.max(...points.map((p) => p.n))] }, axis: { tickMinStep: 1 } },
      y: { field: 'mib', type: 'quantitative', title: yTitle },
      color: colour,
    },
  };
}

function startupSpec(title, rows) {
  return {
    title,
    width: 420,
    height: 30 * rows.length,
    data: { values: rows },
    encoding: { y: { field: 'competitor', type: 'nominal', title: null, sort: null } },
    layer: [
      { mark: { type: 'bar', height: 16 }, encoding: { x: { field: 'median', type: 'quantitative', title: 'corpus load, ms (median; line: min to max)' }, color: { ...colour, legend: null } } },
      { mark: { type: 'rule', color: 'black' }, encoding: { x: { field: 'min', type: 'quantitative' }, x2: { field: 'max' } } },
      { mark: { type: 'text', align: 'left', dx: 4, dy: -10 }, encoding: { x: { field: 'max', type: 'quantitative' }, text: { field: 'label' } } },
    ],
  };
}

export async function drawCharts() {
  mkdirSync(chartDir, { recursive: true });
  const written = [];
  for (const x of readResults(outDir, 'load-memory')) {
    const v = x.header.node;
    const points = x.rows.flatMap((r) => r.memory.map((c) => ({ competitor: r.name, n: c.n, mib: c.total.uss / MiB })));
    const plain = x.rows.find((r) => r.name === 'plain require')?.startup.load?.median;
    const startup = x.rows.filter((r) => r.startup.load).map((r) => ({
      competitor: r.name, min: r.startup.load.min, median: r.startup.load.median, max: r.startup.load.max,
      label: plain ? `${(r.startup.load.median / plain).toFixed(2)}×` : '',
    }));
    const memFile = join(chartDir, `memory-processes-${v}.svg`);
    writeFileSync(memFile, await svg(memorySpec(`Reference corpus, N child processes, Node ${v}: total USS after load + GC`, points, 'total USS of the N children, MiB')));
    const startFile = join(chartDir, `startup-${v}.svg`);
    writeFileSync(startFile, await svg(startupSpec(`Reference corpus load, one fresh process per sample, Node ${v}`, startup)));
    written.push(memFile, startFile);
  }
  for (const x of readResults(outDir, 'pools')) {
    const v = x.header.node;
    const points = x.rows.flatMap((r) => r.threads.map((t) => ({ competitor: r.name, n: t.n, mib: t.uss / MiB })));
    const file = join(chartDir, `memory-threads-${v}.svg`);
    writeFileSync(file, await svg(memorySpec(`Reference corpus, piscina pool of N threads, Node ${v}: whole-process USS`, points, 'USS of the process, MiB')));
    written.push(file);
  }
  for (const x of containerResults(outDir)) {
    const v = x.header.node;
    const pods = Array.from({ length: Math.max(...MODEL_PODS) }, (_, i) => i + 1);
    const points = x.rows.flatMap((r) => pods.map((n) => ({ competitor: r.name, n, mib: model(r, n, x.workers) / MiB })));
    const file = join(chartDir, `containers-${v}.svg`);
    writeFileSync(file, await svg(memorySpec(`Node memory model, N pods × ${x.workers} workers (reference corpus), Node ${v}`, points, 'node memory for the pods, MiB')));
    written.push(file);
  }
  return written;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const f of await drawCharts()) console.log(`chart: ${f}`);
}
