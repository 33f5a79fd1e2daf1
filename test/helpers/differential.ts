/**
 * The differential runner (v8-compile-cache's `test/module-test.js` pattern): the same program in
 * two child processes, once with plain Node and once loading from a blob through
 * `--require codeblob/register`; stdout, exit code and stderr (less the loader's own stack
 * frames) must match, and the loader's status, written by each thread at exit, says what it did.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { cleanEnv, registerPath, run, type RunResult } from './env.js';
import { withoutStalenessLine } from './files.js';

/** A program to run both ways. */
export interface Program {
  /** The Node binary. */
  node: string;
  cwd: string;
  /** The script, with its arguments. */
  script: string[];
  /**
   * Node's options, for both runs; in the run from the blob they come before codeblob's own
   * `--require`, so a preload given here runs first.
   */
  options?: string[];
  /** Variables for both runs, on top of cleanEnv(). */
  env?: NodeJS.ProcessEnv;
}

/** What the loader of one thread reported at exit (CODEBLOB_STATUS_FILE: codeblob's `status()`, its pid and thread id). */
export interface StatusReport {
  pid: number;
  threadId: number;
  enabled: boolean;
  reason?: string;
  backend?: string;
  cachesUsable: boolean;
  verify: string;
  esm: 'blob' | 'disk';
  esmReason?: string;
  resolve: 'blob' | 'disk';
  resolveReason?: string;
  counters: Record<string, number>;
}

export interface BlobRun extends RunResult {
  /** The loader's report of every thread of every process that loaded codeblob (workers, child processes). */
  reports: StatusReport[];
  /** The loader's report of the main thread of the process this run started. */
  report: StatusReport;
}

/** The program with plain Node; `env` on top of the program's. */
export function runPlain(p: Program, env: NodeJS.ProcessEnv = {}): RunResult {
  return run(p.node, [...(p.options ?? []), ...p.script], { cwd: p.cwd, env: cleanEnv({ ...p.env, ...env }) });
}

/**
 * The program loading from `blob`; `env` on top of the program's (CODEBLOB_VERIFY, ... and the
 * variables that differ from the plain run). Each thread's status goes to a file of its own in
 * a temporary directory, read and removed before this returns.
 */
export function runFromBlob(p: Program, blob: string, env: NodeJS.ProcessEnv = {}): BlobRun {
  const statusDir = mkdtempSync(join(tmpdir(), 'codeblob-status-'));
  try {
    const r = run(p.node, [...(p.options ?? []), '--require', registerPath, ...p.script], {
      cwd: p.cwd,
      env: cleanEnv({ ...p.env, CODEBLOB_FILE: blob, CODEBLOB_STATUS_FILE: join(statusDir, 'status-%p-%t.json'), ...env }),
    });
    const reports = readdirSync(statusDir)
      .sort()
      .map((f) => JSON.parse(readFileSync(join(statusDir, f), 'utf8')) as StatusReport);
    const report = reports.find((s) => s.pid === r.pid && s.threadId === 0);
    if (!report) throw new Error(`the run from the blob wrote no status for its main thread (exit ${r.status ?? r.signal}):\n${r.stderr.slice(-2000)}`);
    return { ...r, reports, report };
  } finally {
    rmSync(statusDir, { recursive: true, force: true });
  }
}

/**
 * Stack frames inside the module loader differ by construction (codeblob adds its hook frames
 * and the one-line `node:codeblob` stub between your module and Node's `Module._compile`):
 * compare everything else, every frame of the app included.
 */
export function withoutLoaderFrames(stderr: string): string {
  return stderr
    .split('\n')
    .filter((l) => !/^\s+at (.*\()?(node:internal\/|node:codeblob|(file:\/\/)?\/.*\/dist\/loader\/)/.test(l))
    .join('\n');
}

export interface SameRunOptions {
  /** Maps each run's stdout and stderr before they are compared (say, its own output directory to a common name). */
  normalize?: (text: string, run: 'plain' | 'blob') => string;
  /** Names the case in a failure's message. */
  what?: string;
  /** The run from the blob may print codeblob's staleness line (a large share of the blob is stale, issue 19). */
  stalenessLine?: boolean;
}

/**
 * The run from the blob did what the plain run did: the same signal (none, unless plain died of
 * one), stdout, stderr less the loader's frames, and exit code.
 */
export function expectSameRun(plain: RunResult, fromBlob: RunResult, { normalize = (t) => t, what, stalenessLine = false }: SameRunOptions = {}): void {
  const label = (part: string) => (what ? `${what}: ${part}` : part);
  expect(fromBlob.signal, label('signal')).toBe(plain.signal);
  expect(normalize(fromBlob.stdout, 'blob'), label('stdout')).toBe(normalize(plain.stdout, 'plain'));
  const blobStderr = stalenessLine ? withoutStalenessLine(fromBlob.stderr) : fromBlob.stderr;
  expect(withoutLoaderFrames(normalize(blobStderr, 'blob')), label('stderr')).toBe(withoutLoaderFrames(normalize(plain.stderr, 'plain')));
  expect(fromBlob.status, label('exit code')).toBe(plain.status);
}

/**
 * Runs the program both ways (`env` for the run from the blob only) and expects the same run;
 * returns both, and the loader's report of the run from the blob.
 */
export function differential(p: Program, blob: string, env: NodeJS.ProcessEnv = {}, options: SameRunOptions = {}): { plain: RunResult; fromBlob: BlobRun; report: StatusReport } {
  const plain = runPlain(p);
  const fromBlob = runFromBlob(p, blob, env);
  expectSameRun(plain, fromBlob, options);
  return { plain, fromBlob, report: fromBlob.report };
}

/** The counters of every report, added up. */
export function totalCounters(reports: StatusReport[]): Record<string, number> {
  const total: Record<string, number> = {};
  for (const s of reports) for (const [k, v] of Object.entries(s.counters)) total[k] = (total[k] ?? 0) + v;
  return total;
}
