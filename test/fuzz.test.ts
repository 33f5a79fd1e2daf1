/**
 * The fuzzer's quick run (the full 100,000-case run is `npm run fuzz`): real blobs packed from
 * the reference corpus, mutated every way the fuzzer knows, must fail with typed errors or serve
 * only entries that pass their checks, and never crash. Then a few mutated blobs under a real
 * app: it must behave exactly as without codeblob.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-ignore: plain ESM module
import { fuzz } from './fuzz/fuzz.mjs';
import { expectSameRun, runFromBlob, runPlain } from './helpers/differential.js';
import { cleanEnv, cli, nodePackageBin, referenceCorpus, repo, run } from './helpers/env.js';
import { existsSync } from 'node:fs';

describe('fuzzing real blobs', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(referenceCorpus(), 'fuzz-'));
    writeFileSync(join(dir, 'entry.cjs'), "require('express'); require('lodash'); require('../package.json');\n");
    const pack = (node: string, out: string) => {
      const r = run(process.execPath, [cli, 'pack', '--node', node, 'entry.cjs', '-o', out], { cwd: dir, env: cleanEnv() });
      expect(r.status, r.stderr).toBe(0);
    };
    pack(process.execPath, join(dir, 'app.blob'));
    const other = nodePackageBin(process.versions.node.startsWith('24.') ? '26' : '24');
    if (existsSync(other)) pack(other, join(dir, 'foreign.blob'));
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('3,000 mutated blobs: typed errors or checked entries only, zero crashes, zero wrong answers', async () => {
    const foreign = join(dir, 'foreign.blob');
    const t = await fuzz({ blob: join(dir, 'app.blob'), foreign: existsSync(foreign) ? foreign : undefined, cases: 3000, jobs: 2, seed: 7 });
    expect(t.crashes).toEqual([]);
    expect(t.wrong).toEqual([]);
    expect(t.cases).toBeGreaterThan(2500);
    expect(t.typedErrors).toBeGreaterThan(500); // the mutations really break things
    expect(t.entriesRefused).toBeGreaterThan(100); // and corrupt sections are caught
    if (existsSync(foreign)) expect(t.cachesRejected).toBeGreaterThanOrEqual(t.byKind.foreignCache);
    // Damaged resolution tables: some refused with a typed error, the rest used without a crash.
    expect(t.byKind.resolutionTable).toBeGreaterThan(100);
    expect(t.tablesUsed).toBeGreaterThan(0);
  }, 300_000);
});

describe('an app over mutated blobs', () => {
  let dir: string;
  let blob: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'codeblob-fuzz-app-'));
    cpSync(join(repo, 'test/fixtures/semantics'), dir, { recursive: true });
    blob = join(dir, 'app.blob');
    expect(run(process.execPath, [cli, 'pack', '--allow-failure', 'main.js', '-o', blob], { cwd: dir, env: cleanEnv() }).status).toBe(0);
  }, 60_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('behaves exactly as without codeblob, whatever byte was damaged', () => {
    const app = { node: process.execPath, cwd: dir, script: ['main.js'] };
    const plain = runPlain(app);
    const original = readFileSync(blob);
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (let i = 0; i < 24; i++) {
      const bytes = Buffer.from(original);
      const at = Math.floor(rand() * bytes.length);
      if (i % 3 === 2) writeFileSync(join(dir, 'bad.blob'), bytes.subarray(0, at));
      else {
        bytes[at]! ^= 1 << Math.floor(rand() * 8);
        writeFileSync(join(dir, 'bad.blob'), bytes);
      }
      expectSameRun(plain, runFromBlob(app, join(dir, 'bad.blob')), { what: `case ${i} at byte ${at}` });
    }
  }, 120_000);
});
