import * as crypto from 'node:crypto';

type OneShot = (algorithm: string, data: Uint8Array, outputEncoding: 'buffer') => Buffer;
// crypto.hash (Node 20.12+, 21.7+) skips the Hash object: a few microseconds less per call,
// which adds up over two checks per module at startup.
const oneShot = (crypto as unknown as { hash?: OneShot }).hash;

/** SHA-256 of the bytes (the header checksum, the index hash and the whole-file digest). */
export function sha256(bytes: Uint8Array): Buffer {
  return oneShot ? oneShot('sha256', bytes, 'buffer') : crypto.createHash('sha256').update(bytes).digest();
}

/** Length of an entry hash: SHA-256 truncated to 128 bits, kept small because 3 per entry. */
export const ENTRY_HASH_BYTES = 16;

/** The per-entry hash (source, cache, original file content): SHA-256 truncated to 128 bits. */
export function entryHash(bytes: Uint8Array): Buffer {
  return sha256(bytes).subarray(0, ENTRY_HASH_BYTES);
}
