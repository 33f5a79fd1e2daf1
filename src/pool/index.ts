/**
 * `codeblob/pool`: what worker processes and threads need to start from a blob.
 *
 * Node does not fork-clone: `cluster.fork()`, `child_process.fork()` and worker threads all
 * start fresh and load their modules again. They share the blob because each one maps the same
 * file and the kernel keeps one copy of its pages; worker threads of one process share one
 * mapping.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { codeblobError } from '../errors.js';
import { readLoaderConfig } from '../loader/config.js';
import { unsafeReason } from '../loader/safety.js';
import type { BlobPin } from '../store/store.js';

/** The preload module workers load with `--require`. */
export const registerPath = fileURLToPath(new URL('../loader/register.cjs', import.meta.url));

export interface PreloadOptions {
  /**
   * How workers check that a module's file is unchanged: `stat`, `hash` or `none`.
   * @default the environment's CODEBLOB_VERIFY (an operator's choice), else 'stat'
   */
  verify?: 'stat' | 'hash' | 'none';
  /**
   * Keep this process's own `process.execArgv` in front of the preload (as `fork` would by
   * default). Worker threads reject V8 flags in execArgv (ERR_WORKER_INVALID_EXEC_ARGV): for a
   * thread pool in a process started with V8 flags, pass false.
   * @default true
   */
  inheritExecArgv?: boolean;
  /** The environment to extend. @default process.env */
  env?: NodeJS.ProcessEnv;
}

/** Spread into `new Piscina`, `new Worker`, `child_process.fork`; for cluster see the README. */
export interface WorkerOptions {
  execArgv: string[];
  env: NodeJS.ProcessEnv;
}

/** This copy's register modules: the CommonJS bundle, the ES module that requires it, and the unbundled ES module. */
const ourRegisters = new Set([registerPath, ...['register.mjs', 'register.js'].map((f) => fileURLToPath(new URL(`../loader/${f}`, import.meta.url)))]);

/** `--require`/`-r`/`--import` of codeblob/register: by name, by a path or file URL of this copy, or of any codeblob package. */
function isOurPreload(argv: string[], i: number): boolean {
  const flag = argv[i];
  const value = argv[i + 1];
  if ((flag !== '--require' && flag !== '-r' && flag !== '--import') || value === undefined) return false;
  if (value === 'codeblob/register' || /codeblob.*register\.[cm]?js$/.test(value)) return true;
  try {
    return ourRegisters.has(value.startsWith('file:') ? fileURLToPath(value) : resolve(value));
  } catch {
    return false;
  }
}

// Flags that say what *this* process runs (a script given inline, a test run, a REPL, watch
// mode): passed on, they would make every worker run the primary's own code again.
const WITH_VALUE = new Set(['-e', '--eval', '-p', '--print', '--input-type', '--test-name-pattern', '--watch-path']);
const ALONE = new Set(['-c', '--check', '-i', '--interactive', '--test', '--watch', '--watch-preserve-output', '-pe']);

function baseExecArgv(inherit: boolean): string[] {
  if (!inherit) return [];
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const name = arg.split('=')[0]!;
    if (isOurPreload(argv, i) || (WITH_VALUE.has(name) && !arg.includes('='))) {
      i++;
      continue;
    }
    if (WITH_VALUE.has(name) || ALONE.has(name)) continue;
    out.push(arg);
  }
  return out;
}

function check(options: PreloadOptions | undefined): Required<Omit<PreloadOptions, 'env'>> & { env: NodeJS.ProcessEnv } {
  const o = options ?? {};
  for (const key of Object.keys(o)) {
    if (!['verify', 'inheritExecArgv', 'env'].includes(key)) {
      throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', `options.${key} is not a preload option; known: verify, inheritExecArgv, env`);
    }
  }
  if (o.verify !== undefined && !['stat', 'hash', 'none'].includes(o.verify)) {
    throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', 'options.verify must be "stat", "hash" or "none"');
  }
  const env = o.env ?? process.env;
  // An operator who set CODEBLOB_VERIFY (none for an immutable image, hash after a copy) keeps it.
  const fromEnv = readLoaderConfig(env).config.freshness;
  return { verify: o.verify ?? fromEnv, inheritExecArgv: o.inheritExecArgv ?? true, env };
}

/**
 * What a worker needs to load from the blob: `execArgv` with `--require codeblob/register`, and
 * `env` with CODEBLOB_FILE. Opens nothing; a worker that cannot use the blob loads from disk.
 */
