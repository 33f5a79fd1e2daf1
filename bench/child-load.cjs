'use strict';
// One benchmark sample: load the corpus entry, report the load time, run a full GC without
// changing the V8 flags the caches were built with (gc is exposed only after loading), then
// wait until the parent has measured this process and closes stdin. When the parent writes a
// line ("settle") first: a memory-reducing full GC (bench/settle.cjs), then report again, for
// the parent to measure the settled process. On older V8 the young generation stays (reported,
// and left out of the published tables). An entry ending in .mjs is imported (the ES module
// loader, as `node entry.mjs` runs it), any other required.
const entry = process.env.BENCH_ENTRY;
const t0 = performance.now();
let loadMs;
if (entry.endsWith('.mjs')) {
  import(require('node:url').pathToFileURL(entry).href).then(() => {
    loadMs = performance.now() - t0;
    main();
  });
} else {
  require(entry);
  loadMs = performance.now() - t0;
  main();
}
// Read the loader's counters from its global record without loading anything (a plain run
// must not pay for codeblob's modules).
function report() {
  const state = globalThis[Symbol.for('codeblob.loader.status')];
  const store = state && state[Symbol.for('codeblob.loader.store')];
  const stats = store && !store.closed ? store.counters() : undefined;
  const counters = state && state.enabled ? { ...state.counters, stringsCopied: stats?.stringsCopied ?? 0, verifiedAhead: stats?.verifiedAhead ?? 0 } : null;
  return JSON.stringify({ loadMs, counters, backend: state?.backend ?? null }) + '\n';
}
function main() {
  if (process.argv[2] === '--exit') {
    process.stdout.write(report());
  } else {
    require('v8').setFlagsFromString('--expose-gc');
    const gc = require('vm').runInNewContext('gc');
    gc();
    gc();
    process.stdout.write(report());
    process.stdin.on('data', () => {
      process.stdout.write(JSON.stringify({ youngBytes: require('./settle.cjs')(gc) }) + '\n');
    });
    process.stdin.on('end', () => process.exit(0));
  }
}
