/**
 * `codeblob/register`: importing this module (`node --require codeblob/register` or
 * `--import codeblob/register`) switches loading from the blob named by CODEBLOB_FILE on, in
 * this thread. It never throws: when the blob is missing, foreign or corrupt, the app runs as if
 * codeblob were absent and `status().reason` says why (also printed with NODE_DEBUG=codeblob).
 * Every CODEBLOB_* variable it reads is in config.ts.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { debuglog } from 'node:util';
import { native } from '../native/binding.js';
import { open, type BlobStore } from '../store/store.js';
import { Burst } from './burst.js';
import { assertNoPolicy, installCjsHooks } from './cjs-hooks.js';
import { readLoaderConfig, type LoaderConfig } from './config.js';
import { installEsmHooks } from './esm-hooks.js';
import { currentThread } from './node-internals.js';
import { releasePagesWhenIdle } from './pages.js';
import { installResolveCache } from './resolve-cache.js';
import { unsafeReason } from './safety.js';
import { startStatsAhead, type ServeContext } from './serve.js';
import { reportStalenessWhenIdle } from './staleness.js';
import { attachStore, loaderState, status, statusLine, type LoaderStatus } from './status.js';

export { status, statusLine, type LoaderStatus, type LoaderCounters } from './status.js';

const debug = debuglog('codeblob');

/** Opens the blob the configuration names and checks it may be used here. */
function openChecked(config: LoaderConfig, file: string): BlobStore {
  assertNoPolicy();
  const store = open(file, { backend: config.backend, ...(config.root && { root: config.root }) });
  const unsafe = unsafeReason(file, store.file, config.allowUnsafe);
  if (unsafe) {
    store.close();
    throw new Error(`refused: ${unsafe} (set CODEBLOB_ALLOW_UNSAFE=1 to accept it)`);
  }
  if (config.pin && !store.trustPin(config.pin)) {
    store.close();
    throw new Error(`the blob is not the generation the primary verified (digest ${config.pin.digest.slice(0, 12)}…)`);
  }
  return store;
}

/** Switches every hook on over one context; each part that cannot work says why in `state`. */
function install(state: LoaderStatus, config: LoaderConfig, store: BlobStore, burst: Burst): void {
  attachStore(state, store);
  state.file = store.path;
  state.backend = store.backend;
  state.cachesUsable = store.cachesUsable;
  const ctx: ServeContext = { store, state, config, debug, burst, native: store.backend === 'mmap' ? native() : undefined };
  store.prefetchStartup();
  if (config.checkAhead) {
    burst.onFirstLoad(() => {
      if (store.closed) return;
      store.verifyAhead();
      startStatsAhead(ctx);
    });
  }
  releasePagesWhenIdle(ctx);
  installCjsHooks(ctx);
  reportStalenessWhenIdle(ctx);
  const resolution = installResolveCache(ctx);
  state.resolveReason = 'reason' in resolution ? resolution.reason : undefined;
  state.resolve = state.resolveReason ? 'disk' : 'blob';
  state.esmReason = installEsmHooks(ctx, 'resolveImport' in resolution ? resolution.resolveImport : undefined);
  state.esm = state.esmReason ? 'disk' : 'blob';
  state.enabled = true;
  const fallback = store.fallbackReason;
  const notes = [
    fallback && `read backend: ${fallback}`,
    !store.cachesUsable && `code caches unusable here (${store.incompatibility}); sources still come from the blob`,
  ].filter(Boolean);
  state.reason = notes.length > 0 ? notes.join('; ') : undefined;
}

function enableFromEnvironment(burst: Burst): LoaderConfig | undefined {
  const state = loaderState();
  if (state.enabled || state.attempted) return undefined; // once per thread, whichever copy comes first
  state.attempted = true;
  const { config, problems } = readLoaderConfig();
  state.config = config;
  state.verify = config.freshness;
  if (problems.length > 0) state.reason = problems.join('; ');
  else if (!config.file) state.reason = 'CODEBLOB_FILE is not set';
  else {
    const file = resolve(config.file);
    try {
      install(state, config, openChecked(config, file), burst);
    } catch (error) {
      state.enabled = false;
      state.reason = `${file}: ${(error as Error).message}`;
    }
  }
  // What happened is reported at exit; at startup only why it is off.
  if (!state.enabled) debug(statusLine(state));
  return config;
}

const burst = new Burst();
const config = enableFromEnvironment(burst);

function writeStatusFile(path: string): void {
  try {
    const { threadId } = currentThread();
    const file = path.replaceAll('%p', String(process.pid)).replaceAll('%t', String(threadId));
    writeFileSync(file, JSON.stringify({ pid: process.pid, threadId, ...status() }) + '\n');
  } catch (error) {
    debug(`could not write CODEBLOB_STATUS_FILE: ${(error as Error).message}`);
  }
}

/** Writes what was asked for: the status line (stderr or NODE_DEBUG) and the status file. */
function report(config: LoaderConfig): void {
  if (config.statusLine) process.stderr.write(statusLine() + '\n');
  else if (debug.enabled) debug(statusLine());
  if (config.statusFile) writeStatusFile(config.statusFile);
}

/**
 * A process stopped by a signal's default action (SIGTERM from a container runtime or a
 * cluster primary, Ctrl-C) never emits 'exit'. Report on the signal too, and then, when nobody
 * else handles it, give it back its default action: the process dies of the same signal, with
 * the same exit status, as without codeblob. Worker threads get no signals: their status file
 * is also written whenever a loading burst goes idle, so a killed process leaves it behind.
 */
function reportOnExit(config: LoaderConfig): void {
  if (!config.statusLine && !config.statusFile && !debug.enabled) return;
  let reported = false;
  const once = () => {
    if (!reported) report(config);
    reported = true;
  };
  process.on('exit', once);
  if (!currentThread().isMainThread) {
    const file = config.statusFile;
    if (file) burst.on('idle', () => writeStatusFile(file));
    return;
  }
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

if (config) reportOnExit(config);
