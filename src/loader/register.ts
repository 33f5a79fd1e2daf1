/**
 * `codeblob/register`: importing this module (`node --require codeblob/register` or
 * `--import codeblob/register`) switches loading from the blob named by CODEBLOB_FILE on, in
 * this thread. It never throws: when the blob is missing, foreign or corrupt, the app runs as if
 * codeblob were absent and `status().reason` says why (also printed with NODE_DEBUG=codeblob).
 *
 * Environment:
 *   CODEBLOB_FILE     the blob (required)
 *   CODEBLOB_VERIFY   stat (default) | hash | none — see freshness.ts
 *   CODEBLOB_BACKEND  auto (default) | mmap | read
 *   CODEBLOB_STATUS   1: print one status line to stderr at exit
 *   CODEBLOB_STATUS_FILE  write status() as JSON to this file at exit (%p: pid, %t: thread id)
 *   CODEBLOB_RESOLVE  0|off: resolve every require() with Node, not from the blob's table
 *   CODEBLOB_VERIFY_AHEAD  0|off: hash each section in the loading thread on first use, instead
 *                     of checking the startup range on a background thread (BlobStore.verifyAhead)
 *   CODEBLOB_ROOT     directory entry keys are relative to (default: the one recorded in the blob)
 *   CODEBLOB_PIN      set by preloadPrimary: the generation the primary verified (see BlobPin)
 *   CODEBLOB_ALLOW_UNSAFE  1: accept a blob others could write or swap (see safety.ts)
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { isMainThread, threadId } from 'node:worker_threads';
import { debuglog } from 'node:util';
import { open, type BlobPin } from '../store/store.js';
import { assertNoPolicy, installCjsHooks } from './cjs-hooks.js';
import { installEsmHooks } from './esm-hooks.js';
import { installResolveCache } from './resolve-cache.js';
import { startStatsAhead } from './serve.js';
import { parseFreshnessMode } from './freshness.js';
import { unsafeReason } from './safety.js';
import { attachStore, loaderState, status, statusLine } from './status.js';

export { status, statusLine, type LoaderStatus, type LoaderCounters } from './status.js';

const debug = debuglog('codeblob');

/** CODEBLOB_PIN is `dev:ino:size:ctimeNs:sha256`. */
function parsePin(text: string | undefined): BlobPin | undefined {
  if (!text) return undefined;
  const [dev, ino, size, ctimeNs, digest] = text.split(':');
  if (!dev || !ino || !size || !ctimeNs || !digest || !/^[0-9a-f]{64}$/.test(digest)) {
    throw new Error(`CODEBLOB_PIN is malformed: ${text}`);
  }
  return { dev: Number(dev), ino: Number(ino), size: Number(size), ctimeNs, digest };
}

function enableFromEnvironment(): void {
  const state = loaderState();
  if (state.enabled || state.attempted) return; // once per thread, whichever copy comes first
  state.attempted = true;
  const file = process.env.CODEBLOB_FILE;
  if (!file) {
    state.reason = 'CODEBLOB_FILE is not set';
    return;
  }
  const verify = parseFreshnessMode(process.env.CODEBLOB_VERIFY);
  if (!verify) {
    state.reason = `CODEBLOB_VERIFY=${process.env.CODEBLOB_VERIFY} is not one of stat, hash, none`;
    return;
  }
  state.verify = verify;
  try {
    assertNoPolicy();
    const root = process.env.CODEBLOB_ROOT;
    const store = open(resolve(file), root ? { root } : {});
    const unsafe = unsafeReason(resolve(file), store.file);
    if (unsafe) {
      store.close();
      throw new Error(`refused: ${unsafe} (set CODEBLOB_ALLOW_UNSAFE=1 to accept it)`);
    }
    const pinned = parsePin(process.env.CODEBLOB_PIN);
    if (pinned && !store.trustPin(pinned)) {
      store.close();
      throw new Error(`the blob is not the generation the primary verified (digest ${pinned.digest.slice(0, 12)}…)`);
    }
    attachStore(state, store);
    state.file = store.path;
    state.backend = store.backend;
    state.cachesUsable = store.cachesUsable;
    store.prefetchStartup();
    const ahead = process.env.CODEBLOB_VERIFY_AHEAD;
    if (ahead !== '0' && ahead !== 'off') {
      store.verifyAhead();
      startStatsAhead(store, state);
    }
    installCjsHooks(store, state, debug);
    const resolveReason = installResolveCache(store, state, debug);
    state.resolve = resolveReason ? 'disk' : 'blob';
    state.resolveReason = resolveReason;
    const esmReason = installEsmHooks(store, state, debug);
    state.esm = esmReason ? 'disk' : 'blob';
    state.esmReason = esmReason;
    state.enabled = true;
    const fallback = store.stats().fallbackReason;
    const notes = [
      fallback && `read backend: ${fallback}`,
      !store.cachesUsable && `code caches unusable here (${store.incompatibility}); sources still come from the blob`,
    ].filter(Boolean);
    state.reason = notes.length > 0 ? notes.join('; ') : undefined;
  } catch (error) {
    state.enabled = false;
    state.reason = `${resolve(file)}: ${(error as Error).message}`;
  }
  debug(statusLine(state));
}

enableFromEnvironment();

// Once per thread, whichever copy of this module (the CommonJS bundle or the ES module) runs first.
const reporting = Symbol.for('codeblob.loader.reporting');
const thread = globalThis as { [reporting]?: boolean };
const first = !thread[reporting];
thread[reporting] = true;

const statusFile = process.env.CODEBLOB_STATUS_FILE;
const statusLineWanted = process.env.CODEBLOB_STATUS === '1';

/** Writes what was asked for: the status line (stderr or NODE_DEBUG) and the status file. */
function report(): void {
  if (statusLineWanted || debug.enabled) {
    const line = statusLine();
    if (statusLineWanted) process.stderr.write(line + '\n');
    else debug(line);
  }
  if (statusFile) {
    try {
      const path = statusFile.replaceAll('%p', String(process.pid)).replaceAll('%t', String(threadId));
      writeFileSync(path, JSON.stringify({ pid: process.pid, threadId, ...status() }) + '\n');
    } catch (error) {
      debug(`could not write CODEBLOB_STATUS_FILE: ${(error as Error).message}`);
    }
  }
}

/**
 * A process stopped by a signal's default action (SIGTERM from a container runtime or a
 * cluster primary, Ctrl-C) never emits 'exit'. Report on the signal too, and then, when nobody
 * else handles it, give it back its default action: the process dies of the same signal, with
 * the same exit status, as without codeblob.
 */
function reportOnSignals(): void {
  let reported = false;
  const once = () => {
    if (!reported) report();
    reported = true;
  };
  process.on('exit', once);
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    const onSignal = () => {
      once();
      if (process.listenerCount(signal) === 1) {
        process.removeListener(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}

if (first && (statusLineWanted || debug.enabled || statusFile)) {
  if (isMainThread) reportOnSignals();
  else process.on('exit', report);
}
