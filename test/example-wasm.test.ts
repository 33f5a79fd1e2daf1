/**
 * examples/wasm: the custom-loader example runs as a user would run it (a child process,
 * importing the built package by name) and compiles add.wasm from the blob.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';

const example = fileURLToPath(new URL('../examples/wasm/', import.meta.url));

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

it('run.mjs packs add.wasm as an asset and calls add() compiled from the blob', () => {
  const r = spawnSync(process.execPath, [join(example, 'run.mjs')], { encoding: 'utf8', timeout: 120_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/^add\.wasm: asset, 41 bytes, backend (mmap|read)\n/);
  expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('add(2, 3) = 5');
});

it('add.wasm is exactly what make-add-wasm.mjs writes', () => {
  dir = mkdtempSync(join(tmpdir(), 'codeblob-wasm-gen-'));
  const out = join(dir, 'add.wasm');
  const r = spawnSync(process.execPath, [join(example, 'make-add-wasm.mjs'), out], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  expect(readFileSync(out).equals(readFileSync(join(example, 'add.wasm')))).toBe(true);
});
