/**
 * The one place that loads the native addon (native-bindings/, its contract in codeblob.h),
 * translates its absence into a reason and its errors into codeblob's (errors.ts). Everything
 * else asks `native()`; `undefined` means "use the read backend". The background jobs' status
 * bytes are read through jobs.ts.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brandNativeError, type CodeblobErrorCode } from '../errors.js';

export interface MapResult {
  buffer: ArrayBuffer;
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  /** Change time, exactly (seconds and nanoseconds): any write to the file changes it. */
  ctimeSec: number;
  ctimeNsec: number;
  mode: number;
  uid: number;
  reused: boolean;
}

export type Advice = 'normal' | 'random' | 'sequential' | 'willneed' | 'dontneed';

/** The addon's exports; each is documented in native-bindings/codeblob.h. */
export interface NativeBinding {
  abi: number;
  /** sysconf(_SC_PAGESIZE). */
  pageSize: number;
  map(path: string): MapResult;
  release(buffer: ArrayBuffer): void;
  /** out[0] becomes 1 when Node copied the characters instead of keeping them external. */
  externalString(buffer: ArrayBuffer, byteOffset: number, charCount: number, twoByte: boolean, out: Uint8Array): string;
  madvise(buffer: ArrayBuffer, byteOffset: number, length: number, advice: Advice): void;
  residentPages(buffer: ArrayBuffer, byteOffset: number, length: number): number;
  liveMappings(): number;
  /**
   * stat() of each NUL-separated path: 3 numbers per path, kind (0 absent, 1 file, 2 directory,
   * 3 other), mtimeMs (as Node computes it), size.
   */
  statMany(paths: string): Float64Array;
  /**
   * statMany on a background thread: the same 3 numbers per path, filled in path order. The
   * returned array's buffer goes on with one status byte per path (0 pending, 1 done, 3 taken:
   * written by the caller when it stats the path itself, and the thread then skips it), a
   * cancel byte and a byte that becomes 1 once the thread has ended (jobs.ts reads them).
   */
  statAhead(paths: string): Float64Array;
  /** fstat of an open fd into out[0] (size) and out[1] (mtimeMs); false when fstat fails. */
  fstatInto(fd: number, out: Float64Array): boolean;
  /**
   * Starts hashing sections of the mapping on a background thread (SHA-256, compared with the
   * expected prefix): `ranges` holds (offset, length) pairs, `expected` the same number of
   * equal-width hash prefixes. Returns one status byte per section (0 pending, 1 sound, 2
   * mismatch, 3 taken by the caller: the thread skips it), then a cancel byte the caller sets
   * to stop the thread, then a byte that becomes 1 once the thread has ended; null when this
   * Node has no SHA-256 to call.
   */
  verifyAhead(buffer: ArrayBuffer, ranges: Float64Array, expected: Uint8Array, identity?: string): Uint8Array | null;
  /**
   * The caller wants no more from the thread behind a verifyAhead() array. Calls that asked the
   * same check of the same mapping with the same `identity` (the file as the caller opened it)
   * share one thread and one status array; the thread stops once none of them wants more (or
   * all their arrays are collected). Writing the cancel byte stops it for all at once.
   */
  verifyAheadStop(status: Uint8Array): void;
  /** The code cache of a function compiled by vm.compileFunction, made now (packing, Node 20). */
  functionCache(fn: Function): Buffer | null;
  /** v8.cachedDataVersionTag(), without loading node:v8; null when the binary does not export it. */
  cacheTag(): number | null;
  /** SHA-256 of data into out[0..32); false when this process has no SHA256() to call. */
  sha256(data: Uint8Array, out: Uint8Array): boolean;
}

/** The addon's ABI this code is written against (CODEBLOB_NATIVE_ABI in codeblob.h). */
export const EXPECTED_ABI = 7;
const packageRoot = fileURLToPath(new URL('../../', import.meta.url));

type Libc = 'glibc' | 'musl';

let loaded: { binding?: NativeBinding; reason?: string } | undefined;

/**
 * The C library this process runs on, from the loader mapped into it (exact, and cheap: read only
 * when the addon failed to load). node-gyp-build guesses musl from /etc/alpine-release alone.
 */
function runningLibc(): Libc | undefined {
  try {
    const maps = readFileSync('/proc/self/maps', 'latin1');
    if (/\/(ld-musl-[^/\s]+\.so\.1|libc\.musl-[^/\s]+\.so\.1)$/m.test(maps)) return 'musl';
    if (/\/(libc\.so\.6|libc-2\.\d+\.so)$/m.test(maps)) return 'glibc';
  } catch {
    // no /proc: say nothing rather than guess
  }
  return undefined;
}

