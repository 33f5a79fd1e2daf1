/**
 * The hashes of the format: SHA-256 (header checksum, index hash, whole-file digest) and the
 * per-entry hash, SHA-256 truncated to 128 bits. Computed by node:crypto, loaded on first use,
 * unless a faster one was provided (`provideSha256`): the store gives the addon's, so a worker
 * that checks its blob never loads node:crypto (half a MiB of heap in every process).
 */
import { createRequire } from 'node:module';

type Sha256 = (bytes: Uint8Array) => Buffer;

let implementation: Sha256 | undefined;

function fromCrypto(): Sha256 {
  const crypto = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');
  // crypto.hash (Node 20.12+, 21.7+) skips the Hash object: a few microseconds less per call.
  const oneShot = (crypto as unknown as { hash?: (algorithm: string, data: Uint8Array, encoding: 'buffer') => Buffer }).hash;
  return oneShot ? (bytes) => oneShot('sha256', bytes, 'buffer') : (bytes) => crypto.createHash('sha256').update(bytes).digest();
}

/**
 * Uses `fn` for SHA-256 from now on, for the whole process's copy of this module. `fn` returns
 * undefined when it cannot hash (then node:crypto does).
 */
export function provideSha256(fn: (bytes: Uint8Array) => Buffer | undefined): void {
  if (implementation !== undefined && implementation.name === 'provided') return;
  let fallback: Sha256 | undefined;
  implementation = function provided(bytes) {
    return fn(bytes) ?? (fallback ??= fromCrypto())(bytes);
  };
}

/** SHA-256 of the bytes. */
export function sha256(bytes: Uint8Array): Buffer {
  return (implementation ??= fromCrypto())(bytes);
}

/** Length of an entry hash: SHA-256 truncated to 128 bits, kept small because 3 per entry. */
export const ENTRY_HASH_BYTES = 16;

/** The per-entry hash (source, cache, original file content): SHA-256 truncated to 128 bits. */
export function entryHash(bytes: Uint8Array): Buffer {
  return sha256(bytes).subarray(0, ENTRY_HASH_BYTES);
}
