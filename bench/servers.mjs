#!/usr/bin/env node
// Real servers as users run them (issues 18 and 19): the Fastify corpus (plugins, schema
// validation, pino logging through a worker-thread transport) and the Next.js 16 standalone
// server, each packed with a training script and run as a cluster whose primary calls
// preloadPrimary exactly as the README shows, plain and with codeblob, side by side, rounds
// interleaved. Both get the same requests on fresh connections; every answer is compared byte for
// byte with the first plain run's (only the Date header and x-served-by, the answering worker's
// pid, are masked). Reported: per-worker USS/PSS/anonymous after the requests, after a full GC
// and settled (bench/servers/gc-probe.cjs, preloaded in both modes), the primary's USS, total PSS, time from fork until all workers listen and until all have answered a request,
// and every thread's loader status (CODEBLOB_STATUS_FILE=dir/%p-%t.json; misses named through
// NODE_DEBUG=codeblob), main threads and pino's transport thread alike.
// Then the build-pipeline case of issue 19: the packed tree, blob included, copied with `cp -r`
// (new mtimes) and with `cp -a` (times kept), run from the copy with the default check and
// with hash checks (preloadPrimary's verify: 'hash'), answers compared with a plain run of the same copy.
// Runs under --node (re-executing itself there). JSON: .bench-out/servers/servers-<node>.json.
// Usage: node bench/servers.mjs [--node <bin>] [--servers fastify,nextjs] [--workers 4] [--rounds 2] [--no-copy] [--quick]
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { measure } from '../dist/index.js';
import { header, mib, outDir, printHeader, printTable, ratioText as ratio, runUnder, stats } from './lib.mjs';
import { MASKED_HEADERS, SERVERS, compareResponses, copyTree, deployServer, packServer, requestsOf, runCluster, threadReport } from './servers/lib.mjs';