export function preloadOptions(blobPath: string, options?: PreloadOptions): WorkerOptions {
  const o = check(options);
  const env: NodeJS.ProcessEnv = { ...o.env, CODEBLOB_FILE: resolve(blobPath), CODEBLOB_VERIFY: o.verify };
  delete env.CODEBLOB_PIN;
  delete env.CODEBLOB_ROOT;
  return { execArgv: [...baseExecArgv(o.inheritExecArgv), '--require', registerPath], env };
}

export interface PrimaryPreload extends WorkerOptions {
  /** False when the blob could not be used: the options then start workers without codeblob. */
  enabled: boolean;
  /** Why not, when not enabled. */
  reason: string | undefined;
  /** The generation workers will map (undefined when not enabled). */
  pin: BlobPin | undefined;
  /**
   * Bytes of the blob in the page cache when the check had read it (mincore, measured by the
   * checking child; the kernel may evict cold pages later, as it may any file's).
   */
  warmedBytes: number;
  /** Stop holding this generation open (workers already started keep their mapping). */
  close(): void;
}

const verifierPath = fileURLToPath(new URL('./verify-child.js', import.meta.url));

/**
 * For a cluster / pm2-style primary, once before forking: checks every hash of the blob and
 * its digest, which also reads it into the page cache, and pins this exact file: the returned
 * options point workers at this generation through an open descriptor of the primary, so a new
 * pack renamed over the path meanwhile does not mix generations; workers trust the pinned
 * generation without hashing it again. Call it again after a new pack to move new workers to
 * it. Never throws for a bad blob: it reports and steps aside.
 *
 * The checking runs in a short-lived child process: the primary keeps only the descriptor. It
 * maps nothing and loads none of the format code, so it costs the primary next to nothing for
 * as long as it runs (the blob's pages are shared page cache, used by the workers).
 */
export function preloadPrimary(blobPath: string, options?: PreloadOptions): PrimaryPreload {
  const o = check(options);
  const path = resolve(blobPath);
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const pinnedPath = `/proc/${process.pid}/fd/${fd}`;
    const st = fstatSync(fd, { bigint: true });
    const facts = { dev: Number(st.dev), ino: Number(st.ino), size: Number(st.size), mtimeMs: Number(st.mtimeMs), ctimeNs: st.ctimeNs, mode: Number(st.mode), uid: Number(st.uid) };
    const unsafe = unsafeReason(path, facts, readLoaderConfig(o.env).config.allowUnsafe);
    if (unsafe) throw new Error(`refused: ${unsafe} (set CODEBLOB_ALLOW_UNSAFE=1 to accept it)`);
    const { pin, recordedRoot, residentBytes } = verifyInChild(pinnedPath);
    // The child opened the very inode this descriptor holds, unchanged since.
    if (pin.ino !== Number(st.ino) || pin.dev !== Number(st.dev) || pin.size !== Number(st.size) || pin.ctimeNs !== st.ctimeNs.toString()) {
      throw new Error('the file changed while it was being checked');
    }
    // Keys are relative to the root recorded next to the real path, not to /proc/<pid>/fd.
    const root = resolve(dirname(path), recordedRoot);
    const base = preloadOptions(pinnedPath, o);
    const heldFd = fd;
    return {
      enabled: true,
      reason: undefined,
      execArgv: base.execArgv,
      env: {
        ...base.env,
        CODEBLOB_ROOT: root,
        CODEBLOB_PIN: `${pin.dev}:${pin.ino}:${pin.size}:${pin.ctimeNs}:${pin.digest}`,
      },
      pin,
      warmedBytes: Math.min(residentBytes, pin.size),
      close() {
        try {
          closeSync(heldFd);
        } catch {
          // Already closed.
        }
      },
    };
  } catch (error) {
    if (fd !== undefined) closeSync(fd);
    const env = { ...o.env };
    for (const k of ['CODEBLOB_FILE', 'CODEBLOB_PIN', 'CODEBLOB_ROOT']) delete env[k];
    return {
      enabled: false,
      reason: `${path}: ${(error as Error).message}`,
      execArgv: baseExecArgv(o.inheritExecArgv),
      env,
      pin: undefined,
      warmedBytes: 0,
      close() {},
    };
  }
}

/** Runs verify-child.ts on the held descriptor, with a plain environment (no preloads of the app). */
function verifyInChild(pinnedPath: string): { pin: BlobPin; recordedRoot: string; residentBytes: number } {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('CODEBLOB_') && k !== 'NODE_OPTIONS' || k === 'CODEBLOB_BACKEND' || k === 'CODEBLOB_ALLOW_UNSAFE') env[k] = v;
  }
  const r = spawnSync(process.execPath, [verifierPath, pinnedPath], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(r.stderr.trim() || `the check exited with ${r.status ?? r.signal}`);
  return JSON.parse(r.stdout) as { pin: BlobPin; recordedRoot: string; residentBytes: number };
}
