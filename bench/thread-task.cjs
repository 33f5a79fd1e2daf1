'use strict';
// A piscina task for bench/pools.mjs: load the corpus in this thread (with Node's compile cache
// when BENCH_COMPILE_CACHE names its directory), then a full GC. With {settle: true}: a
// memory-reducing full GC (bench/settle.cjs).
module.exports = ({ settle } = {}) => {
  if (settle) {
    const youngBytes = require('./settle.cjs')(require('vm').runInNewContext('gc'));
    return { youngBytes, threadId: require('worker_threads').threadId };
  }
  const Module = require('module');
  const dir = process.env.BENCH_COMPILE_CACHE;
  if (dir && typeof Module.enableCompileCache === 'function') Module.enableCompileCache(dir);
  const compileCache = typeof Module.getCompileCacheDir === 'function' && Module.getCompileCacheDir() !== undefined;
  const t0 = performance.now();
  require(process.env.BENCH_ENTRY);
  const loadMs = performance.now() - t0;
  require('v8').setFlagsFromString('--expose-gc');
  require('vm').runInNewContext('gc')();
  const state = globalThis[Symbol.for('codeblob.loader.status')];
  return { loadMs, compileCache, codeblob: Boolean(state && state.enabled && state.counters.hits > 0), backend: state?.backend ?? null, threadId: require('worker_threads').threadId };
};
