'use strict';
// The pool of one container (or pod): the primary checks the blob against the digest pinned in
// the pod spec (CODEBLOB_SHA256), starts WORKERS cluster workers with the preload
// `--require codeblob/register`, and writes what they report to POOL_STATUS_FILE for the startup
// probe (probe.cjs). Workers inherit the environment (CODEBLOB_FILE, CODEBLOB_VERIFY), so each
// one maps the same blob and loads the app from it. The primary loads nothing from the blob and
// runs without the preload.
const cluster = require('node:cluster');
const { renameSync, writeFileSync } = require('node:fs');
const os = require('node:os');
const { sha256File } = require('./blob-digest.cjs');

const workers = Number(process.env.WORKERS || os.availableParallelism());
const statusFile = process.env.POOL_STATUS_FILE || '/tmp/pool-status.json';
const blob = process.env.CODEBLOB_FILE;
const log = (event) => process.stdout.write(JSON.stringify(event) + '\n');

// An image is immutable, so the workers trust the blob (CODEBLOB_VERIFY=none): check once, here,
// that it is the generation the pod spec pins. A mismatch stops the pod before any worker runs it.
let digest = null;
if (blob) {
  digest = sha256File(blob);
  const pinned = process.env.CODEBLOB_SHA256;
  if (pinned && pinned !== digest) {
    log({ event: 'refused', reason: `blob ${blob} has SHA-256 ${digest}, the pod spec pins ${pinned}` });
    process.exit(1);
  }
}

const status = { workers, codeblobWanted: Boolean(blob), blob: blob ?? null, digest, ready: [] };
function writeStatus() {
  writeFileSync(statusFile + '.tmp', JSON.stringify(status));
  renameSync(statusFile + '.tmp', statusFile);
}
writeStatus();

let stopping = false;
cluster.setupPrimary({ exec: `${__dirname}/worker.cjs`, execArgv: [...process.execArgv, ...(blob ? ['--require', 'codeblob/register'] : [])] });
function start() {
  const w = cluster.fork();
  w.on('message', (report) => {
    status.ready.push(report);
    writeStatus();
    if (status.ready.length === workers) log({ event: 'ready', primary: process.pid, digest, workers: status.ready });
  });
  w.on('exit', (code, signal) => {
    status.ready = status.ready.filter((r) => r.pid !== w.process.pid);
    writeStatus();
    if (!stopping) {
      log({ event: 'worker-exit', pid: w.process.pid, code, signal });
      start();
    }
  });
}
for (let i = 0; i < workers; i++) start();

// PID 1 in a container gets no default SIGTERM handling: stop the workers, then exit.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    stopping = true;
    for (const w of Object.values(cluster.workers)) w.kill();
    setTimeout(() => process.exit(0), 2000).unref();
    cluster.on('exit', () => Object.keys(cluster.workers).length === 0 && process.exit(0));
  });
}
