/**
 * The one place that loads the native addon and translates its absence into a reason.
 * Everything else asks `native()`; `undefined` means "use the read backend".
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

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

export interface NativeBinding {
  abi: number;
  map(path: string): MapResult;
  release(buffer: ArrayBuffer): void;
  externalLatin1(buffer: ArrayBuffer, byteOffset: number, length: number, out: Uint8Array): string;
  externalUtf16(buffer: ArrayBuffer, byteOffset: number, charCount: number, out: Uint8Array): string;
  madvise(buffer: ArrayBuffer, byteOffset: number, length: number, advice: Advice): void;
  residentPages(buffer: ArrayBuffer, byteOffset: number, length: number): number;
  pageSize(): number;
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
   * cancel byte and a byte that becomes 1 once the thread has ended (`statAheadStatus`).
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
}

const EXPECTED_ABI = 4;
const packageRoot = fileURLToPath(new URL('../../', import.meta.url));

let loaded: { binding?: NativeBinding; reason?: string } | undefined;

function load(): { binding?: NativeBinding; reason?: string } {
  if (process.platform !== 'linux') {
    return { reason: `the mmap backend supports Linux only (this is ${process.platform})` };
  }
  try {
    const require = createRequire(import.meta.url);
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
    const binding = nodeGypBuild(packageRoot) as NativeBinding;
    if (binding.abi !== EXPECTED_ABI) {
      return { reason: `the native build has ABI ${binding.abi}, this code expects ${EXPECTED_ABI}: rebuild it with \`npm rebuild codeblob\`` };
    }
    return { binding };
  } catch (error) {
    const message = (error as Error).message.split('\n')[0];
    return {
      reason:
        `no usable native build for ${process.platform}-${process.arch} (${message}); ` +
        'reading blobs into memory instead. To build one: `cd node_modules/codeblob && npx node-gyp rebuild`',
    };
  }
}

/** The addon, or undefined with `nativeUnavailableReason()` saying why. Loaded once. */
export function native(): NativeBinding | undefined {
  loaded ??= load();
  return loaded.binding;
}

export function nativeUnavailableReason(): string | undefined {
  loaded ??= load();
  return loaded.reason;
}

/** statAhead's status bytes: the row is complete; the caller stats the path itself (the thread skips it). */
export const STAT_DONE = 1;
export const STAT_TAKEN = 3;
/** The kind statMany/statAhead give a regular file. */
export const KIND_FILE = 1;

/** The status bytes after statAhead's rows: one per path, then the cancel and finished bytes. */
export function statAheadStatus(rows: Float64Array): Uint8Array {
  const count = rows.length / 3;
  return new Uint8Array(rows.buffer, rows.byteOffset + rows.byteLength, count + 2);
}
