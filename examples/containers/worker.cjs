'use strict';
// One worker of the pool: loads the app (from the blob when the primary runs with
// --require codeblob/register and CODEBLOB_FILE), computes its answer, and reports to the
// primary what it loaded and from where. Then it serves (here: it waits) until stopped.
const t0 = performance.now();
const app = require(process.env.APP_ENTRY || './app.cjs');
const loadMs = performance.now() - t0;

let codeblob = null;
if (process.env.CODEBLOB_FILE) {
  // codeblob/register is already loaded (the preload): this only reads its status.
  const s = require('codeblob/register').status();
  const { hits, jsonHits, misses, stale, cacheRejected, corrupt } = s.counters;
  codeblob = { enabled: s.enabled, reason: s.reason, backend: s.backend, cachesUsable: s.cachesUsable, counters: { hits, jsonHits, misses, stale, cacheRejected, corrupt } };
}
const answer = typeof app.answer === 'function' ? app.answer() : null;

/**
 * For measuring: memory after load and a full, memory-reducing GC, the state V8's memory
 * reducer reaches by itself a few seconds after a worker goes idle, so that figures do not
 * depend on when they are taken. No V8 flag is given at startup: one that differs from the
 * packer's would make every code cache unusable.
 * - V8 12+ (Node 22+): the gc extension's "last resort" GC, the extension turned on only now.
 * - V8 11 (Node 20): that extension has no memory-reducing GC (a plain gc() keeps the young
 *   generation, up to 20 MiB, and whatever pages the last collections left half full), but
 *   V8's inspector does: HeapProfiler.collectGarbage is its low-memory notification. The
 *   session is closed on the next turn: closing it inside the callback hangs Node 20.
 * - Node built without the inspector: two regular full GCs.
 */
function settle(done) {
  const v8 = require('node:v8');
  if (Number(process.versions.v8.split('.')[0]) >= 12) {
    v8.setFlagsFromString('--expose-gc');
    require('node:vm').runInNewContext('gc')({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    return done();
  }
  let session;
  try {
    session = new (require('node:inspector').Session)();
    session.connect();
  } catch {
    v8.setFlagsFromString('--expose-gc');
    const gc = require('node:vm').runInNewContext('gc');
    gc();
    gc();
    return done();
  }
  session.post('HeapProfiler.collectGarbage', () => setImmediate(() => {
    session.disconnect();
    done();
  }));
}

const report = () => process.send({ pid: process.pid, loadMs: Math.round(loadMs), codeblob, answer });
if (process.env.GC_AFTER_LOAD === '1') settle(report);
else report();
// A real worker would listen here (cluster shares the port); this one just stays up.
setInterval(() => {}, 1 << 30);
