'use strict';
// The harness's one addition to every cluster worker (plain and codeblob alike), preloaded with
// --require before anything else, so it loads from disk in both modes and before codeblob's
// hooks: on an IPC message { codeblobBench: 'gc' } it runs two full GCs, on 'settle' a
// memory-reducing one (bench/settle.cjs), then answers { codeblobBench: 'done' }. The gc
// extension is exposed only when asked, after every module the measurement covers has loaded:
// a V8 flag set at startup would change the cache tag and make the worker reject every cache.
// Everything it needs is required now, before codeblob's hooks: a later require would be a miss.
const { isMainThread } = require('node:worker_threads');
const v8 = require('node:v8');
const vm = require('node:vm');
const settle = require('../settle.cjs');

if (isMainThread && typeof process.send === 'function') {
  process.on('message', (m) => {
    if (!m || (m.codeblobBench !== 'gc' && m.codeblobBench !== 'settle')) return;
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc');
    if (m.codeblobBench === 'gc') {
      gc();
      gc();
    } else {
      settle(gc);
    }
    process.send({ codeblobBench: 'done' });
  });
}
