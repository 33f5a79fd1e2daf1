'use strict';
// A piscina task for bench/pools.mjs: load the corpus in this thread, then a full GC.
module.exports = () => {
  const t0 = performance.now();
  require(process.env.BENCH_ENTRY);
  const loadMs = performance.now() - t0;
  require('v8').setFlagsFromString('--expose-gc');
  require('vm').runInNewContext('gc')();
  return { loadMs, threadId: require('worker_threads').threadId };
};
