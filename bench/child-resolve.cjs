'use strict';
// One sample for bench/resolve.mjs: load BENCH_ENTRY with Module._resolveFilename wrapped
// outermost (installed after codeblob/register, so it times the blob's table too), then print
// the load time, the time spent resolving, the number of resolutions, the loader's counters and
// how much of the blob is resident in this process after startup.
const Module = require('module');
const { readFileSync } = require('fs');
const original = Module._resolveFilename;
let resolveMs = 0;
let calls = 0;
let depth = 0;
Module._resolveFilename = function timedResolveFilename(...args) {
  if (depth++ > 0) {
    try {
      return original.apply(this, args);
    } finally {
      depth--;
    }
  }
  const t = performance.now();
  try {
    return original.apply(this, args);
  } finally {
    resolveMs += performance.now() - t;
    calls++;
    depth--;
  }
};
const t0 = performance.now();
require(process.env.BENCH_ENTRY);
const loadMs = performance.now() - t0;
Module._resolveFilename = original;

setImmediate(() => {
  // After the loader's end-of-burst page release, as a worker would be once started.
  let blobResident = 0;
  const blob = process.env.CODEBLOB_FILE;
  if (blob) {
    let inBlob = false;
    for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
      const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
      if (header) inBlob = header[1] === blob;
      else if (inBlob && line.startsWith('Rss:')) blobResident += Number(line.split(/\s+/)[1]) * 1024;
    }
  }
  const state = globalThis[Symbol.for('codeblob.loader.status')];
  const counters = state && state.enabled ? state.counters : null;
  // The store's own counter (status() would refresh it, but is not reachable without a require).
  const store = state && state[Symbol.for('codeblob.loader.store')];
  if (counters && store && !store.closed) counters.verifiedAhead = store.counters().verifiedAhead;
  process.stdout.write(JSON.stringify({ loadMs, resolveMs, calls, counters, resolve: state?.resolve ?? null, backend: state?.backend ?? null, blobResident }) + '\n');
});
