// Preloaded (--require) into every sample of bench/typescript.mjs, plain or not: once the app is
// ready (a server listens; an app that ends, at beforeExit) it runs a full GC and reports its
// load time (performance.now(), from process start), anonymous memory and USS from
// /proc/self/smaps_rollup, and whether Node's stripper (amaro) was loaded. A cluster worker sends
// the report to the primary and waits; a single process writes it to PROBE_OUT and exits.
'use strict';
const fs = require('node:fs');
const net = require('node:net');

let done = false;
function report() {
  if (done) return;
  done = true;
  const ready = performance.now();
  require('node:v8').setFlagsFromString('--expose-gc');
  const gc = require('node:vm').runInNewContext('gc');
  gc();
  gc();
  const rollup = fs.readFileSync('/proc/self/smaps_rollup', 'utf8');
  const kib = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? 0);
  const r = {
    pid: process.pid,
    readyMs: ready,
    anonMiB: kib('Anonymous') / 1024,
    ussMiB: (kib('Private_Clean') + kib('Private_Dirty')) / 1024,
    rssMiB: kib('Rss') / 1024,
    amaro: process.moduleLoadList.some((m) => m.includes('amaro')),
  };
  if (process.send) process.send({ probe: r });
  else {
    fs.writeFileSync(process.env.PROBE_OUT, JSON.stringify(r));
    process.exit(0);
  }
}

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function probedListen(...args) {
  this.once('listening', () => setImmediate(report));
  return listen.apply(this, args);
};
process.once('beforeExit', report);
