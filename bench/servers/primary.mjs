// A cluster primary as the README shows it (codeblob/pool's preloadPrimary, then
// cluster.setupPrimary + cluster.fork), driven by bench/servers/lib.mjs over stdin/stdout.
//
//   node primary.mjs <server.js> <workers> [<app.blob>]
//
// The server's environment (PORT, ...) comes from this process's. Prints JSON lines:
//   {"event":"ready", forkAt, listeningAt, preloadMs, preload, primaryPid, workers: [pid...]}
//     once every worker emitted 'listening' (times are epoch ms, performance.timeOrigin based);
//   {"event":"collected", what} after "gc" or "settle" on stdin, once every worker has run a full
//     GC or a memory-reducing one (through bench/servers/gc-probe.cjs, see BENCH_GC_PROBE);
//   {"event":"stopped", exits: [{pid, code, signal}]} after "stop" on stdin: every worker got
//     SIGTERM (as a container stop or a cluster manager sends it) and exited.
// Workers' stdout and stderr go to this process's stderr. CODEBLOB_POOL_MODULE names
// codeblob/pool (dist/pool/index.js of this repository); PRIMARY_VERIFY, if set, is passed to
// preloadPrimary as its `verify` option. BENCH_GC_PROBE, if set, is a script the workers
// --require first (before codeblob's own preload), the harness's one addition to the README's
// primary: it runs a GC when asked, for measuring.
import cluster from 'node:cluster';

const [exec, count, blob] = process.argv.slice(2);
const now = () => performance.timeOrigin + performance.now();
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');

let preload;
let execArgv = [];
let env = {};
const t0 = now();
if (blob) {
  const { preloadPrimary } = await import(process.env.CODEBLOB_POOL_MODULE);
  // PRIMARY_VERIFY: the staleness check for the workers (preloadPrimary's `verify` option; the
  // workers' CODEBLOB_VERIFY is what preloadPrimary sets, whatever this process's environment says).
  preload = preloadPrimary(blob, process.env.PRIMARY_VERIFY ? { verify: process.env.PRIMARY_VERIFY } : undefined); // never throws: check preload.enabled
  execArgv = preload.execArgv;
  env = preload.env;
}
const preloadMs = now() - t0;

const probe = process.env.BENCH_GC_PROBE ? ['--require', process.env.BENCH_GC_PROBE] : [];
cluster.setupPrimary({ exec, execArgv: [...probe, ...execArgv], silent: true });
const forkAt = now();
const workers = Array.from({ length: Number(count) }, () => cluster.fork(env)); // setupPrimary has no env option
const exits = [];
for (const w of workers) {
  w.process.stdout.pipe(process.stderr, { end: false });
  w.process.stderr.pipe(process.stderr, { end: false });
}
let stopping = false;
const exited = workers.map((w) => new Promise((resolve) => w.process.once('exit', (code, signal) => {
  exits.push({ pid: w.process.pid, code, signal });
  if (!stopping) {
    process.stderr.write(`primary: worker ${w.process.pid} exited with ${code ?? signal} before stop\n`);
    process.exitCode = 1;
  }
  resolve();
})));

await Promise.race([
  Promise.all(workers.map((w) => new Promise((resolve) => w.once('listening', resolve)))),
  Promise.race(exited).then(() => { throw new Error('a worker exited before listening'); }),
]).catch((error) => {
  emit({ event: 'failed', message: error.message });
  for (const w of workers) w.process.kill('SIGKILL');
  process.exit(1);
});
emit({
  event: 'ready', forkAt, listeningAt: now(), preloadMs, primaryPid: process.pid,
  preload: preload ? { enabled: preload.enabled, reason: preload.reason } : undefined,
  workers: workers.map((w) => w.process.pid),
});

process.stdin.setEncoding('utf8');
process.stdin.on('data', async (text) => {
  for (const what of ['gc', 'settle']) {
    if (!text.startsWith(what)) continue;
    await Promise.all(workers.map((w) => new Promise((resolve) => {
      const onMessage = (m) => {
        if (m?.codeblobBench !== 'done') return;
        w.off('message', onMessage);
        resolve();
      };
      w.on('message', onMessage);
      w.send({ codeblobBench: what });
    })));
    emit({ event: 'collected', what });
    return;
  }
  if (!text.includes('stop') || stopping) return;
  stopping = true;
  for (const w of workers) w.process.kill('SIGTERM');
  await Promise.all(exited);
  preload?.close();
  emit({ event: 'stopped', exits });
  process.exit(0);
});
