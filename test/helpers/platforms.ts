/**
 * The cross-platform tests' environment: the four prebuilt addons, and qemu-user with the arm64
 * Node for running the arm64 one. Prepared once by platforms-setup.mjs under flock(1) (parallel
 * test files wait for each other on the lock, not on a timer) and cached in node_modules/.cache.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, repo } from './env.js';
import { EXPECTED_ABI } from '../../src/native/binding.js';

export interface Prebuilds {
  /** Directory holding linux-x64/ and linux-arm64/, as prebuilds/ in the package. */
  prebuilds: string;
}

export interface Arm64 extends Prebuilds {
  qemu: string;
  sysroot: string;
  node: string;
  nodeVersion: string;
}

export interface Debian11 extends Arm64 {
  /** Debian 11's libc6, libstdc++6 and libgcc-s1 unpacked, per arch: a root to run Node on glibc 2.31 from. */
  debian11: { roots: { x64: string; arm64: string }; glibc: string };
}

type Prepared<T> = ({ skip?: undefined } & T) | { skip: string };

function prepare<T>(what: 'prebuilds' | 'arm64' | 'debian11'): Prepared<T> {
  mkdirSync(cacheDir, { recursive: true });
  const r = spawnSync('flock', [join(cacheDir, 'platforms.lock'), process.execPath, join(repo, 'test/helpers/platforms-setup.mjs'), what], {
    encoding: 'utf8',
    timeout: 900_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const last = r.stdout?.trim().split('\n').pop();
  if (r.status !== 0 || !last) throw new Error(`platforms-setup.mjs ${what} failed (status ${r.status}, ${r.error?.message ?? ''}):\n${r.stderr}`);
  const result = JSON.parse(last) as Prepared<T> | { error: string };
  if ('error' in result) throw new Error(`platforms-setup.mjs ${what}: ${result.error}`);
  return result;
}

let prebuilt: Prepared<Prebuilds> | undefined;
let arm64: Prepared<Arm64> | undefined;
let debian11: Prepared<Debian11> | undefined;

/** The four prebuilds (built once per change of their inputs), or why they cannot be built here. */
export function prebuilds(): Prepared<Prebuilds> {
  return (prebuilt ??= prepare<Prebuilds>('prebuilds'));
}

/** The prebuilds plus qemu-user, the arm64 sysroot and the arm64 Node, or why not here. */
export function arm64Environment(): Prepared<Arm64> {
  return (arm64 ??= prepare<Arm64>('arm64'));
}

/** arm64Environment() plus Debian 11's glibc for x64 and arm64, or why not here. */
export function debian11Environment(): Prepared<Debian11> {
  return (debian11 ??= prepare<Debian11>('debian11'));
}

/**
 * What test/fixtures/prebuild/addon-check.cjs prints for a sound build: every call worked and
 * agreed with Node's own fs and crypto, on a 128 KiB file (whole pages of every size tested).
 */
export function addonCheckResult(arch: string, pageSize: number) {
  return {
    abi: EXPECTED_ABI,
    arch,
    pageSize,
    pages: 131072 / pageSize,
    mapped: { size: 131072, byteLength: 131072, reused: false },
    latin1: true,
    utf16: true,
    copied: [0, 0],
    // All pages: the file was just written, so the page cache holds it.
    resident: 131072 / pageSize,
    statMany: { same: true, kinds: [1, 2, 0] },
    statAhead: { same: true, status: [1, 1, 1, 0, 1] },
    fstatInto: { ok: true, same: true },
    verifyAhead: { good: [1, 1, 0, 1], bad: [1, 2, 0, 1] },
    liveBefore: 1,
    detached: true,
  };
}

/** argv that runs the arm64 `node` under qemu-user, with the kernel page size qemu reports to it. */
export function qemuNode(env: Arm64, pageSize?: number): string[] {
  return [env.qemu, '-L', env.sysroot, ...(pageSize ? ['-p', String(pageSize)] : []), env.node];
}

/** A shell script that runs the arm64 Node (for `codeblob pack --node`, which spawns it). */
export function qemuNodeScript(env: Arm64, file: string, pageSize?: number): string {
  writeFileSync(file, `#!/bin/sh\nexec ${qemuNode(env, pageSize).map((a) => `'${a}'`).join(' ')} "$@"\n`, { mode: 0o755 });
  return file;
}

/**
 * Installs codeblob into `app/node_modules/codeblob` the way the npm package lays it out: no
 * build/ directory, so node-gyp-build can only find `prebuildsDir` (its subset `tuples`, e.g.
 * only linux-arm64, when given). dist/ is copied, not linked, because Node resolves links to
 * their target and the addon would then be looked for beside the repository's build/.
 */
export function installCopy(app: string, prebuildsDir: string | undefined, tuples?: string[]): string {
  const pkg = join(app, 'node_modules', 'codeblob');
  mkdirSync(pkg, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(pkg, 'package.json'), JSON.stringify(manifest, null, 2));
  cpSync(join(repo, 'dist'), join(pkg, 'dist'), { recursive: true });
  if (prebuildsDir) {
    for (const tuple of tuples ?? ['linux-x64', 'linux-arm64']) cpSync(join(prebuildsDir, tuple), join(pkg, 'prebuilds', tuple), { recursive: true });
  }
  // The package's dependencies (node-gyp-build, msgpackr, acorn) from the repository's install.
  symlinkSync(join(repo, 'node_modules'), join(pkg, 'node_modules'));
  return pkg;
}
