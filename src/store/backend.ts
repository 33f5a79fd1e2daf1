/**
 * The two ways a blob's bytes reach JS: `mmap` (one shared, read-only mapping per process,
 * zero-copy strings) and `read` (the file read into private memory; same behaviour, no
 * sharing). The store above does not care which one it has.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { codeblobError } from '../errors.js';
import { provideSha256 } from '../format/index.js';
import { native, nativeUnavailableReason, type Advice, type NativeBinding } from '../native/binding.js';
import type { JobStatus } from '../native/jobs.js';

export type BackendName = 'mmap' | 'read';

export interface FileFacts {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  /** Change time in nanoseconds, exactly: any write to the file changes it. */
  ctimeNs: bigint;
  mode: number;
  uid: number;
}

export interface Backend {
  readonly name: BackendName;
  /** The whole file. Valid until `release()`; read-only by contract. */
  readonly bytes: Uint8Array;
  readonly file: FileFacts;
  /** This process already had the file mapped (another store or worker thread). */
  readonly reused: boolean;
  /** The addon behind an mmap backend (undefined for read). */
  readonly binding: NativeBinding | undefined;
  /** A string over [offset, offset+length) bytes; `copied` says whether its chars were copied. */
  string(offset: number, charCount: number, twoByte: boolean): { value: string; copied: boolean };
  advise(offset: number, length: number, advice: Advice): void;
  /**
   * Hash-checks sections on a background thread (see the addon's verifyAhead), shared with the
   * other threads of the process that ask the same of the same file `identity`; undefined when
   * the backend cannot (read backend, no SHA-256 in this Node, no thread).
   */
  verifyAhead(ranges: Float64Array, expected: Uint8Array, identity: string): Uint8Array | undefined;
  /** This store wants no more from that thread (it stops once no store sharing it does). */
  stopVerifyAhead(job: JobStatus): void;
  /** Resident bytes of the range, or undefined when the backend cannot tell. */
  residentBytes(offset: number, length: number): number | undefined;
  release(): void;
}

class MmapBackend implements Backend {
  readonly name = 'mmap';
  readonly bytes: Uint8Array;
  readonly file: FileFacts;
  readonly reused: boolean;
  readonly binding: NativeBinding;
  readonly #n: NativeBinding;
  readonly #buffer: ArrayBuffer;
  readonly #out = new Uint8Array(1);
  readonly #pageSize: number;

  constructor(n: NativeBinding, path: string) {
    this.#n = n;
    this.binding = n;
    const m = n.map(path);
    this.#buffer = m.buffer;
    this.bytes = new Uint8Array(m.buffer);
    this.reused = m.reused;
    this.file = {
      dev: m.dev,
      ino: m.ino,
      size: m.size,
      mtimeMs: m.mtimeMs,
      ctimeNs: BigInt(m.ctimeSec) * 1_000_000_000n + BigInt(m.ctimeNsec),
      mode: m.mode,
      uid: m.uid,
    };
    this.#pageSize = n.pageSize;
  }

  string(offset: number, charCount: number, twoByte: boolean) {
    if (charCount === 0) return { value: '', copied: false };
    const value = this.#n.externalString(this.#buffer, offset, charCount, twoByte, this.#out);
    return { value, copied: this.#out[0] === 1 };
  }

  advise(offset: number, length: number, advice: Advice) {
    this.#n.madvise(this.#buffer, offset, length, advice);
  }

  verifyAhead(ranges: Float64Array, expected: Uint8Array, identity: string) {
    try {
      return this.#n.verifyAhead(this.#buffer, ranges, expected, identity) ?? undefined;
    } catch {
      // No memory, or this runtime refuses external buffers: check in the loading thread.
      return undefined;
    }
  }

  stopVerifyAhead(job: JobStatus) {
    this.#n.verifyAheadStop(job.bytes);
  }

  residentBytes(offset: number, length: number) {
    // Whole pages are resident; never report more than the range itself. A kernel (or emulator)
    // whose mincore refuses the range leaves it unknown: a figure is never worth a throw.
    try {
      return Math.min(length, this.#n.residentPages(this.#buffer, offset, length) * this.#pageSize);
    } catch {
      return undefined;
    }
  }

  release() {
    this.#n.release(this.#buffer);
  }
}

class ReadBackend implements Backend {
  readonly name = 'read';
  bytes: Uint8Array;
  readonly file: FileFacts;
  readonly reused = false;
  readonly binding = undefined;

  constructor(path: string) {
    const fd = openSync(path, 'r');
    try {
      const st = fstatSync(fd, { bigint: true });
      this.file = {
        dev: Number(st.dev),
        ino: Number(st.ino),
        size: Number(st.size),
        mtimeMs: Number(st.mtimeNs) / 1e6,
        ctimeNs: st.ctimeNs,
        mode: Number(st.mode),
        uid: Number(st.uid),
      };
      // Read exactly the size fstat saw from the same descriptor: one consistent generation.
      const size = this.file.size;
      const bytes = Buffer.allocUnsafe(size);
      let done = 0;
      while (done < size) {
        const n = readSync(fd, bytes, done, size - done, done);
        if (n === 0) break;
        done += n;
      }
      this.bytes = bytes.subarray(0, done);
    } finally {
      closeSync(fd);
    }
  }

  string(offset: number, charCount: number, twoByte: boolean) {
    const b = Buffer.from(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    const value = twoByte
      ? b.toString('utf16le', offset, offset + charCount * 2)
      : b.toString('latin1', offset, offset + charCount);
    return { value, copied: true };
  }

  advise() {}

  verifyAhead() {
    return undefined;
  }

  stopVerifyAhead() {}

  residentBytes() {
    return undefined;
  }

  release() {
    this.bytes = new Uint8Array(0);
  }
}

export type BackendChoice = 'auto' | BackendName;

/**
 * Opens the file with the chosen backend. `auto` uses mmap when the addon loads (and the
 * runtime allows external buffers), else read, and says why in `fallbackReason`.
 * CODEBLOB_BACKEND=read|mmap overrides `auto`.
 */
export function openBackend(path: string, choice: BackendChoice): { backend: Backend; fallbackReason?: string } {
  const env = process.env.CODEBLOB_BACKEND;
  if (choice === 'auto' && (env === 'read' || env === 'mmap')) choice = env;
  if (choice === 'read') return { backend: new ReadBackend(path) };
  const n = native();
  if (!n) {
    const reason = nativeUnavailableReason() ?? 'native addon unavailable';
    if (choice === 'mmap') throw codeblobError('ERR_CODEBLOB_NATIVE_UNAVAILABLE', reason);
    return { backend: new ReadBackend(path), fallbackReason: reason };
  }
  // The addon hashes too: a store that has it never loads node:crypto.
  provideSha256((bytes) => {
    const out = Buffer.allocUnsafe(32);
    return n.sha256(bytes, out) ? out : undefined;
  });
  try {
    return { backend: new MmapBackend(n, path) };
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'EINVAL' && (error as { syscall?: string }).syscall === 'mmap') {
      // An empty file cannot be mapped; it is not a blob either, whatever the backend.
      throw codeblobError('ERR_CODEBLOB_BAD_FORMAT', `${path} is empty`);
    }
    if (choice === 'auto' && (code === 'ERR_CODEBLOB_NO_EXTERNAL_BUFFERS' || code === 'ERR_CODEBLOB_NAPI')) {
      return { backend: new ReadBackend(path), fallbackReason: (error as Error).message };
    }
    throw error;
  }
}
