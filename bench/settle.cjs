'use strict';
// Shared by bench/child-load.cjs and bench/thread-task.cjs: a memory-reducing full GC (V8's
// "last resort" collection, which gives back the young generation and free heap pages as V8's
// memory reducer does by itself a few seconds after an isolate goes idle; the gc extension
// offers it from V8 12, Node 22; older V8 gets a regular full GC). Returns the bytes the young
// generation still holds afterwards.
module.exports = function settle(gc) {
  // V8 before 12 takes the options object for something else and collects next to nothing.
  if (Number(process.versions.v8.split('.')[0]) >= 12) gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  else gc();
  return require('v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.physical_space_size ?? 0;
};
