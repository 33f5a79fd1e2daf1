'use strict';
// One sample of `bench/breakdown.mjs --thread`: a worker thread that loads one small module of its
// own (not in the blob), with codeblob on in it (BENCH_THREAD_BLOB set) or not. After a full GC
// in the thread, it reports the thread's V8 heap spaces (resident / used) and the process's
// anonymous memory, as one JSON line: what codeblob costs a thread that gets nothing from it
// (pino's transport thread in every Fastify worker is close to that).
const { Worker } = require('worker_threads');
const { readFileSync } = require('fs');
const blob = process.env.BENCH_THREAD_BLOB;
const body = `
  const { parentPort } = require('worker_threads');
  require('node:util');
  parentPort.postMessage('ready');
  parentPort.once('message', () => {
    const v8 = require('v8');
    v8.setFlagsFromString('--expose-gc');
    require('vm').runInNewContext('gc')();
    const spaces = {};
    for (const s of v8.getHeapSpaceStatistics()) spaces[s.space_name] = [s.physical_space_size, s.space_used_size];
    const hs = v8.getHeapStatistics();
    parentPort.postMessage({ spaces, physical: hs.total_physical_size, used: hs.used_heap_size });
    setImmediate(() => process.exit(0));
  });`;
const w = new Worker(body, {
  eval: true,
  execArgv: blob ? ['--require', process.env.BENCH_REGISTER] : [],
  env: blob ? { ...process.env, CODEBLOB_FILE: blob } : { ...process.env, CODEBLOB_FILE: '' },
});
// Past the end of codeblob's burst in the thread (two seconds after it went idle).
w.once('message', () => setTimeout(() => {
  w.postMessage('measure');
  w.once('message', (m) => {
    let anon = 0;
    let named = true;
    for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
      const h = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
      if (h) { named = h[1] !== ''; continue; }
      const p = /^(Private_Clean|Private_Dirty):\s+(\d+) kB/.exec(line);
      if (p && !named) anon += Number(p[2]) * 1024;
    }
    process.stdout.write(JSON.stringify({ thread: m, processAnon: anon }) + '\n');
  });
}, 3000));
