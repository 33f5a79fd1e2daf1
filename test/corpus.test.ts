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
import { cleanEnv, cli, referenceCorpus, registerPath, repo, run, runtimes } from './helpers/env.js';

const TASKS = ['tsc', 'eslint', 'prettier', 'babel', 'webpack', 'express'] as const;

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

interface Counters {
  hits: number; jsonHits: number; esmHits: number; misses: number; stale: number;
  cacheRejected: number; corrupt: number; deferred: number; stringsCopied: number; noCache: number;
  resolveHits: number; resolveMisses: number; resolveStale: number;
}

function readCounters(dir: string): { enabled: boolean[]; total: Counters } {
  const total: Counters = {
    hits: 0, jsonHits: 0, esmHits: 0, misses: 0, stale: 0, cacheRejected: 0, corrupt: 0, deferred: 0, stringsCopied: 0, noCache: 0,
    resolveHits: 0, resolveMisses: 0, resolveStale: 0,
  };
  const enabled: boolean[] = [];
  for (const f of readdirSync(dir).filter((n) => n.startsWith('status-'))) {
    const s = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { enabled: boolean; counters: Counters };
    enabled.push(s.enabled);
    for (const k of Object.keys(total) as (keyof Counters)[]) total[k] += s.counters[k];
  }
  return { enabled, total };
}

describe.each(runtimes())('reference corpus on $name', (rt) => {
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
      '../entry.js', ...TASKS.map((t) => `${t}.cjs`),
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

  it.each(TASKS)('%s gives identical output, exit code and files from the blob', (task) => {
    const plainOut = join(scratch, `${task}-plain`);
    const blobOut = join(scratch, `${task}-blob`);
    const statusDir = mkdtempSync(join(scratch, `${task}-status-`));
    const plain = run(rt.bin, [`${task}.cjs`], { cwd: tasks, env: cleanEnv({ TASK_OUT: plainOut }) });
    const fromBlob = run(rt.bin, ['--require', registerPath, `${task}.cjs`], {
      cwd: tasks,
      env: cleanEnv({ TASK_OUT: blobOut, CODEBLOB_FILE: blob, CODEBLOB_STATUS_FILE: join(statusDir, 'status-%p-%t.json') }),
    });
    expect(fromBlob.signal).toBeNull();
    expect(fromBlob.status).toBe(plain.status);
    expect(fromBlob.stdout.replaceAll(blobOut, 'OUT')).toBe(plain.stdout.replaceAll(plainOut, 'OUT'));
    expect(fromBlob.stderr.replaceAll(blobOut, 'OUT')).toBe(plain.stderr.replaceAll(plainOut, 'OUT'));
    if (task === 'tsc' || task === 'webpack') {
      expect(filesUnder(blobOut)).toEqual(filesUnder(plainOut));
    }

    const { enabled, total } = readCounters(statusDir);
    expect(enabled.length).toBeGreaterThan(0);
    expect(enabled.every(Boolean)).toBe(true);
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
