/**
 * msgpack for codeblob's own formats (the index and the resolution table). Encoding, at pack
 * time, is msgpackr's, loaded when first needed. Decoding, in every worker, is the short decoder
 * below, for the part of msgpack the formats use (FORMAT.md, section 3): nil, booleans, integers,
 * floats, str, bin and arrays; a map decodes as a `Map` (which every format check then refuses),
 * an extension type is an error. Why not msgpackr here too: its main entry loads a native
 * extension that starts libuv's thread pool (four threads, each with a stack and often a malloc
 * arena) in a process plain Node starts with none, and even its pure-JS unpacker is a 45 KB
 * module that every worker would compile and keep (+0.6 MiB, Node 20), for a decode that takes
 * these hundred lines. It also keeps no reference to what it decoded (msgpackr keeps its last
 * input in module state until the next decode: the index copy, kept alive in every process).
 */
import { createRequire } from 'node:module';
import type { Options, Packr } from 'msgpackr';

/** An encoder, msgpackr loaded on first use (packing only). */
export function encoder(options: Options): (value: unknown) => Buffer {
  let packr: Packr | undefined;
  return (value) => {
    packr ??= new ((createRequire(import.meta.url)('msgpackr') as { Packr: typeof Packr }).Packr)(options);
    return packr.pack(value);
  };
}

class Reader {
  at = 0;
  readonly #b: Buffer;
  readonly #view: DataView;

  constructor(bytes: Uint8Array) {
    this.#b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get done(): boolean {
    return this.at === this.#b.length;
  }

  #need(n: number): number {
    const at = this.at;
    if (at + n > this.#b.length) throw new Error(`unexpected end of data at byte ${at}`);
    this.at = at + n;
    return at;
  }

  /** A 64-bit integer beyond 2^53 decodes as a bigint, which every field check then refuses. */
  #uint(width: 1 | 2 | 4 | 8): number | bigint {
    const at = this.#need(width);
    const v = this.#view;
    if (width === 1) return v.getUint8(at);
    if (width === 2) return v.getUint16(at);
    if (width === 4) return v.getUint32(at);
    const n = v.getBigUint64(at);
    return n > BigInt(Number.MAX_SAFE_INTEGER) ? n : Number(n);
  }

  /** A length: a 1-, 2- or 4-byte unsigned integer. */
  #length(width: 1 | 2 | 4): number {
    return this.#uint(width) as number;
  }

  #int(width: 1 | 2 | 4 | 8): number | bigint {
    const at = this.#need(width);
    const v = this.#view;
    if (width === 1) return v.getInt8(at);
    if (width === 2) return v.getInt16(at);
    if (width === 4) return v.getInt32(at);
    const n = v.getBigInt64(at);
    return n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER) ? n : Number(n);
  }

  #str(length: number): string {
    const at = this.#need(length);
    return this.#b.toString('utf8', at, at + length);
  }

  /** A view of the bytes (callers copy what they keep). */
  #bin(length: number): Buffer {
    const at = this.#need(length);
    return this.#b.subarray(at, at + length);
  }

  #array(length: number): unknown[] {
    const out = new Array<unknown>(length);
    for (let i = 0; i < length; i++) out[i] = this.value();
    return out;
  }

  #map(length: number): Map<unknown, unknown> {
    const out = new Map<unknown, unknown>();
    for (let i = 0; i < length; i++) out.set(this.value(), this.value());
    return out;
  }

  value(): unknown {
    const t = this.#length(1);
    if (t <= 0x7f) return t;
    if (t >= 0xe0) return t - 0x100;
    if (t >= 0xa0 && t <= 0xbf) return this.#str(t & 0x1f);
    if (t >= 0x90 && t <= 0x9f) return this.#array(t & 0x0f);
    if (t >= 0x80 && t <= 0x8f) return this.#map(t & 0x0f);
    switch (t) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.#bin(this.#length(1));
      case 0xc5: return this.#bin(this.#length(2));
      case 0xc6: return this.#bin(this.#length(4));
      case 0xca: return this.#view.getFloat32(this.#need(4));
      case 0xcb: return this.#view.getFloat64(this.#need(8));
      case 0xcc: return this.#uint(1);
      case 0xcd: return this.#uint(2);
      case 0xce: return this.#uint(4);
      case 0xcf: return this.#uint(8);
      case 0xd0: return this.#int(1);
      case 0xd1: return this.#int(2);
      case 0xd2: return this.#int(4);
      case 0xd3: return this.#int(8);
      case 0xd9: return this.#str(this.#length(1));
      case 0xda: return this.#str(this.#length(2));
      case 0xdb: return this.#str(this.#length(4));
      case 0xdc: return this.#array(this.#length(2));
      case 0xdd: return this.#array(this.#length(4));
      case 0xde: return this.#map(this.#length(2));
      case 0xdf: return this.#map(this.#length(4));
      default: throw new Error(`type byte 0x${t.toString(16)} at byte ${this.at - 1} is not used by codeblob's formats`);
    }
  }
}

/** Decodes one msgpack value that must take exactly `bytes`; bin values are views of `bytes`. */
export function decode(bytes: Uint8Array): unknown {
  const r = new Reader(bytes);
  const value = r.value();
  if (!r.done) throw new Error(`${bytes.byteLength - r.at} bytes after the value`);
  return value;
}
