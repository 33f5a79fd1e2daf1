// The primary of bench/typescript.mjs's cluster sample: forks WORKERS workers running the app
// (APP) with the given preloads (EXEC_ARGV, JSON), waits for each worker's probe report (probe.cjs:
// after it listens and a full GC), prints them as one JSON line with the time until all were
// ready, and stops the workers.
import cluster from 'node:cluster';

const workers = Number(process.env.WORKERS);
cluster.setupPrimary({ exec: process.env.APP, execArgv: JSON.parse(process.env.EXEC_ARGV), silent: false });
const reports = [];
const started = performance.now();
for (let i = 0; i < workers; i++) {
  const w = cluster.fork();
  w.on('message', (m) => {
    if (!m?.probe) return;
    reports.push(m.probe);
    if (reports.length === workers) {
      console.log(JSON.stringify({ allReadyMs: performance.now() - started, workers: reports }));
      for (const x of Object.values(cluster.workers)) x.process.kill('SIGKILL');
      process.exit(0);
    }
  });
  w.on('exit', (code, signal) => {
    if (reports.length < workers) {
      console.error(`worker ${w.process.pid} ended before reporting (${code ?? signal})`);
      process.exit(1);
    }
  });
}
