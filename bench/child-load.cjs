'use strict';
// One benchmark sample: load the corpus entry, report the load time, run a full GC without
// changing the V8 flags the caches were built with (gc is exposed only after loading), then
// wait until the parent has measured this process and closes stdin.
const entry = process.env.BENCH_ENTRY;
const t0 = performance.now();
require(entry);
const loadMs = performance.now() - t0;
require('v8').setFlagsFromString('--expose-gc');
const gc = require('vm').runInNewContext('gc');
gc();
gc();
// Read the loader's counters from its global record without loading anything (a plain run
// must not pay for codeblob's modules).
const state = globalThis[Symbol.for('codeblob.loader.status')];
const store = state && state[Symbol.for('codeblob.loader.store')];
const counters = state && state.enabled ? { ...state.counters, stringsCopied: store ? store.stats().stringsCopied : 0 } : null;
process.stdout.write(JSON.stringify({ loadMs, counters, backend: state?.backend ?? null }) + '\n');
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
