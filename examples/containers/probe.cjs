'use strict';
// Startup probe: succeeds once every worker of the pool has loaded the app, and, when the pod
// asks for codeblob (CODEBLOB_FILE is set), only if every worker loaded it from the blob. A pod
// whose workers silently fell back to reading from disk (another Node, other V8 flags, a missing
// addon, a refused file) would run, but with none of the memory it was sized for: fail instead.
const { readFileSync } = require('node:fs');

function check() {
  let s;
  try {
    s = JSON.parse(readFileSync(process.env.POOL_STATUS_FILE || '/tmp/pool-status.json', 'utf8'));
  } catch (error) {
    return `no pool status yet (${error.code || error.message})`;
  }
  if (s.ready.length < s.workers) return `${s.ready.length} of ${s.workers} workers ready`;
  if (!s.codeblobWanted) return null;
  for (const r of s.ready) {
    if (!r.codeblob || !r.codeblob.enabled) return `worker ${r.pid}: codeblob is off (${r.codeblob ? r.codeblob.reason : 'not preloaded'})`;
    if (r.codeblob.backend !== 'mmap') return `worker ${r.pid}: codeblob reads the blob into private memory (backend ${r.codeblob.backend}), nothing is shared`;
    if (r.codeblob.counters.hits === 0) return `worker ${r.pid}: nothing was loaded from the blob (${JSON.stringify(r.codeblob.counters)})`;
  }
  return null;
}

const problem = check();
if (problem) {
  console.error(`startup probe: ${problem}`);
  process.exit(1);
}
console.log('startup probe: ok');
