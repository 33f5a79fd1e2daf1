/**
 * Differential tests on real work from the reference corpus: each task runs in a child process
 * with and without codeblob, on every runtime; stdout, stderr, exit code and the files it
 * writes must be identical, and the loader's own counters (written by the child at exit) must
 * show that the modules really came from the blob.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectSameRun, runFromBlob, runPlain, totalCounters } from './helpers/differential.js';
import { cleanEnv, cli, referenceCorpus, repo, run, runtimes, type NodeRuntime } from './helpers/env.js';

const TASKS = ['tsc', 'eslint', 'prettier', 'babel', 'webpack', 'express'] as const;
type Task = (typeof TASKS)[number];

/**
 * Every task on the oldest and the newest runtime (the loader's two paths: V8 11's
 * compileFunction on Node 20, the newest Node's); on the ones between, every task but the two
 * slowest (tsc and webpack: a third of the suite's time here), unless CODEBLOB_TEST_FULL=1.
 */
function tasksFor(rt: NodeRuntime, all: NodeRuntime[]): readonly Task[] {
  const majors = all.map((r) => r.major);
  if (process.env.CODEBLOB_TEST_FULL === '1' || rt.major === Math.min(...majors) || rt.major === Math.max(...majors)) return TASKS;
  return TASKS.filter((t) => t !== 'tsc' && t !== 'webpack');
}

function filesUnder(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[relative(dir, p)] = readFileSync(p, 'utf8');
    }
  };
  walk(dir);
  return out;
}

describe.each(runtimes())('reference corpus on $name', (rt) => {
  const tasksHere = tasksFor(rt, runtimes());
  const corpus = referenceCorpus();
  const tasks = join(corpus, `tasks-${rt.name}`);
  const blob = join(tasks, 'app.blob');
  let scratch: string;

  beforeAll(() => {
    rmSync(tasks, { recursive: true, force: true });
    cpSync(join(repo, 'test/fixtures/corpus-tasks'), tasks, { recursive: true });
    scratch = mkdtempSync(join(tmpdir(), `codeblob-corpus-${rt.name}-`));
    const packed = run(process.execPath, [
      cli, 'pack', '--node', rt.bin, '--allow-failure', '--json', '-o', blob,
      '../entry.js', ...tasksHere.map((t) => `${t}.cjs`),
    ], { cwd: tasks, env: cleanEnv({ TASK_OUT: join(scratch, 'pack-out') }) });
    expect(packed.stderr).toBe('');
    expect(packed.status).toBe(0);
    const summary = JSON.parse(packed.stdout) as { entries: number; nodeVersion: string };
    expect(summary.nodeVersion).toBe(`v${run(rt.bin, ['-p', 'process.versions.node']).stdout.trim()}`);
    expect(summary.entries).toBeGreaterThan(1300);
  }, 300_000);

  afterAll(() => {
    rmSync(tasks, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  });

  it.each(tasksHere)('%s gives identical output, exit code and files from the blob', (task) => {
    const plainOut = join(scratch, `${task}-plain`);
    const blobOut = join(scratch, `${task}-blob`);
    const program = { node: rt.bin, cwd: tasks, script: [`${task}.cjs`] };
    const plain = runPlain(program, { TASK_OUT: plainOut });
    const fromBlob = runFromBlob(program, blob, { TASK_OUT: blobOut });
    // Each run writes into its own directory, which its output names.
    expectSameRun(plain, fromBlob, { normalize: (text, run) => text.replaceAll(run === 'plain' ? plainOut : blobOut, 'OUT') });
    if (task === 'tsc' || task === 'webpack') {
      expect(filesUnder(blobOut)).toEqual(filesUnder(plainOut));
    }

    // Every thread of every process that loaded codeblob (the main thread's report among them).
    expect(fromBlob.reports.every((r) => r.enabled)).toBe(true);
    const total = totalCounters(fromBlob.reports);
    const served = total.hits + total.jsonHits + total.esmHits;
    const loaded = served + total.misses + total.stale + total.deferred + total.corrupt;
    expect(served).toBeGreaterThan(0);
    expect(served / loaded).toBeGreaterThanOrEqual(0.99);
    expect(total.cacheRejected).toBe(0);
    expect(total.stringsCopied).toBe(0);
    expect(total.stale).toBe(0);
    expect(total.corrupt).toBe(0);
    // Resolutions come from the blob's table (issue 7): nearly all, none stale.
    expect(total.resolveStale).toBe(0);
    expect(total.resolveHits / (total.resolveHits + total.resolveMisses)).toBeGreaterThanOrEqual(0.95);
  });
});