const { values } = parseArgs({
  options: {
    node: { type: 'string', default: process.execPath },
    servers: { type: 'string', default: 'fastify,nextjs' },
    workers: { type: 'string' },
    rounds: { type: 'string' },
    copy: { type: 'boolean', default: true },
    'no-copy': { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
  },
});
runUnder(values.node, import.meta.url);
const node = process.execPath;
const W = Number(values.workers ?? 4);
const rounds = Number(values.rounds ?? (values.quick ? 1 : 2));
const names = values.servers.split(',');
const h = header(node);
const out = join(outDir, 'servers');
mkdirSync(out, { recursive: true });
// Outside this repository: Node's module lookup from anywhere under it reaches its node_modules.
const scratch = mkdtempSync(join(tmpdir(), `codeblob-servers-${h.node}-`));
printHeader(h, 'mmap');
// Times here are whole-cluster startups on a machine others may share: the load says how busy it was.
const loadAtStart = loadavg();
console.log(`# load average at start ${loadAtStart.map((x) => x.toFixed(2)).join(' ')}`);
console.log(`# servers: ${names.join(', ')}; cluster of ${W} workers; ${rounds} round(s) per mode, interleaved; masked headers: ${MASKED_HEADERS.join(', ')}`);

const med = (list) => (list.length ? stats(list).median : null);
const sum = (list) => list.reduce((s, x) => s + x, 0);

/** Loader counters summed by role (worker main / worker thread) over a run's status files. */
function byRole(statuses) {
  const roles = {};
  for (const s of threadReport(statuses)) {
    const r = (roles[s.role] ??= { threads: 0, enabled: 0, hits: 0, jsonHits: 0, esmHits: 0, misses: 0, stale: 0, timeOnly: 0, deferred: 0, cacheRejected: 0, resolveHits: 0, resolveMisses: 0, resolveStale: 0, resolveTimeOnly: 0 });
    r.threads++;
    if (s.enabled) r.enabled++;
    for (const k of Object.keys(r)) if (k !== 'threads' && k !== 'enabled') r[k] += s[k];
  }
  return roles;
}

const results = [];
for (const name of names) {
  const server = SERVERS[name];
  let t = performance.now();
  server.install();
  const installMs = performance.now() - t;
  const app = deployServer(name, join(scratch, `${name}-app`));
  const requests = requestsOf(server.requests);
  // The blob sits inside the tree it was packed from (its recorded root is then '.'), as a
  // build step that packs before the image is made would leave it.
  const blob = join(app.appDir, 'app.blob');
  t = performance.now();
  const packed = await packServer(node, app, server.requests, blob, { logDir: join(scratch, `${name}-pack-logs`) });
  const packMs = performance.now() - t;
  console.log(`\n## ${name}: ${packed.entries} modules packed into ${mib(packed.fileSize)} MiB in ${(packMs / 1000).toFixed(1)} s (install/build ${(installMs / 1000).toFixed(1)} s)`);
  for (const w of packed.warnings) console.log(`#   pack warning: ${w}`);

  const runs = [];
  const failures = [];
  for (let r = 0; r < rounds; r++) {
    for (const mode of r % 2 ? ['codeblob', 'plain'] : ['plain', 'codeblob']) {
      const tag = `${name}-${mode}-${r}`;
      try {
        runs.push(await runCluster({
          node, app, requests, workers: W, passes: 2, measure,
          blob: mode === 'codeblob' ? blob : undefined,
          statusDir: join(scratch, `${tag}-status`), logDir: join(scratch, `${tag}-logs`),
        }));
      } catch (error) {
        failures.push(`${mode}, round ${r + 1}: ${error.message.split('\n').slice(0, 8).join(' | ')}`);
      }
    }
  }
  const diffs = runs.length ? compareResponses(requests, runs) : [];
  const summary = ['plain', 'codeblob'].map((mode) => {
    const mine = runs.filter((x) => x.mode === mode);
    const per = mine.flatMap((x) => x.memory.workers);
    return {
      mode,
      runs: mine.length,
      ussPerWorker: med(per.map((m) => m.uss)),
      pssPerWorker: med(per.map((m) => m.pss)),
      anonPerWorker: med(per.map((m) => m.anon)),
      threadsPerWorker: med(per.map((m) => m.threads)),
      gc: { uss: med(mine.flatMap((x) => x.memory.gc.map((m) => m.uss))), pss: med(mine.flatMap((x) => x.memory.gc.map((m) => m.pss))) },
      settled: { uss: med(mine.flatMap((x) => x.memory.settle.map((m) => m.uss))), pss: med(mine.flatMap((x) => x.memory.settle.map((m) => m.pss))) },
      totalPssSettled: med(mine.map((x) => sum(x.memory.settle.map((m) => m.pss)) + x.memory.primary.pss)),
      primaryUss: med(mine.map((x) => x.memory.primary.uss)),
      totalPss: med(mine.map((x) => sum(x.memory.workers.map((m) => m.pss)) + x.memory.primary.pss)),
      listening: mine.length ? stats(mine.map((x) => x.listeningMs)) : null,
      serving: mine.length ? stats(mine.map((x) => x.servingMs)) : null,
      preloadMs: med(mine.map((x) => x.preloadMs)),
    };
  });
  const [plain, cb] = summary;
  const last = runs.filter((x) => x.mode === 'codeblob').at(-1);
  console.log(`\n${W}-worker cluster, medians over ${rounds} round(s); memory after ${requests.length * 2} compared requests (plus the warm-up that reached every worker), then after a full GC of each worker's main isolate, then settled (a memory-reducing GC; Node 20: a full GC)`);
  printTable(
    ['', 'plain', 'codeblob', 'ratio'],
    [
      ['USS per worker MiB', mib(plain.ussPerWorker ?? 0), mib(cb.ussPerWorker ?? 0), ratio(cb.ussPerWorker, plain.ussPerWorker)],
      ['PSS per worker MiB', mib(plain.pssPerWorker ?? 0), mib(cb.pssPerWorker ?? 0), ratio(cb.pssPerWorker, plain.pssPerWorker)],
      ['anonymous per worker MiB', mib(plain.anonPerWorker ?? 0), mib(cb.anonPerWorker ?? 0), ratio(cb.anonPerWorker, plain.anonPerWorker)],
      ['USS per worker after a full GC MiB', mib(plain.gc.uss ?? 0), mib(cb.gc.uss ?? 0), ratio(cb.gc.uss, plain.gc.uss)],
      ['USS per worker settled MiB', mib(plain.settled.uss ?? 0), mib(cb.settled.uss ?? 0), ratio(cb.settled.uss, plain.settled.uss)],
      ['PSS per worker settled MiB', mib(plain.settled.pss ?? 0), mib(cb.settled.pss ?? 0), ratio(cb.settled.pss, plain.settled.pss)],
      ['primary USS MiB', mib(plain.primaryUss ?? 0), mib(cb.primaryUss ?? 0), ratio(cb.primaryUss, plain.primaryUss)],
      [`total PSS, primary + ${W} workers MiB`, mib(plain.totalPss ?? 0), mib(cb.totalPss ?? 0), ratio(cb.totalPss, plain.totalPss)],
      [`total PSS settled, primary + ${W} workers MiB`, mib(plain.totalPssSettled ?? 0), mib(cb.totalPssSettled ?? 0), ratio(cb.totalPssSettled, plain.totalPssSettled)],
      ['threads per worker', plain.threadsPerWorker ?? '-', cb.threadsPerWorker ?? '-', ''],
      ['all listening ms (median)', plain.listening?.median.toFixed(0) ?? '-', cb.listening?.median.toFixed(0) ?? '-', ratio(cb.listening?.median, plain.listening?.median)],
      ['all serving ms (median)', plain.serving?.median.toFixed(0) ?? '-', cb.serving?.median.toFixed(0) ?? '-', ratio(cb.serving?.median, plain.serving?.median)],
      ['preloadPrimary ms', '-', cb.preloadMs?.toFixed(0) ?? '-', ''],
      ['answers identical', '', diffs.length === 0 && runs.length ? `yes (${runs.reduce((s, x) => s + x.responses.length, 0)} answers, ${runs.length} clusters)` : `NO: ${diffs.length} differ`, ''],
    ],
  );
  for (const d of diffs.slice(0, 10)) console.log(`#   differs: ${d.mode} pass ${d.pass} ${d.request}: status ${d.status.join(' vs ')}, body ${d.bodyEqual ? 'same' : 'differs'}, headers ${JSON.stringify(d.headers).slice(0, 300)}`);
  if (last) {
    console.log(`\nLoader status per thread (last codeblob cluster; NODE_DEBUG=codeblob names what came from disk)`);
    printTable(
      ['pid', 'thread', 'role', 'on', 'cjs hits', 'json', 'esm', 'misses', 'stale', 'resolve hits', 'resolve misses', 'resolve stale'],
      threadReport(last.statuses).map((s) => [s.pid, s.threadId, s.role, s.enabled ? 'yes' : 'no', s.hits, s.jsonHits, s.esmHits, s.misses, s.stale, s.resolveHits, s.resolveMisses, s.resolveStale]),
    );
    const named = [...new Set(Object.values(last.debug).flatMap((d) => [...d.missed, ...d.stale]))];
    if (named.length) console.log(`# from disk (${named.length} distinct files), e.g.: ${named.slice(0, 6).map((f) => f.slice(app.appDir.length + 1)).join(', ')}`);
  }

  // Issue 19: the packed tree, blob included, copied as a pipeline copies it.
  const copies = [];
  if (values.copy && !values['no-copy']) {
    for (const scenario of [
      { name: 'cp -r (new mtimes), default check', preserve: false, env: {} },
      { name: 'cp -r (new mtimes), verify: hash', preserve: false, env: { PRIMARY_VERIFY: 'hash' } },
      { name: 'cp -a (times kept), default check', preserve: true, env: {} },
      { name: 'cp -a, then the packed tree removed', preserve: true, env: {}, hideOriginal: true },
    ]) {
      const tag = `${name}-copy-${copies.length}`;
      const copyDir = copyTree(app.appDir, join(scratch, tag), scenario.preserve);
      const copied = { ...app, appDir: copyDir };
      // The packed tree out of the way, as when the build stage that packed it is gone.
      const hidden = `${app.appDir}-hidden`;
      if (scenario.hideOriginal) renameSync(app.appDir, hidden);
      try {
        const fromCopy = await runCluster({ node, app: copied, requests, workers: W, blob: join(copyDir, 'app.blob'), measure, extraEnv: scenario.env, statusDir: join(scratch, `${tag}-status`), logDir: join(scratch, `${tag}-logs`) });
        const plainCopy = await runCluster({ node, app: copied, requests, workers: W, measure, logDir: join(scratch, `${tag}-plain-logs`) });
        const copyDiffs = compareResponses(requests, [plainCopy, fromCopy]);
        copies.push({ scenario: scenario.name, roles: byRole(fromCopy.statuses), threads: threadReport(fromCopy.statuses), identical: copyDiffs.length === 0, diffs: copyDiffs, servingMs: fromCopy.servingMs, plainServingMs: plainCopy.servingMs, ussPerWorker: med(fromCopy.memory.workers.map((m) => m.uss)), plainUssPerWorker: med(plainCopy.memory.workers.map((m) => m.uss)), codeblobLines: fromCopy.stderr.split('\n').filter((l) => /codeblob/i.test(l) && !l.startsWith('CODEBLOB ')) });
      } catch (error) {
        copies.push({ scenario: scenario.name, error: error.message.split('\n').slice(0, 8).join(' | ') });
      } finally {
        if (scenario.hideOriginal) renameSync(hidden, app.appDir);
        rmSync(copyDir, { recursive: true, force: true });
      }
    }
    console.log(`\nAfter packing, the tree (blob included) copied and run from the copy (codeblob, ${W} workers): main threads' counters summed`);
    const main = (c) => c.roles['worker main'] ?? {};
    const before = byRole(last?.statuses ?? [])['worker main'] ?? {};
    printTable(
      ['copy', 'cjs hits', 'of them after a content check', 'misses', 'stale', 'resolve hits', 'of them rechecked', 'resolve stale', 'thread hits', 'thread misses', 'thread stale', 'all serving ms (plain)', 'answers identical'],
      [
        ['(the packed tree itself, last cluster above)', before.hits ?? '-', before.timeOnly ?? '-', before.misses ?? '-', before.stale ?? '-', before.resolveHits ?? '-', before.resolveTimeOnly ?? '-', before.resolveStale ?? '-', '', '', '', '', ''],
        ...copies.map((c) => (c.error ? [c.scenario, 'FAILED', '', '', '', '', '', '', '', '', '', '', 'NO'] : [
          c.scenario, main(c).hits ?? 0, main(c).timeOnly ?? 0, main(c).misses ?? 0, main(c).stale ?? 0,
          main(c).resolveHits ?? 0, main(c).resolveTimeOnly ?? 0, main(c).resolveStale ?? 0,
          c.roles['worker thread']?.hits ?? '-', c.roles['worker thread']?.misses ?? '-', c.roles['worker thread']?.stale ?? '-',
          `${c.servingMs.toFixed(0)} (${c.plainServingMs.toFixed(0)})`,
          c.identical ? 'yes' : 'NO',
        ])),
      ],
    );
    for (const c of copies) if (c.error) console.log(`#   ${c.scenario}: FAILED: ${c.error.slice(0, 600)}`);
    for (const c of copies) for (const l of c.codeblobLines ?? []) console.log(`#   ${c.scenario}: stderr: ${l}`);
  }
  for (const f of failures) console.log(`# FAILED ${name}: ${f}`);

  const statusRuns = runs.filter((x) => x.mode === 'codeblob');
  results.push({
    name, installMs, packMs, packed: { ...packed, entriesList: undefined }, workers: W, rounds, masked: MASKED_HEADERS,
    requests: requests.length, identical: diffs.length === 0 && runs.length > 0, diffs, summary, failures,
    threads: statusRuns.map((x) => ({ roles: byRole(x.statuses), perThread: threadReport(x.statuses), fromDisk: x.debug })),
    runs: runs.map(({ responses, stderr, statuses, debug, ...x }) => ({ ...x, answers: responses.length, exitsOk: x.exits.every((e) => e.signal === null) })),
    copies,
  });
}

const file = join(out, `servers-${h.node}.json`);
const loadAtEnd = loadavg();
console.log(`\n# load average at end ${loadAtEnd.map((x) => x.toFixed(2)).join(' ')}`);
writeFileSync(file, JSON.stringify({ header: h, load: { start: loadAtStart, end: loadAtEnd }, results }, null, 2));
rmSync(scratch, { recursive: true, force: true });
console.log(`\n# JSON: ${file}`);
if (results.some((r) => !r.identical || r.failures.length)) process.exitCode = 1;
