/**
 * Differential test of the resolution table (issue 7) on the service corpus (corpus/service):
 * about 1,460 real modules from the npm registry with "exports" maps, conditional exports
 * (axios picks dist/node/axios.cjs), nested copies of a package, the AWS SDK's self-references
 * and failing optional requires. Every call of Module._resolveFilename, in order, must give the
 * same answer (or the same error) with and without codeblob, and the same files must load; the
 * answers must come from the table, none stale.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installCorpus } from '../bench/lib.mjs';
import { expectSameRun, runFromBlob, runPlain, type Program } from './helpers/differential.js';
import { cacheDir, cleanEnv, cli, repo, run, runtimes } from './helpers/env.js';

const corpus = installCorpus('service', join(cacheDir, 'service-corpus'));
const tracer = join(repo, 'test/fixtures/service/trace-resolutions.cjs');

describe.each(runtimes())('service corpus on $name', (rt) => {
  let scratch: string;
  let blob: string;
  let packed: { entries: number; resolutions: { answers: number } };
  const traced: Program = { node: rt.bin, cwd: corpus, script: [tracer], env: { SERVICE_ROOT: corpus, SERVICE_ENTRY: join(corpus, 'entry.js') } };

  beforeAll(() => {
    scratch = mkdtempSync(join(tmpdir(), `codeblob-service-${rt.name}-`));
    blob = join(scratch, 'service.blob');
    const r = run(process.execPath, [cli, 'pack', '--node', rt.bin, '--json', '-o', blob, 'entry.js'], { cwd: corpus, env: cleanEnv() });
    expect(r.status, r.stderr).toBe(0);
    packed = JSON.parse(r.stdout);
  }, 300_000);
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('resolves every request exactly as Node does, from the table', () => {
    expect(packed.entries).toBeGreaterThan(1400);
    expect(packed.resolutions.answers).toBeGreaterThan(1500);
    const plain = runPlain(traced);
    expect(plain.status, plain.stderr).toBe(0);
    const fromBlob = runFromBlob(traced, blob);
    expect(fromBlob.status, fromBlob.stderr).toBe(0);
    const a = plain.stdout.trim().split('\n');
    const b = fromBlob.stdout.trim().split('\n');
    expect(a.length).toBeGreaterThan(2000);
    // Line by line first, for a readable failure; then the whole run.
    for (let i = 0; i < a.length; i++) expect(b[i], `resolution ${i}`).toBe(a[i]);
    expect(b.length).toBe(a.length);
    expectSameRun(plain, fromBlob);
    // Conditional exports and self-references are among them.
    expect(plain.stdout).toContain('node_modules/axios/dist/node/axios.cjs');
    const status = fromBlob.report;
    expect(status.resolve).toBe('blob');
    expect(status.counters.resolveStale).toBe(0);
    expect(status.counters.resolveHits / (status.counters.resolveHits + status.counters.resolveMisses)).toBeGreaterThanOrEqual(0.95);
    expect(status.counters.hits).toBeGreaterThan(1400);
  });
});