/** The prebuilds the package carries, as "linux-x64 (glibc, musl)". */
function carried(): string {
  const dir = join(packageRoot, 'prebuilds');
  const list: string[] = [];
  for (const tuple of safeReaddir(dir).sort()) {
    const tags = safeReaddir(join(dir, tuple)).map((f) => /\.(glibc|musl)\.node$/.exec(f)?.[1] ?? (f.endsWith('.node') ? 'any libc' : undefined)).filter(Boolean);
    if (tags.length > 0) list.push(`${tuple} (${tags.sort().join(', ')})`);
  }
  return list.length > 0 ? list.join(', ') : 'none';
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function checked(binding: NativeBinding, file: string): { binding?: NativeBinding; reason?: string } {
  if (binding.abi !== EXPECTED_ABI) {
    return { reason: `the native build ${file} has ABI ${binding.abi}, this code expects ${EXPECTED_ABI}: rebuild it (\`cd node_modules/codeblob && npx node-gyp rebuild\`)` };
  }
  return { binding };
}

/** Where the package's prebuild for this arch and a libc is (whether it is there or not). */
function prebuildFor(libc: Libc | undefined): string | undefined {
  return libc && join(packageRoot, 'prebuilds', `linux-${process.arch}`, `codeblob.${libc}.node`);
}

function load(): { binding?: NativeBinding; reason?: string } {
  if (process.platform !== 'linux') {
    return { reason: `the mmap backend supports Linux only (this is ${process.platform}); reading blobs into memory instead (backend 'read')` };
  }
  const require = createRequire(import.meta.url);
  // The two places a build is, tried directly: a local node-gyp build, then the prebuild for this
  // arch and the libc this process runs on. Every worker loads this; node-gyp-build (and the
  // node:os it loads) would cost each 0.15 MiB more. Anything else goes the long way below.
  for (let k = 0; k < 2; k++) {
    // The libc (read from /proc/self/maps) is looked up only when there is no local build.
    const direct = k === 0 ? join(packageRoot, 'build/Release/codeblob.node') : prebuildFor(runningLibc());
    if (!direct || !existsSync(direct)) continue;
    try {
      const result = checked(require(direct) as NativeBinding, direct);
      if (result.binding) return result;
    } catch {
      // Not loadable here (another arch, another libc): node-gyp-build's search says why.
    }
  }
  // node-gyp-build takes build/Release first (a local node-gyp build), then the prebuild whose
  // tags fit this platform, arch and libc.
  let file: string | undefined;
  let failure: string;
  try {
    const nodeGypBuild = require('node-gyp-build') as { resolve(dir: string): string };
    file = nodeGypBuild.resolve(packageRoot);
    return checked(require(file) as NativeBinding, file);
  } catch (error) {
    failure = (error as Error).message.split('\n')[0]!;
  }
  const libc = runningLibc();
  const fit = prebuildFor(libc);
  if (fit && fit !== file && existsSync(fit)) {
    // What node-gyp-build picked does not load here: the other libc's build (it takes every
    // system without /etc/alpine-release for glibc) or a build/ made on another machine. The
    // prebuild for this arch and the libc this process really runs on may.
    try {
      return checked(require(fit) as NativeBinding, fit);
    } catch (error) {
      failure += `; ${fit}: ${(error as Error).message.split('\n')[0]}`;
    }
  }
  const target = `linux-${process.arch}${libc ? ` with ${libc}` : ''}`;
  const what = file
    ? `the native addon ${file} does not load on ${target} (${failure})`
    : `no prebuilt native addon fits ${target} (the package has: ${carried()}${failure.startsWith('No native build was found') ? '' : `; ${failure}`})`;
  return {
    reason:
      `${what}; reading blobs into memory instead (backend 'read': nothing is shared between processes). ` +
      'To build the addon here (needs python3, make and a C compiler' + (libc === 'musl' ? ', e.g. `apk add python3 make gcc musl-dev`' : '') + '): ' +
      '`cd node_modules/codeblob && npx node-gyp rebuild`',
  };
}

/** The codes the addon throws itself (codeblob.h), each in errors.ts. */
const NATIVE_CODES: ReadonlySet<string> = new Set(['ERR_CODEBLOB_NATIVE_ARGUMENT', 'ERR_CODEBLOB_NAPI', 'ERR_CODEBLOB_NO_EXTERNAL_BUFFERS']);

/** The addon with its own errors branded as codeblob's (in the error table); system errors stay as they are, shaped like Node's fs errors. */
function translated(raw: NativeBinding): NativeBinding {
  const out: Record<string, unknown> = { ...raw };
  for (const [name, value] of Object.entries(raw)) {
    if (typeof value !== 'function') continue;
    out[name] = function nativeCall(...args: unknown[]) {
      try {
        return (value as (...a: unknown[]) => unknown).apply(raw, args);
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (typeof code === 'string' && NATIVE_CODES.has(code)) throw brandNativeError(error as Error & { code: CodeblobErrorCode });
        throw error;
      }
    };
  }
  return out as unknown as NativeBinding;
}

/** The addon, or undefined with `nativeUnavailableReason()` saying why. Loaded once. */
export function native(): NativeBinding | undefined {
  loaded ??= withTranslation(load());
  return loaded.binding;
}

function withTranslation(result: { binding?: NativeBinding; reason?: string }): { binding?: NativeBinding; reason?: string } {
  return result.binding ? { binding: translated(result.binding) } : result;
}

export function nativeUnavailableReason(): string | undefined {
  loaded ??= withTranslation(load());
  return loaded.reason;
}
