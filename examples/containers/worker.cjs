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
if (process.env.GC_AFTER_LOAD === '1') {
  // For measuring: memory after load and a full, memory-reducing GC (V8 12+, Node 22+), the
  // state V8's memory reducer reaches by itself a few seconds after a worker goes idle, so that
  // figures do not depend on when they are taken. Older V8 has no such GC: it ignores the
  // option, and its major GC with options left 5 MiB more per worker than a plain gc() here.
  // The flag is set only now: a V8 flag given at startup would differ from the packer's and
  // make every code cache unusable.
  require('node:v8').setFlagsFromString('--expose-gc');
  const gc = require('node:vm').runInNewContext('gc');
  if (Number(process.versions.v8.split('.')[0]) >= 12) gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  else {
    gc();
    gc();
  }
}
process.send({ pid: process.pid, loadMs: Math.round(loadMs), codeblob, answer });
// A real worker would listen here (cluster shares the port); this one just stays up.
setInterval(() => {}, 1 << 30);
