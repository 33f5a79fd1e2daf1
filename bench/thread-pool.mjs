// One sample for bench/pools.mjs: a process with a piscina pool of N threads that each load the
// corpus; prints the whole process's memory once every thread has loaded (and collected its
// garbage), and the time from creating the pool until then. The codeblob variant gets its
// options from preloadOptions(), as an app would. Node's compile cache: BENCH_COMPILE_CACHE
// names its directory and each thread enables it (module.enableCompileCache), as an app's
// worker would; the sample reports whether it was on.
// Usage: node bench/thread-pool.mjs <threads> [blob]
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { measure } from '../dist/index.js';
import { preloadOptions } from '../dist/pool/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const [threadsText, blob] = process.argv.slice(2);
const threads = Number(threadsText);
const mod = createRequire(import.meta.url)('piscina');
const Piscina = mod.Piscina ?? mod;
const t0 = performance.now();
const opts = blob ? preloadOptions(blob, { inheritExecArgv: false }) : {};
const pool = new Piscina({ filename: join(here, 'thread-task.cjs'), minThreads: threads, maxThreads: threads, idleTimeout: 60_000, ...opts });
// One task per thread: each blocks its thread until loaded, so all N load at once.
const results = await Promise.all(Array.from({ length: threads }, () => pool.run({})));
const readyMs = performance.now() - t0;
const m = measure(process.pid);
// Then settled: every thread gives back V8's headroom (one task each, all at once).
const settled = await Promise.all(Array.from({ length: threads }, () => pool.run({ settle: true })));
const s = measure(process.pid);
console.log(JSON.stringify({
  settled: { uss: s.uss, pss: s.pss, anon: s.privateDirty, threads: new Set(settled.map((r) => r.threadId)).size, youngBytes: Math.max(...settled.map((r) => r.youngBytes)) },
  readyMs,
  threads: new Set(results.map((r) => r.threadId)).size,
  loadMs: results.map((r) => r.loadMs),
  compileCache: results.every((r) => r.compileCache),
  codeblob: results.every((r) => r.codeblob),
  backends: results.map((r) => r.backend),
  uss: m.uss,
  pss: m.pss,
  anon: m.privateDirty,
  blobRss: m.blobs[0]?.rss ?? 0,
  blobMappings: m.blobs.length,
}));
await pool.destroy();
