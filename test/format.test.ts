/**
 * The on-disk format: layout round trips and every validation rule of the reader.
 *
 * Corrupt files are crafted from a valid blob, and the header is re-sealed (checksum, and index
 * hash when the index changes) so each test reaches the rule it aims at instead of stopping at
 * an earlier integrity check. Every rejection is matched on its `code` *and* on the rule named
 * in its message.
 */
import { arch, platform, version as nodeVersion } from 'node:process';
import { cachedDataVersionTag, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Packr, Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { codeblobError, errors, isCodeblobError } from '../src/errors.js';
import { expectCode } from './helpers/expect-code.js';
import {
  CJS_PREFIX,
  CJS_SUFFIX,
  ENTRY_HASH_BYTES,
  FORMAT_VERSION,
  HEADER_SIZE,
  MAGIC,
  GUARD_ABSENT,
  GUARD_DIR,
  GUARD_FILE,
  FACT_ABSENT,
  FACT_DIR,
  FACT_FILE,
  FACT_UNRECORDED,
  decodeRecheck,
  encodeRecheck,
  recheckOf,
  type Recheck,
  checkSections,
  compatibility,
  decodeResolutions,
  encodeResolutions,
  decodeHeader,
  decodeIndex,
  encodeHeader,
  encodeIndex,
  entryHash,
  EntryTable,
  INDEX_TAG,
  plainEntry,
  type DecodedIndex,
  fitsLatin1,
  isValidKey,
  layoutBlob,
  readMeta,
  sha256,
  type BlobPlan,
  type Entry,
  type Header,
  type SectionInput,
} from '../src/format/index.js';

// ---- fixtures ---------------------------------------------------------------------------

const TAG = cachedDataVersionTag();

/** Deterministic pseudo-random bytes (a code cache stand-in). */
function bytesOf(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function input(key: string, kind: SectionInput['kind'], body: { text?: string; bytes?: Uint8Array; cache?: Uint8Array }, order = 0): SectionInput {
  const content = body.bytes ?? Buffer.from(body.text ?? '', 'utf8');
  return {
    key,
    kind,
    ...body,
    fileSize: content.byteLength,
    mtimeMs: 1_700_000_000_123.5 + order,
    contentHash: entryHash(content),
    order,
  };
}

const TEXT = {
  latin1: "'use strict';\nmodule.exports = { greeting: 'café', n: 1 };\n",
  utf16: "exports.dash = 'a — b';\n",
  shebang: "#!/usr/bin/env node\nconsole.log('cli');\n",
  esm: 'export default 42;\n',
  esmUtf16: "export const smile = '😀';\n",
  json: '{"name":"app","version":"1.0.0"}\n',
};
const ASSET = bytesOf(300, 7);
const CACHE_A = bytesOf(200, 1);
const CACHE_DASH = bytesOf(123, 2);

function sampleEntries(): SectionInput[] {
  return [
    input('lib/a.js', 'cjs', { text: TEXT.latin1, cache: CACHE_A }, 0),
    input('lib/dash.js', 'cjs', { text: TEXT.utf16, cache: CACHE_DASH }, 1),
    input('bin/cli.js', 'cjs', { text: TEXT.shebang }, 2),
    input('esm/m.mjs', 'esm', { text: TEXT.esm }, 3),
    input('esm/smile.mjs', 'esm', { text: TEXT.esmUtf16 }, 4),
    input('package.json', 'json', { text: TEXT.json }, -1),
    input('img/logo.bin', 'asset', { bytes: ASSET }, -1),
  ];
}

function plan(over: Partial<BlobPlan> = {}): BlobPlan {
  return {
    root: 'app',
    entries: sampleEntries(),
    pageSize: 4096,
    alignment: 4096,
    v8Tag: TAG,
    nodeVersion,
    arch,
    platform,
    toolVersion: '0.1.0',
    ...over,
  };
}

const build = (p: BlobPlan = plan()) => Buffer.concat(layoutBlob(p).chunks);

function byKey(entries: readonly Entry[], key: string): Entry {
  const e = entries.find((x) => x.key === key);
  if (!e) throw new Error(`no entry ${key}`);
  return e;
}

/** The text a section holds, decoded with the entry's encoding. */
function sectionText(blob: Buffer, e: Entry): string {
  return blob.toString(e.encoding === 'utf16le' ? 'utf16le' : 'latin1', e.sourceOffset, e.sourceOffset + e.sourceLength);
}


// ---- tampering helpers ------------------------------------------------------------------

const HEADER_HASHED = 224;
const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: false });

/** Recomputes the header checksum after a raw byte patch. */
function reseal(blob: Buffer): Buffer {
  sha256(blob.subarray(0, HEADER_HASHED)).copy(blob, HEADER_HASHED);
  return blob;
}

function headerOf(blob: Buffer): Header {
  return decodeHeader(blob, blob.byteLength);
}

/** A copy with header fields replaced (and a valid checksum). */
function withHeader(blob: Buffer, patch: Partial<Header>): Buffer {
  const out = Buffer.from(blob);
  encodeHeader({ ...headerOf(blob), ...patch }).copy(out, 0);
  return out;
}

/** A copy with one raw u32 of the header replaced, re-sealed. */
function withU32(blob: Buffer, at: number, value: number): Buffer {
  const out = Buffer.from(blob);
  out.writeUInt32LE(value, at);
  return reseal(out);
}

/** The raw index: `[tag, root, count, keys, numbers, small, hashes, resolutions | nil, tracedRoot?]`. */
type RawIndex = unknown[];
/** Element positions in the raw index (see index-codec.ts). */
const I = { tag: 0, root: 1, count: 2, keys: 3, numbers: 4, small: 5, hashes: 6, resolutions: 7, tracedRoot: 8 } as const;
/** Float64 fields of an entry in the `numbers` column, in order (6 per entry). */
const NUM = { chars: 0, so: 1, co: 2, cl: 3, size: 4, mtime: 5 } as const;
const NUMBERS = 6;
/** Int32 fields of an entry in the `small` column, in order (2 per entry). */
const SMALL = { order: 0, meta: 1 } as const;
/** 16-byte hashes of an entry in the `hashes` column, in order (48 bytes per entry). */
const HASH = { sh: 0, ch: 1, content: 2 } as const;
const HASH_SLOT = 3 * ENTRY_HASH_BYTES;
/** Kind and encoding codes, and flag bits, of `meta` = kind | encoding << 2 | flags << 4. */
const KIND = { cjs: 0, esm: 1, json: 2, asset: 3 } as const;
const ENC = { latin1: 0, utf16le: 1, binary: 2 } as const;
const FLAG = { shebang: 1, typescript: 2, requiredOnly: 4 } as const;

/**
 * A copy whose index is replaced by `mutate(decoded raw index)` (or raw bytes), with the
 * header's index length and hash updated so decodeIndex/checkSections are actually reached.
 */
function withIndex(blob: Buffer, mutate: (raw: RawIndex) => unknown, headerPatch: Partial<Header> = {}): Buffer {
  const h = headerOf(blob);
  const raw = unpackr.unpack(blob.subarray(h.indexOffset, h.indexOffset + h.indexLength)) as RawIndex;
  const next = mutate(raw);
  const bytes = next instanceof Uint8Array ? Buffer.from(next) : packr.pack(next === undefined ? raw : next);
  const firstSection = Math.min(...readMeta(blob).index.entries.map((e) => e.sourceOffset));
  if (h.indexOffset + bytes.length > firstSection) throw new Error('crafted index does not fit in front of the data');
  const out = Buffer.from(blob);
  out.fill(0, h.indexOffset, h.indexOffset + h.indexLength);
  bytes.copy(out, h.indexOffset);
  encodeHeader({ ...h, indexLength: bytes.length, indexHash: sha256(bytes), ...headerPatch }).copy(out, 0);
  return out;
}

/** The keys of a raw index, in its order. */
const keysOf = (raw: RawIndex) => (raw[I.keys] as string).split('\0');

/** Position of an entry in the (sorted) raw index. */
function positionOf(raw: RawIndex, key: string): number {
  const i = keysOf(raw).indexOf(key);
  if (i < 0) throw new Error(`no entry ${key}`);
  return i;
}

/** A writable copy of one binary column of a raw index, put back in its place. */
function columnOf(raw: RawIndex, at: number): Buffer {
  const copy = Buffer.from(raw[at] as Uint8Array);
  raw[at] = copy;
  return copy;
}

type EntryPatch = Partial<
  Record<keyof typeof NUM, number> & Record<keyof typeof SMALL | 'kind' | 'enc' | 'flags', number> & Record<keyof typeof HASH, Uint8Array> & { key: string }
>;

/**
 * Patches one entry of a raw index in place, column by column: numbers as float64 LE at
 * (i × 6 + field) × 8, order and meta as int32 LE at (i × 2 + field) × 4 (`kind`, `enc` and
 * `flags` replace their bits of meta), hashes at i × 48 + 16 × which, the key in the keys string.
 */
function patchEntry(raw: RawIndex, key: string, patch: EntryPatch): void {
  const i = positionOf(raw, key);
  const numbers = columnOf(raw, I.numbers);
  const small = columnOf(raw, I.small);
  const hashes = columnOf(raw, I.hashes);
  for (const [name, value] of Object.entries(patch)) {
    if (name in NUM) numbers.writeDoubleLE(value as number, (i * NUMBERS + NUM[name as keyof typeof NUM]) * 8);
    else if (name in SMALL) small.writeInt32LE((value as number) | 0, (i * 2 + SMALL[name as keyof typeof SMALL]) * 4);
    else if (name in HASH) {
      const h = value as Uint8Array;
      if (h.byteLength !== ENTRY_HASH_BYTES) throw new Error('a hash slot holds 16 bytes');
      hashes.set(h, i * HASH_SLOT + HASH[name as keyof typeof HASH] * ENTRY_HASH_BYTES);
    } else if (name === 'kind' || name === 'enc' || name === 'flags') {
      const at = (i * 2 + SMALL.meta) * 4;
      const meta = small.readInt32LE(at);
      const v = value as number;
      const next = name === 'kind' ? (meta & ~3) | v : name === 'enc' ? (meta & ~(3 << 2)) | (v << 2) : (meta & 15) | (v << 4);
      small.writeInt32LE(next | 0, at);
    } else if (name === 'key') {
      const keys = keysOf(raw);
      keys[i] = value as string;
      raw[I.keys] = keys.join('\0');
    } else throw new Error(`no field ${name}`);
  }
}

/** A copy with fields of one entry replaced in the index's columns. */
function withEntry(blob: Buffer, key: string, patch: EntryPatch): Buffer {
  return withIndex(blob, (raw) => {
    patchEntry(raw, key, patch);
    return raw;
  });
}

/** The meta int32 of an entry: kind | encoding << 2 | flags << 4. */
function metaOf(raw: RawIndex, key: string): number {
  return (raw[I.small] as Buffer).readInt32LE((positionOf(raw, key) * 2 + SMALL.meta) * 4);
}

/** The raw index of a blob (msgpackr's decoding, not the codec's). */
function rawIndexOf(blob: Buffer): RawIndex {
  const h = headerOf(blob);
  return unpackr.unpack(blob.subarray(h.indexOffset, h.indexOffset + h.indexLength)) as RawIndex;
}

/** Bytes from the source's start to the next section's start (or the end of the file). */
function roomAfterSource(blob: Buffer, key: string): number {
  const { entries } = readMeta(blob).index;
  const e = byKey(entries, key);
  const starts = entries.flatMap((x) => (x.cacheLength > 0 ? [x.sourceOffset, x.cacheOffset] : [x.sourceOffset]));
  return Math.min(blob.byteLength, ...starts.filter((s) => s > e.sourceOffset)) - e.sourceOffset;
}

/** A well-formed entry for decodeIndex/encodeIndex round trips. */
function entryOf(key: string, over: Partial<Entry> = {}): Entry {
  const kind = over.kind ?? 'esm';
  const chars = over.chars ?? 3;
  const encoding = over.encoding ?? (kind === 'asset' ? 'binary' : 'latin1');
  const [prefixChars, suffixChars] = kind === 'cjs' ? [CJS_PREFIX.length, CJS_SUFFIX.length] : [0, 0];
  return {
    key, kind, encoding, chars, prefixChars, suffixChars, shebang: false, typescript: false, requiredOnly: false,
    sourceOffset: 0, sourceLength: (prefixChars + chars + suffixChars) * (encoding === 'utf16le' ? 2 : 1), sourceHash: Buffer.alloc(16, 1),
    cacheOffset: 0, cacheLength: 0, cacheHash: null, fileSize: 5, mtimeMs: 1, contentHash: Buffer.alloc(16, 2), order: 0,
    ...over,
  };
}

// ---- layout round trips -----------------------------------------------------------------

describe('layoutBlob + readMeta round trip', () => {
  it('reads back every header field of the plan', () => {
    const blob = build(plan({ v8Tag: 0xfedcba98, toolVersion: '9.8.7-beta.1' }));
    const { header } = readMeta(blob);
    expect(header).toMatchObject({
      formatVersion: FORMAT_VERSION,
      pageSize: 4096,
      alignment: 4096,
      flags: 1,
      v8Tag: 0xfedcba98,
      entryCount: 7,
      fileSize: blob.byteLength,
      indexOffset: HEADER_SIZE,
      nodeVersion,
      arch,
      platform,
      toolVersion: '9.8.7-beta.1',
    });
    expect(header.indexHash).toEqual(sha256(blob.subarray(HEADER_SIZE, HEADER_SIZE + header.indexLength)));
    expect(blob.toString('latin1', 0, 8)).toBe(MAGIC);
  });

  it('reads back the root and every entry field of the inputs', () => {
    const inputs = sampleEntries();
    const blob = build(plan({ entries: inputs }));
    const { index } = readMeta(blob);
    expect(index.root).toBe('app');
    for (const input of inputs) {
      const e = byKey(index.entries, input.key);
      expect(e.kind).toBe(input.kind);
      expect(e.fileSize).toBe(input.fileSize);
      expect(e.mtimeMs).toBe(input.mtimeMs);
      expect(e.contentHash).toEqual(input.contentHash);
      expect(e.order).toBe(input.order);
      expect(e.chars).toBe(input.kind === 'asset' ? input.bytes!.byteLength : input.text!.length);
      expect(e.sourceHash).toEqual(entryHash(blob.subarray(e.sourceOffset, e.sourceOffset + e.sourceLength)));
    }
  });

  it('sorts entries by key whatever the input order', () => {
    const { index } = readMeta(build(plan({ entries: sampleEntries().reverse() })));
    const keys = index.entries.map((e) => e.key);
    expect(keys).toEqual([...keys].sort());
  });

  it('lays sections out hot first: loaded modules in load order, then the rest by key', () => {
    const { index } = readMeta(build(plan({ entries: sampleEntries().reverse() })));
    const inFileOrder = [...index.entries].sort((a, b) => a.sourceOffset - b.sourceOffset).map((e) => e.key);
    expect(inFileOrder).toEqual(['lib/a.js', 'lib/dash.js', 'bin/cli.js', 'esm/m.mjs', 'esm/smile.mjs', 'img/logo.bin', 'package.json']);
    const { stats } = layoutBlob(plan());
    const hot = index.entries.filter((e) => e.order >= 0);
    const hotEnd = Math.max(...hot.map((e) => Math.max(e.sourceOffset + e.sourceLength, e.cacheOffset + e.cacheLength)));
    expect(stats.hotBytes).toBe(hotEnd - Math.min(...hot.map((e) => e.sourceOffset)));
  });

  it('carries a resolution table inside the index, byte for byte', () => {
    const table = encodeResolutions({
      env: 'env',
      paths: ['', 'lib', 'node_modules', '../up'],
      guards: [{ path: 2, kind: GUARD_DIR, mtimeMs: 1.5, size: 0 }, { path: 3, kind: GUARD_ABSENT, mtimeMs: 0, size: 0 }],
      answers: [{ dir: 0, request: './lib/a', file: 1, guards: [0, 1] }, { dir: 1, request: 'x', file: 2, guards: [] }],
    });
    const { index } = readMeta(build(plan({ resolutions: table })));
    expect(Buffer.from(index.resolutions!).equals(table)).toBe(true);
    const d = decodeResolutions(index.resolutions!);
    expect(d).toMatchObject({ env: 'env', paths: ['', 'lib', 'node_modules', '../up'], requests: ['./lib/a', 'x'] });
    expect([...d.answers]).toEqual([0, 1, 0, 2, 1, 2, 2, 0]);
    expect([...d.guardLists]).toEqual([0, 1]);
    expect([...d.guards]).toEqual([2, GUARD_DIR, 1.5, 0, 3, GUARD_ABSENT, 0, 0]);
    expect(readMeta(build()).index.resolutions).toBeUndefined();
  });

  it('refuses a malformed resolution table with a typed error', () => {
    const packr = new Packr({ useRecords: false });
    const u32 = (...n: number[]) => Buffer.from(new Uint32Array(n).buffer);
    const good = ['codeblob-resolve/2', 'env', 'a\0b', 'r', u32(0, 1, 0, 0), u32(), Buffer.alloc(0)];
    expect(decodeResolutions(packr.pack(good)).requests).toEqual(['r']);
    const cases: unknown[] = [
      ['codeblob-resolve/1', ...good.slice(1)],
      good.slice(0, 6),
      [...good.slice(0, 4), Buffer.alloc(3), ...good.slice(5)],
      [...good.slice(0, 6), Buffer.alloc(12)],
      [...good.slice(0, 3), 'r\0s', ...good.slice(4)],
      [...good.slice(0, 2), 7, ...good.slice(3)],
    ];
    for (const c of cases) expectCode(() => decodeResolutions(packr.pack(c)), 'ERR_CODEBLOB_BAD_FORMAT');
    expectCode(() => decodeResolutions(Buffer.from([0xc1])), 'ERR_CODEBLOB_BAD_FORMAT');
  });

  it('carries a recheck section at the end of a version-3 table, found without copying it, decoded on demand', () => {
    const hash = entryHash(Buffer.from('{"name":"x"}'));
    const recheck: Recheck = {
      paths: ['packages/real-x', 'packages/ü'],
      listings: [
        { guard: 0, names: [{ name: 'x', states: [FACT_DIR, FACT_ABSENT, FACT_ABSENT, FACT_ABSENT], reals: [4] }, { name: 'y', states: [FACT_ABSENT, FACT_FILE, FACT_UNRECORDED, FACT_ABSENT] }] },
        { guard: 3, names: [{ name: 'package.json', states: [FACT_FILE, FACT_UNRECORDED, FACT_UNRECORDED, FACT_UNRECORDED], reals: [undefined] }] },
      ],
      contents: [{ guard: 2, hash }],
    };
    const table = encodeResolutions({
      env: 'env',
      paths: ['', 'node_modules', 'node_modules/x/package.json', 'node_modules/x'],
      guards: [
        { path: 1, kind: GUARD_DIR, mtimeMs: 1.5, size: 0 }, { path: 0, kind: GUARD_ABSENT, mtimeMs: 0, size: 0 },
        { path: 2, kind: GUARD_FILE, mtimeMs: 2.5, size: 12 }, { path: 3, kind: GUARD_DIR, mtimeMs: 3.5, size: 0 },
      ],
      answers: [{ dir: 0, request: 'x', file: 2, guards: [0, 1, 2, 3] }],
      recheck,
    });
    const d = decodeResolutions(table);
    expect(d.recheckAt).toBeDefined();
    expect(d.recheckCopy).toBeUndefined();
    const r = recheckOf(d, table)!;
    expect(r.paths).toEqual(['packages/real-x', 'packages/ü']);
    expect([...r.listings]).toEqual([0, 0, 2, 3, 2, 1]);
    expect(r.names).toEqual(['x', 'y', 'package.json']);
    expect([...r.masks]).toEqual([FACT_DIR, FACT_FILE << 2 | FACT_UNRECORDED << 4, FACT_FILE | 0b111111 << 2]);
    expect([...r.reals]).toEqual([0, 4]); // name 0, suffix 0 → path 4 (the section's first path)
    expect([...r.contentGuards]).toEqual([2]);
    expect(Buffer.from(r.contentHashes).equals(hash)).toBe(true);
    // The round trip is exact, and a table without a recheck gets an empty one.
    expect(encodeRecheck(recheck).equals(Buffer.from(table.subarray(d.recheckAt![0], d.recheckAt![0] + d.recheckAt![1])))).toBe(true);
    const plain = decodeResolutions(encodeResolutions({ env: 'e', paths: [''], guards: [], answers: [] }));
    expect(recheckOf(plain, encodeResolutions({ env: 'e', paths: [''], guards: [], answers: [] }))).toMatchObject({ listings: new Uint32Array(0), names: [] });
  });

  it('reads a version-2 table (no recheck section) as before', () => {
    const packr = new Packr({ useRecords: false });
    const u32 = (...n: number[]) => Buffer.from(new Uint32Array(n).buffer);
    const v2 = decodeResolutions(packr.pack(['codeblob-resolve/2', 'env', 'a\0b', 'r', u32(0, 1, 0, 0), u32(), Buffer.alloc(0)]));
    expect(v2.requests).toEqual(['r']);
    expect([v2.recheckAt, v2.recheckCopy]).toEqual([undefined, undefined]);
    expect(recheckOf(v2, Buffer.alloc(0))).toBeUndefined();
    // Version 3 needs its eighth element, binary; version 2 must not have one.
    expectCode(() => decodeResolutions(packr.pack(['codeblob-resolve/3', 'env', 'a', 'r', u32(0, 0, 0, 0), u32(), Buffer.alloc(0)])), 'ERR_CODEBLOB_BAD_FORMAT');
    expectCode(() => decodeResolutions(packr.pack(['codeblob-resolve/3', 'env', 'a', 'r', u32(0, 0, 0, 0), u32(), Buffer.alloc(0), 'x'])), 'ERR_CODEBLOB_BAD_FORMAT');
    expectCode(() => decodeResolutions(packr.pack(['codeblob-resolve/2', 'env', 'a', 'r', u32(0, 0, 0, 0), u32(), Buffer.alloc(0), Buffer.alloc(0)])), 'ERR_CODEBLOB_BAD_FORMAT');
  });

  it('refuses a malformed recheck section with a typed error', () => {
    const good = encodeRecheck({ paths: ['p'], listings: [{ guard: 1, names: [{ name: 'a', states: [FACT_ABSENT, FACT_ABSENT, FACT_ABSENT, FACT_ABSENT] }] }], contents: [{ guard: 0, hash: Buffer.alloc(16, 7) }] });
    expect(decodeRecheck(good).names).toEqual(['a']);
    const cases: Array<[string, Buffer]> = [
      ['short', good.subarray(0, 20)],
      ['magic', Buffer.concat([Buffer.from('XXXX'), good.subarray(4)])],
      ['version', (() => { const b = Buffer.from(good); b.writeUInt32LE(2, 4); return b; })()],
      ['truncated', good.subarray(0, good.length - 1)],
      ['appended', Buffer.concat([good, Buffer.alloc(1)])],
      ['count', (() => { const b = Buffer.from(good); b.writeUInt32LE(0xffffffff, 12); return b; })()],
      ['names', (() => { const b = Buffer.from(good); b.writeUInt32LE(2, 12); return b; })()],
    ];
    for (const [what, bytes] of cases) expect(() => decodeRecheck(bytes), what).toThrow(/recheck section/);
    for (const [, bytes] of cases) expectCode(() => decodeRecheck(bytes), 'ERR_CODEBLOB_BAD_FORMAT');
    expectCode(() => encodeRecheck({ paths: [], listings: [{ guard: 0, names: [{ name: 'a/b', states: [0, 0, 0, 0] }] }], contents: [] }), 'ERR_CODEBLOB_INVALID_OPTION');
  });

  it('wraps a CommonJS source in CJS_PREFIX … CJS_SUFFIX inside its section', () => {
    const blob = build();
    const e = byKey(readMeta(blob).index.entries, 'lib/a.js');
    expect(e).toMatchObject({ prefixChars: CJS_PREFIX.length, suffixChars: CJS_SUFFIX.length, shebang: false });
    expect(sectionText(blob, e)).toBe(CJS_PREFIX + TEXT.latin1 + CJS_SUFFIX);
  });

  it('stores a Latin-1 CommonJS source as latin1, one byte per char (é included)', () => {
    const blob = build();
    const e = byKey(readMeta(blob).index.entries, 'lib/a.js');
    expect(e.encoding).toBe('latin1');
    expect(e.sourceLength).toBe(CJS_PREFIX.length + TEXT.latin1.length + CJS_SUFFIX.length);
  });

  it('stores a CommonJS source with "—" as utf16le, two bytes per char', () => {
    const blob = build();
    const e = byKey(readMeta(blob).index.entries, 'lib/dash.js');
    expect(e.encoding).toBe('utf16le');
    expect(e.sourceLength).toBe(2 * (CJS_PREFIX.length + TEXT.utf16.length + CJS_SUFFIX.length));
    expect(sectionText(blob, e)).toBe(CJS_PREFIX + TEXT.utf16 + CJS_SUFFIX);
  });

  it('turns a leading "#!" into "//" inside the wrapper and flags the entry', () => {
    const blob = build();
    const e = byKey(readMeta(blob).index.entries, 'bin/cli.js');
    expect(e.shebang).toBe(true);
    expect(e.chars).toBe(TEXT.shebang.length);
    expect(sectionText(blob, e)).toBe(CJS_PREFIX + '//' + TEXT.shebang.slice(2) + CJS_SUFFIX);
  });

  it('does not treat "#!" specially in an ES module', () => {
    const blob = build(plan({ entries: [input('x.mjs', 'esm', { text: '#!/bin/sh\nexport {}' })] }));
    const e = readMeta(blob).index.entries[0]!;
    expect(e.shebang).toBe(false);
    expect(sectionText(blob, e)).toBe('#!/bin/sh\nexport {}');
  });

  it('stores ES modules and JSON unwrapped, choosing the encoding per module', () => {
    const blob = build();
    const { entries } = readMeta(blob).index;
    const m = byKey(entries, 'esm/m.mjs');
    const smile = byKey(entries, 'esm/smile.mjs');
    const json = byKey(entries, 'package.json');
    expect([m.encoding, smile.encoding, json.encoding]).toEqual(['latin1', 'utf16le', 'latin1']);
    for (const e of [m, smile, json]) expect([e.prefixChars, e.suffixChars, e.shebang]).toEqual([0, 0, false]);
    expect(sectionText(blob, m)).toBe(TEXT.esm);
    expect(sectionText(blob, smile)).toBe(TEXT.esmUtf16);
    expect(smile.chars).toBe(TEXT.esmUtf16.length); // UTF-16 code units, the surrogate pair counts 2
    expect([m.requiredOnly, smile.requiredOnly]).toEqual([false, false]);
    const flagged = readMeta(build(plan({ entries: sampleEntries().map((e) => (e.key === 'esm/m.mjs' ? { ...e, requiredOnly: true } : e)) }))).index.entries;
    expect([byKey(flagged, 'esm/m.mjs').requiredOnly, byKey(flagged, 'esm/smile.mjs').requiredOnly]).toEqual([true, false]);
    expect(sectionText(blob, json)).toBe(TEXT.json);
  });

  it('stores an asset as its raw bytes with the binary encoding', () => {
    const blob = build();
    const e = byKey(readMeta(blob).index.entries, 'img/logo.bin');
    expect(e.encoding).toBe('binary');
    expect(e.sourceLength).toBe(ASSET.byteLength);
    expect(new Uint8Array(blob.subarray(e.sourceOffset, e.sourceOffset + e.sourceLength))).toEqual(ASSET);
  });

  it('stores a given cache byte for byte, with its hash, and none for entries without one', () => {
    const blob = build();
    const { entries } = readMeta(blob).index;
    const a = byKey(entries, 'lib/a.js');
    expect(a.cacheLength).toBe(CACHE_A.byteLength);
    expect(new Uint8Array(blob.subarray(a.cacheOffset, a.cacheOffset + a.cacheLength))).toEqual(CACHE_A);
    expect(a.cacheHash).toEqual(entryHash(CACHE_A));
    const cli = byKey(entries, 'bin/cli.js');
    expect([cli.cacheOffset, cli.cacheLength, cli.cacheHash]).toEqual([0, 0, null]);
  });

  it('sets the caches flag only when some entry has a cache', () => {
    const noCache = sampleEntries().map(({ cache: _c, ...rest }) => rest);
    expect(readMeta(build(plan({ entries: noCache }))).header.flags).toBe(0);
    expect(readMeta(build()).header.flags).toBe(1);
  });

  it('treats an empty cache as no cache', () => {
    const blob = build(plan({ entries: [input('a.js', 'cjs', { text: 'x', cache: new Uint8Array(0) })] }));
    const { header, index } = readMeta(blob);
    expect(index.entries[0]!.cacheLength).toBe(0);
    expect(header.flags).toBe(0);
  });

  it.each([
    [4096, 4096],
    [4096, 8],
    [16384, 16384],
    [65536, 16],
  ])('page size %i, alignment %i: every section starts on a multiple of the alignment', (pageSize, alignment) => {
    const blob = build(plan({ pageSize, alignment }));
    const { header, index } = readMeta(blob);
    expect([header.pageSize, header.alignment]).toEqual([pageSize, alignment]);
    for (const e of index.entries) {
      expect(e.sourceOffset % alignment, e.key).toBe(0);
      if (e.cacheLength > 0) expect(e.cacheOffset % Math.max(8, alignment), e.key).toBe(0);
      expect(e.sourceOffset).toBeGreaterThanOrEqual(HEADER_SIZE + header.indexLength);
    }
  });

  it('packs dense (8-byte) blobs smaller than page-aligned ones', () => {
    const dense = layoutBlob(plan({ alignment: 8 }));
    const paged = layoutBlob(plan({ alignment: 4096 }));
    expect(dense.stats.fileSize).toBeLessThan(paged.stats.fileSize);
    expect(dense.stats.paddingBytes).toBeLessThan(paged.stats.paddingBytes);
  });

  it('is deterministic: the same plan gives byte-identical files, whatever the input order', () => {
    const a = build();
    const b = build();
    const c = build(plan({ entries: sampleEntries().reverse() }));
    expect(a.equals(b)).toBe(true);
    expect(a.equals(c)).toBe(true);
  });

  it('reports stats consistent with the file', () => {
    const { chunks, header, stats } = layoutBlob(plan());
    const blob = Buffer.concat(chunks);
    const { index } = readMeta(blob);
    const sourceBytes = index.entries.reduce((n, e) => n + e.sourceLength, 0);
    const cacheBytes = index.entries.reduce((n, e) => n + e.cacheLength, 0);
    expect(stats).toEqual({
      entries: 7,
      latin1: 4,
      utf16: 2,
      binary: 1,
      sourceBytes,
      cacheBytes,
      paddingBytes: blob.byteLength - HEADER_SIZE - header.indexLength - sourceBytes - cacheBytes,
      indexBytes: header.indexLength,
      fileSize: blob.byteLength,
      resolutionBytes: 0,
      hotBytes: stats.hotBytes,
    });
    expect(cacheBytes).toBe(CACHE_A.byteLength + CACHE_DASH.byteLength);
    expect(header.fileSize).toBe(blob.byteLength);
  });

  it('fills the padding with zeros', () => {
    const blob = build(plan({ alignment: 4096 }));
    const { header, index } = readMeta(blob);
    const used = new Uint8Array(blob.byteLength);
    used.fill(1, 0, HEADER_SIZE + header.indexLength);
    for (const e of index.entries) {
      used.fill(1, e.sourceOffset, e.sourceOffset + e.sourceLength);
      used.fill(1, e.cacheOffset, e.cacheOffset + e.cacheLength);
    }
    let padding = 0;
    for (let i = 0; i < blob.byteLength; i++) {
      if (used[i] === 0) {
        padding++;
        expect(blob[i]).toBe(0);
      }
    }
    expect(padding).toBe(layoutBlob(plan({ alignment: 4096 })).stats.paddingBytes);
  });

  it('grows the data start when the index does not fit the first guess', () => {
    const entries = Array.from({ length: 150 }, (_, i) =>
      input(`node_modules/some-rather-long-package-name/lib/deeply/nested/file-${i}.js`, 'cjs', { text: `module.exports = ${i};` }, i));
    const { chunks, header } = layoutBlob(plan({ entries, alignment: 8 }));
    const blob = Buffer.concat(chunks);
    const { index } = readMeta(blob);
    expect(index.entries).toHaveLength(150);
    expect(Math.min(...index.entries.map((e) => e.sourceOffset))).toBeGreaterThanOrEqual(HEADER_SIZE + header.indexLength);
  });

  it('lays out an empty blob', () => {
    const blob = build(plan({ entries: [] }));
    const { header, index } = readMeta(blob);
    expect(header.entryCount).toBe(0);
    expect(index.entries).toEqual([]);
  });

  it('accepts an empty ES module', () => {
    const blob = build(plan({ entries: [input('empty.mjs', 'esm', { text: '' }), input('z.mjs', 'esm', { text: 'x' })] }));
    const e = byKey(readMeta(blob).index.entries, 'empty.mjs');
    expect([e.chars, e.sourceLength]).toEqual([0, 0]);
  });

  it('reads a blob that sits at a non-zero offset of a larger buffer', () => {
    const blob = build();
    const host = Buffer.alloc(blob.byteLength + 24);
    blob.copy(host, 8);
    const view = new Uint8Array(host.buffer, host.byteOffset + 8, blob.byteLength);
    expect(readMeta(view).header.fileSize).toBe(blob.byteLength);
  });

  it('fitsLatin1 separates one-byte text from the rest', () => {
    expect(fitsLatin1('café\u00ff')).toBe(true);
    expect(fitsLatin1('—')).toBe(false);
    expect(fitsLatin1('\u0100')).toBe(false);
  });
});

// ---- header rules -----------------------------------------------------------------------

describe('decodeHeader / readMeta: header rules', () => {
  const good = build();
  const bad = (blob: Uint8Array, rule: RegExp) => expectCode(() => readMeta(blob), 'ERR_CODEBLOB_BAD_FORMAT', rule);

  it('accepts the untouched blob', () => {
    expect(() => readMeta(good)).not.toThrow();
  });

  it('rejects a file shorter than the header', () => {
    bad(good.subarray(0, HEADER_SIZE - 1), /shorter than the 256-byte header/);
    bad(new Uint8Array(0), /shorter than the 256-byte header/);
  });

  it('rejects a bad magic', () => {
    const b = Buffer.from(good);
    b.write('NOTABLOB', 0, 'latin1');
    bad(reseal(b), /bad magic/);
  });

  it('rejects a header whose checksum does not match', () => {
    const b = Buffer.from(good);
    b[28]! ^= 1; // one bit of v8Tag, not re-sealed
    bad(b, /header checksum/);
  });

  it('rejects a corrupted checksum itself', () => {
    const b = Buffer.from(good);
    b[HEADER_HASHED + 5]! ^= 0xff;
    bad(b, /header checksum/);
  });

  it('rejects another format version with ERR_CODEBLOB_UNSUPPORTED_VERSION', () => {
    expect(FORMAT_VERSION).toBe(2);
    expect(headerOf(good).formatVersion).toBe(2);
    expectCode(() => readMeta(withHeader(good, { formatVersion: 3 })), 'ERR_CODEBLOB_UNSUPPORTED_VERSION', /^Unsupported codeblob format version: 3 /);
    // Version 1 (an index of tuples): refused before its index is read, with what to do about it.
    expectCode(
      () => readMeta(withHeader(good, { formatVersion: 1 })),
      'ERR_CODEBLOB_UNSUPPORTED_VERSION',
      /^Unsupported codeblob format version: 1 \(this codeblob reads version 2: pack the app again with it\)$/,
    );
    expectCode(() => readMeta(withHeader(good, { formatVersion: 0 })), 'ERR_CODEBLOB_UNSUPPORTED_VERSION', /^Unsupported codeblob format version: 0 /);
    expectCode(() => readMeta(withHeader(good, { formatVersion: 0xffffffff })), 'ERR_CODEBLOB_UNSUPPORTED_VERSION', /version: 4294967295 /);
  });

  it('rejects a header size other than 256', () => {
    bad(withU32(good, 12, 512), /header size 512/);
  });

  it.each([3000, 4095, 6144, 2048, 1024, 131072, 0])('rejects page size %i', (pageSize) => {
    // alignment 8, so a small page size fails its own rule, not the alignment's
    bad(withHeader(good, { pageSize, alignment: 8 }), new RegExp(`: page size ${pageSize} is not a power of two`));
  });

  it.each([4096, 16384, 65536])('accepts page size %i', (pageSize) => {
    expect(readMeta(withHeader(good, { pageSize })).header.pageSize).toBe(pageSize);
  });

  it.each([0, 4, 12, 3000, 8192])('rejects alignment %i with page size 4096', (alignment) => {
    bad(withHeader(good, { alignment }), new RegExp(`: alignment ${alignment} is not a power of two`));
  });

  it.each([2, 4, 0x80000000, 3])('rejects unknown header flags %i', (flags) => {
    bad(withHeader(good, { flags }), /unknown header flags/);
  });

  it('rejects a truncated file (fileSize mismatch)', () => {
    bad(good.subarray(0, good.byteLength - 1), /truncated or appended/);
  });

  it('rejects a file with bytes appended (fileSize mismatch)', () => {
    bad(Buffer.concat([good, Buffer.alloc(1)]), /truncated or appended/);
  });

  it('rejects a fileSize beyond the safe integer range', () => {
    const b = Buffer.from(good);
    b.writeBigUInt64LE(1n << 60n, 40);
    bad(reseal(b), /fileSize is out of range/);
  });

  it('rejects an index that does not start right after the header', () => {
    bad(withHeader(good, { indexOffset: HEADER_SIZE + 8 }), /index range/);
  });

  it('rejects an empty index', () => {
    bad(withHeader(good, { indexLength: 0 }), /index range/);
  });

  it('rejects an index running past the end of the file', () => {
    bad(withHeader(good, { indexLength: good.byteLength }), /index range/);
  });

  it('rejects a non-printable text field', () => {
    const b = Buffer.from(good);
    b[112] = 0x07; // arch
    bad(reseal(b), /arch is not printable ASCII/);
  });

  it('rejects bytes after the NUL terminator of a text field', () => {
    const b = Buffer.from(good);
    b[96 + 15] = 0x41; // nodeVersion is shorter than 15 chars: this sits after its NUL
    bad(reseal(b), /nodeVersion is not printable ASCII/);
  });

  it('reads a 16-char text field that has no NUL terminator', () => {
    const b = withHeader(good, { toolVersion: '1234567890abcdef' });
    expect(readMeta(b).header.toolVersion).toBe('1234567890abcdef');
  });

  it('rejects an index whose hash does not match', () => {
    const b = Buffer.from(good);
    b[HEADER_SIZE + 3]! ^= 1;
    bad(b, /index hash mismatch/);
  });

  it('encodeHeader refuses text fields it could not store', () => {
    const h = headerOf(good);
    expect(() => encodeHeader({ ...h, nodeVersion: 'v20.20.2-something-long' })).toThrow(RangeError);
    expect(() => encodeHeader({ ...h, arch: 'x\u00e9' })).toThrow(RangeError);
    expect(() => encodeHeader({ ...h, indexHash: Buffer.alloc(16) })).toThrow(RangeError);
  });
});

// ---- index rules ------------------------------------------------------------------------

describe('decoding keeps nothing alive', () => {
  // msgpackr keeps the last buffer it decoded (a DataView in module state) until its next decode;
  // the codecs decode one more byte so a decoded index or table does not stay in every process.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  setFlagsFromString('--no-expose-gc'); // a changed flag changes V8's cache tag, which other tests here compare
  const arrayBuffers = () => {
    gc();
    gc();
    return process.memoryUsage().arrayBuffers;
  };

  // Whatever an earlier test decoded last is dropped first, so only what is measured counts.
  const resetMsgpackr = () => new Unpackr().unpack(Uint8Array.of(0xc0));

  it('readMeta keeps no copy of the index, and says where the resolution table is', () => {
    const table = Buffer.alloc(6 << 20, 7);
    const blob = build({ ...plan(), resolutions: table });
    resetMsgpackr();
    const before = arrayBuffers();
    let meta: ReturnType<typeof readMeta> | undefined = readMeta(blob);
    const { header, resolutionsAt } = meta;
    const entries = meta.index.entries;
    meta = undefined; // its index.resolutions is a view into the copy; the store keeps resolutionsAt instead
    const after = arrayBuffers();
    expect(entries).toHaveLength(7);
    expect(after - before).toBeLessThan(1 << 20); // not the 6 MiB index copy
    expect(resolutionsAt!.offset).toBeGreaterThanOrEqual(header.indexOffset);
    expect(Buffer.from(blob.subarray(resolutionsAt!.offset, resolutionsAt!.offset + resolutionsAt!.length)).equals(table)).toBe(true);
  });

  it('decodeResolutions keeps no reference to the bytes it decoded', () => {
    const bytes = encodeResolutions({ env: 'e', paths: ['a'.repeat(4 << 20)], guards: [], answers: [] });
    resetMsgpackr();
    const before = arrayBuffers();
    let copy: Buffer | undefined = Buffer.from(bytes);
    decodeResolutions(copy);
    copy = undefined;
    expect(arrayBuffers() - before).toBeLessThan(1 << 20);
  });
});

describe('decodeIndex / readMeta: index rules', () => {
  const good = build();
  const bad = (blob: Uint8Array, rule: RegExp) => expectCode(() => readMeta(blob), 'ERR_CODEBLOB_BAD_FORMAT', rule);
  const n = 7; // entries of the sample blob
  const entryOfGood = (key: string) => byKey(readMeta(good).index.entries, key);

  it('re-encoding the untouched index is accepted (the crafting helper is sound)', () => {
    const b = withIndex(good, (raw) => raw);
    expect(b.equals(good)).toBe(true);
    expect(readMeta(b).index.entries).toHaveLength(7);
    // A patch that writes back what is there changes nothing either.
    const e = entryOfGood('lib/a.js');
    const raw = rawIndexOf(good);
    const same = withEntry(good, 'lib/a.js', {
      key: e.key, chars: e.chars, so: e.sourceOffset, co: e.cacheOffset, cl: e.cacheLength, size: e.fileSize, mtime: e.mtimeMs,
      order: e.order, meta: metaOf(raw, 'lib/a.js'), sh: e.sourceHash, ch: e.cacheHash!, content: e.contentHash,
    });
    expect(same.equals(good)).toBe(true);
  });

  it('lays the index out as columns: keys joined by NUL in order, then numbers, small ints and hashes per entry', () => {
    const raw = rawIndexOf(good);
    const { header, index } = readMeta(good);
    expect(raw).toHaveLength(8);
    expect(raw.slice(0, 3)).toEqual([INDEX_TAG, 'app', header.entryCount]);
    expect(INDEX_TAG).toBe('codeblob-index/2');
    expect(raw[I.resolutions]).toBeNull();
    const keys = index.entries.map((e) => e.key);
    expect(raw[I.keys]).toBe(keys.join('\0'));
    const numbers = raw[I.numbers] as Buffer;
    const small = raw[I.small] as Buffer;
    const hashes = raw[I.hashes] as Buffer;
    expect([numbers.byteLength, small.byteLength, hashes.byteLength]).toEqual([n * 6 * 8, n * 2 * 4, n * 48]);
    index.entries.forEach((e, i) => {
      const num = (k: number) => numbers.readDoubleLE((i * 6 + k) * 8);
      expect([num(0), num(1), num(2), num(3), num(4), num(5)], e.key).toEqual([e.chars, e.sourceOffset, e.cacheOffset, e.cacheLength, e.fileSize, e.mtimeMs]);
      const flags = (e.shebang ? 1 : 0) | (e.typescript ? 2 : 0) | (e.requiredOnly ? 4 : 0);
      expect([small.readInt32LE(i * 8), small.readInt32LE(i * 8 + 4)], e.key).toEqual([e.order, KIND[e.kind] | (ENC[e.encoding] << 2) | (flags << 4)]);
      expect(hashes.subarray(i * 48, i * 48 + 16).equals(e.sourceHash), e.key).toBe(true);
      expect(hashes.subarray(i * 48 + 16, i * 48 + 32).equals(e.cacheHash ?? Buffer.alloc(16)), e.key).toBe(true); // zeros without a cache
      expect(hashes.subarray(i * 48 + 32, i * 48 + 48).equals(e.contentHash), e.key).toBe(true);
    });
    // Each field is read from its own place: a patch of one changes that one only.
    const before = plainEntry(entryOfGood('esm/m.mjs'));
    const patched = plainEntry(byKey(readMeta(withEntry(good, 'esm/m.mjs', { size: 77, mtime: 5.25, order: 9, content: Buffer.alloc(16, 0xab) })).index.entries, 'esm/m.mjs'));
    expect(patched).toEqual({ ...before, fileSize: 77, mtimeMs: 5.25, order: 9, contentHash: Buffer.alloc(16, 0xab) });
  });

  it('rejects an index that is not valid msgpack', () => {
    bad(withIndex(good, () => Buffer.from([0x93, 0xa1])), /not valid msgpack/);
  });

  it('rejects an index with trailing bytes', () => {
    bad(withIndex(good, (raw) => Buffer.concat([packr.pack(raw), Buffer.from([0xc0])])), /not valid msgpack/);
  });

  it('rejects a wrong tag, the version-1 tag included, in either layout', () => {
    bad(withIndex(good, (raw) => ['codeblob-index/3', ...raw.slice(1)]), /index tag/);
    bad(withIndex(good, (raw) => ['codeblob-index/1', ...raw.slice(1)]), /index tag/);
    bad(withIndex(good, (raw) => [7, ...raw.slice(1)]), /index tag/);
    // A version-1 index ([tag, root, tuples]) under either tag.
    bad(withIndex(good, (raw) => ['codeblob-index/1', raw[I.root], []]), /index tag/);
    bad(withIndex(good, (raw) => [INDEX_TAG, raw[I.root], []]), /index tag/);
  });

  it('rejects an index that is not an 8- or 9-element array, or whose 8th is not binary or nil', () => {
    for (const length of [0, 1, 3, 7]) bad(withIndex(good, (raw) => raw.slice(0, length)), /index tag/);
    bad(withIndex(good, (raw) => [...raw, '/srv/app', 0]), /index tag/);
    bad(withIndex(good, () => 'codeblob-index/2'), /index tag/);
    bad(withIndex(good, () => null), /index tag/);
    bad(withIndex(good, (raw) => [...raw, 0]), /traced root/);
    for (const table of [0, 'x', false, [1]]) bad(withIndex(good, (raw) => [...raw.slice(0, 7), table]), /resolution table is not binary/);
    // The 9-element form is sound with or without a table.
    expect(readMeta(withIndex(good, (raw) => [...raw, '/srv/app'])).index.tracedRoot).toBe('/srv/app');
    const withTable = readMeta(withIndex(good, (raw) => [...raw.slice(0, 7), Buffer.from([1, 2]), '/srv/app'])).index;
    expect([Buffer.from(withTable.resolutions!).equals(Buffer.from([1, 2])), withTable.tracedRoot]).toEqual([true, '/srv/app']);
  });

  it('rejects a traced root that is not an absolute path without NUL', () => {
    for (const root of ['srv/app', '', 7, null, '/srv/\0app', Buffer.from('/srv')]) bad(withIndex(good, (raw) => [...raw, root]), /traced root is not an absolute path/);
  });

  it('rejects a root that is not a string or holds NUL', () => {
    for (const root of [5, null, Buffer.from('app'), ['app'], 'a\0b']) bad(withIndex(good, (raw) => [raw[0], root, ...raw.slice(2)]), /index root is not a string/);
  });

  it('rejects an entry count different from the header', () => {
    bad(withIndex(good, (raw) => raw, { entryCount: 6 }), /index has 7 entries, header says 6/);
    bad(withIndex(good, (raw) => raw, { entryCount: 8 }), /index has 7 entries, header says 8/);
    bad(withIndex(good, (raw) => [...raw.slice(0, 2), 6, ...raw.slice(3)]), /index has 6 entries, header says 7/);
    bad(withIndex(good, (raw) => [...raw.slice(0, 2), null, ...raw.slice(3)]), /index has null entries, header says 7/);
    bad(withIndex(good, (raw) => [...raw.slice(0, 2), '7', ...raw.slice(3)]), /index has 7 entries, header says 7/); // a string is not the count
    bad(withIndex(good, (raw) => [...raw.slice(0, 2), 7.5, ...raw.slice(3)]), /index has 7.5 entries, header says 7/);
  });

  it('rejects keys that are not one string', () => {
    for (const keys of [42, null, Buffer.from('a'), ['bin/cli.js'], true]) bad(withIndex(good, (raw) => [...raw.slice(0, 3), keys, ...raw.slice(4)]), /index keys are not a string/);
  });

  it('rejects a key count different from the entry count', () => {
    bad(withIndex(good, (raw) => [...raw.slice(0, 3), keysOf(raw).slice(1).join('\0'), ...raw.slice(4)]), /index keys hold fewer keys than its 7 entries/);
    bad(withIndex(good, (raw) => [...raw.slice(0, 3), [...keysOf(raw), 'zz'].join('\0'), ...raw.slice(4)]), /index keys hold more keys than its 7 entries/);
    // A key holding a NUL is two keys to the reader.
    bad(withEntry(good, 'lib/a.js', { key: 'lib/a.js\0lib/b.js' }), /index keys hold more keys than its 7 entries/);
    // An empty index has no keys at all: not even an empty one.
    const empty = build(plan({ entries: [] }));
    expect(rawIndexOf(empty)[I.keys]).toBe('');
    expect(readMeta(withIndex(empty, (raw) => raw)).index.entries).toEqual([]);
    bad(withIndex(empty, (raw) => [...raw.slice(0, 3), 'a', ...raw.slice(4)]), /index keys are not empty for an empty index/);
  });

  it.each([
    ['a parent segment', '../x'],
    ['an inner parent segment', 'lib/../a.js'],
    ['an absolute path', '/abs'],
    ['an empty segment', 'a//b'],
    ['a dot segment', 'a/./b'],
    ['a trailing slash', 'lib/'],
    ['an empty key', ''],
    ['a backslash', 'a\\b'],
    ['a lone dot', '.'],
    ['a lone dot-dot', '..'],
    ['a trailing dot segment', 'lib/.'],
  ])('rejects a key with %s', (_what, key) => {
    bad(withEntry(good, 'lib/a.js', { key }), /invalid key/);
  });

  it.each(['bin/cli.js', 'package.json'])('rejects an invalid key as the first or last entry (%s)', (key) => {
    bad(withEntry(good, key, { key: key === 'bin/cli.js' ? '' : 'z/' }), /invalid key/);
    bad(withEntry(good, key, { key: key === 'bin/cli.js' ? './a' : 'z/..' }), /invalid key/);
  });

  it('accepts a sound new key in its place, and finds every key by binary search', () => {
    const b = withEntry(good, 'lib/a.js', { key: 'lib/b.js' });
    const { table } = readMeta(b).index;
    expect(table.all().map((e) => e.key)).toEqual(['bin/cli.js', 'esm/m.mjs', 'esm/smile.mjs', 'img/logo.bin', 'lib/b.js', 'lib/dash.js', 'package.json']);
    for (let i = 0; i < table.length; i++) expect(table.find(table.key(i))).toBe(i);
    for (const missing of ['lib/a.js', '', 'a', 'zzz', 'lib', 'lib/b.j', 'lib/b.jsx']) expect(table.find(missing), missing).toBe(-1);
  });

  it('rejects a key over 4096 characters, and accepts one of 4096', () => {
    const long = (length: number) => encodeIndex({ root: '.', entries: [entryOf('a.js'), entryOf('b/' + 'x'.repeat(length - 2))] });
    expect(decodeIndex(long(4096), 2).entries[1]!.key).toHaveLength(4096);
    expectCode(() => decodeIndex(long(4097), 2), 'ERR_CODEBLOB_BAD_FORMAT', /index entry 1 has an invalid key \(over 4096 characters\)/);
  });

  it('isValidKey accepts normal relative keys', () => {
    expect(isValidKey('a.js')).toBe(true);
    expect(isValidKey('node_modules/@scope/pkg/index.js')).toBe(true);
    expect(isValidKey('..a/b..')).toBe(true);
    expect(isValidKey('x'.repeat(4096))).toBe(true);
    expect(isValidKey('x'.repeat(4097))).toBe(false);
    expect(isValidKey('a\0b')).toBe(false);
  });

  it('accepts keys like "..a" and "b.." that only look like dot segments', () => {
    const b = withEntry(good, 'lib/a.js', { key: 'lib/..a' });
    expect(readMeta(b).index.table.find('lib/..a')).toBe(4);
    expect(readMeta(withEntry(good, 'package.json', { key: 'z../.b' })).index.table.find('z../.b')).toBe(6);
  });

  it('rejects keys out of order', () => {
    bad(
      withIndex(good, (raw) => {
        const keys = keysOf(raw);
        [keys[0], keys[1]] = [keys[1]!, keys[0]!];
        return [...raw.slice(0, 3), keys.join('\0'), ...raw.slice(4)];
      }),
      /index keys are not in order \(or one is there twice\) at entry 1/,
    );
    bad(withIndex(good, (raw) => [...raw.slice(0, 3), keysOf(raw).reverse().join('\0'), ...raw.slice(4)]), /not in order .* at entry 1/);
    // The last two swapped: found at the last entry.
    bad(withEntry(good, 'package.json', { key: 'lib/b.js' }), /not in order .* at entry 6/);
  });

  it('rejects duplicate keys', () => {
    bad(withEntry(good, 'lib/dash.js', { key: 'lib/a.js' }), /index keys are not in order \(or one is there twice\) at entry 5/);
    bad(withEntry(good, 'bin/cli.js', { key: 'esm/m.mjs' }), /not in order \(or one is there twice\) at entry 1/);
  });

  it('orders keys as JavaScript strings (UTF-16 code units), as the writer sorts them', () => {
    // U+FFFF sorts after U+1F600 by code point, but before its surrogate pair (0xD83D …) as UTF-16.
    const keys = ['a/\u{1F600}', 'a/\uffff', 'a/é', 'a/z', 'A'];
    const bytes = encodeIndex({ root: '.', entries: keys.map((k) => entryOf(k)) });
    const { table } = decodeIndex(bytes, keys.length);
    expect(table.all().map((e) => e.key)).toEqual(['A', 'a/z', 'a/é', 'a/\u{1F600}', 'a/\uffff']);
    for (const k of keys) expect(table.key(table.find(k))).toBe(k);
    // The same keys in code point order are refused.
    const raw = packr.unpack(bytes) as RawIndex;
    raw[I.keys] = ['A', 'a/z', 'a/é', 'a/\uffff', 'a/\u{1F600}'].join('\0');
    expectCode(() => decodeIndex(packr.pack(raw), keys.length), 'ERR_CODEBLOB_BAD_FORMAT', /not in order .* at entry 4/);
  });

  it.each([
    ['numbers', I.numbers, n * 6 * 8],
    ['small', I.small, n * 2 * 4],
    ['hashes', I.hashes, n * 48],
  ] as const)('rejects a %s column of the wrong length or type', (name, at, bytes) => {
    const rule = new RegExp(`index ${name} column is not ${bytes} bytes of binary`);
    const withColumn = (value: unknown) => withIndex(good, (raw) => [...raw.slice(0, at), value, ...raw.slice(at + 1)]);
    for (const length of [0, 1, bytes - 1, bytes + 1, bytes - (name === 'hashes' ? 48 : name === 'small' ? 8 : 48), bytes + 8, 2 * bytes]) bad(withColumn(Buffer.alloc(length)), rule);
    for (const value of [null, 0, 'x'.repeat(bytes), Array.from({ length: bytes }, () => 0), [Buffer.alloc(bytes)], true]) bad(withColumn(value), rule);
    // The right length, even all zeros, is past that rule.
    expect(() => readMeta(withColumn(Buffer.alloc(bytes)))).not.toThrow(rule);
  });

  it('rejects a map anywhere in the index, and a __proto__ key pollutes nothing', () => {
    const hostile = () => JSON.parse('{"__proto__": {"polluted": true}, "0": "x", "length": 1}') as object;
    const cases: Array<[number, RegExp]> = [
      [I.tag, /index tag/],
      [I.root, /index root is not a string/],
      [I.count, /index has .* entries, header says 7/],
      [I.keys, /index keys are not a string/],
      [I.numbers, /index numbers column/],
      [I.small, /index small column/],
      [I.hashes, /index hashes column/],
      [I.resolutions, /resolution table is not binary/],
      [I.tracedRoot, /traced root/],
    ];
    for (const [at, rule] of cases) {
      bad(withIndex(good, (raw) => { const next = [...raw]; next[at] = hostile(); return next; }), rule);
    }
    bad(withIndex(good, () => hostile()), /index tag/);
    bad(withIndex(good, () => JSON.parse('{"__proto__": {"polluted": true}, "0": "codeblob-index/2", "length": 8}')), /index tag/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
    expect(Array.prototype).not.toHaveProperty('polluted');
  });

  it('decodeIndex itself rejects a map for the keys or a column', () => {
    const raw = packr.unpack(encodeIndex({ root: 'app', entries: [entryOf('a.js')] })) as RawIndex;
    expect(decodeIndex(packr.pack(raw), 1).entries[0]!.key).toBe('a.js');
    const map = JSON.parse('{"__proto__": 1}') as object;
    expectCode(() => decodeIndex(packr.pack([...raw.slice(0, 3), map, ...raw.slice(4)]), 1), 'ERR_CODEBLOB_BAD_FORMAT', /keys are not a string/);
    expectCode(() => decodeIndex(packr.pack([...raw.slice(0, 4), map, ...raw.slice(5)]), 1), 'ERR_CODEBLOB_BAD_FORMAT', /numbers column is not 48 bytes of binary/);
    expectCode(() => decodeIndex(packr.pack([...raw.slice(0, 6), map, ...raw.slice(7)]), 1), 'ERR_CODEBLOB_BAD_FORMAT', /hashes column is not 48 bytes of binary/);
    expect(({} as Record<string, unknown>)['1']).toBeUndefined();
  });

  it('rejects encoding code 3', () => {
    bad(withEntry(good, 'esm/m.mjs', { enc: 3 }), /entry "esm\/m.mjs" has an unknown encoding/);
    bad(withEntry(good, 'img/logo.bin', { enc: 3 }), /entry "img\/logo.bin" has an unknown encoding/);
    bad(withEntry(good, 'lib/a.js', { meta: -1 }), /unknown encoding/); // every bit set
  });

  it('reads every kind code as its kind (two bits: none unknown)', () => {
    const kinds = (['cjs', 'esm', 'json'] as const).map((kind) => byKey(readMeta(withEntry(good, 'bin/cli.js', { kind: KIND[kind], flags: 0 })).index.entries, 'bin/cli.js').kind);
    expect(kinds).toEqual(['cjs', 'esm', 'json']);
    expect(byKey(readMeta(withEntry(good, 'bin/cli.js', { kind: KIND.asset, enc: ENC.binary, flags: 0 })).index.entries, 'bin/cli.js').kind).toBe('asset');
  });

  it('rejects an asset stored as text', () => {
    bad(withEntry(good, 'img/logo.bin', { enc: ENC.latin1 }), /kind asset cannot use encoding latin1/);
    bad(withEntry(good, 'img/logo.bin', { enc: ENC.utf16le }), /kind asset cannot use encoding utf16le/);
  });

  it('rejects a text module stored as binary', () => {
    bad(withEntry(good, 'esm/m.mjs', { enc: ENC.binary }), /kind esm cannot use encoding binary/);
    bad(withEntry(good, 'lib/a.js', { enc: ENC.binary }), /kind cjs cannot use encoding binary/);
    bad(withEntry(good, 'package.json', { enc: ENC.binary }), /kind json cannot use encoding binary/);
    bad(withEntry(good, 'esm/m.mjs', { kind: KIND.asset }), /kind asset cannot use encoding latin1/);
  });

  it('rejects unknown entry flags, and a negative meta', () => {
    for (const flags of [8, 10, 16, 1 << 20, (1 << 27) - 1]) bad(withEntry(good, 'lib/a.js', { flags }), /entry "lib\/a.js" has unknown flags/);
    // Bit 31 set (meta negative), kind and encoding untouched: the flags read negative.
    const meta = metaOf(rawIndexOf(good), 'lib/a.js');
    bad(withEntry(good, 'lib/a.js', { meta: meta | (1 << 31) }), /entry "lib\/a.js" has unknown flags/);
    bad(withEntry(good, 'lib/a.js', { flags: 1 << 27 }), /unknown flags/); // the same bit through the flags
    bad(withEntry(good, 'esm/m.mjs', { meta: -(1 << 4) | KIND.esm }), /unknown flags/);
  });

  it('rejects the shebang flag on anything but CommonJS, and on fewer than 2 chars', () => {
    for (const key of ['esm/m.mjs', 'package.json', 'img/logo.bin']) bad(withEntry(good, key, { flags: FLAG.shebang }), /only CommonJS entries are wrapped/);
    bad(withEntry(good, 'lib/a.js', { flags: FLAG.shebang, chars: 1 }), /entry "lib\/a.js" is flagged as starting with #! but has 1 chars/);
    bad(withEntry(good, 'lib/a.js', { flags: FLAG.shebang, chars: 0 }), /flagged as starting with #! but has 0 chars/);
    expect(byKey(readMeta(withEntry(good, 'lib/a.js', { flags: FLAG.shebang, chars: 2 })).index.entries, 'lib/a.js').shebang).toBe(true);
  });

  it('rejects the require()-only flag on anything but an ES module', () => {
    for (const key of ['lib/a.js', 'package.json', 'img/logo.bin']) bad(withEntry(good, key, { flags: FLAG.requiredOnly }), /only ES module entries are flagged as loaded by require\(\) only/);
    expect(byKey(readMeta(withEntry(good, 'esm/m.mjs', { flags: FLAG.requiredOnly })).index.entries, 'esm/m.mjs').requiredOnly).toBe(true);
  });

  it('rejects the TypeScript flag on JSON and assets', () => {
    for (const key of ['package.json', 'img/logo.bin']) bad(withEntry(good, key, { flags: FLAG.typescript }), /only CommonJS and ES module entries can be stripped TypeScript/);
    for (const key of ['lib/a.js', 'esm/m.mjs']) expect(byKey(readMeta(withEntry(good, key, { flags: FLAG.typescript })).index.entries, key).typescript).toBe(true);
    const all = byKey(readMeta(withEntry(good, 'bin/cli.js', { flags: 3 })).index.entries, 'bin/cli.js');
    expect([all.shebang, all.typescript, all.requiredOnly]).toEqual([true, true, false]);
  });

  it.each([
    ['chars', 'chars'],
    ['so', 'source offset'],
    ['co', 'cache offset'],
    ['cl', 'cache length'],
    ['size', 'file size'],
  ] as const)('rejects a negative, fractional, infinite or unsafe %s', (field, what) => {
    const rule = new RegExp(`entry "lib/a.js" ${what} is not a non-negative integer`);
    for (const value of [-1, -0.5, 2.5, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 ** 53, 2 ** 60, Number.MAX_VALUE, -(2 ** 53)]) {
      bad(withEntry(good, 'lib/a.js', { [field]: value }), rule);
    }
  });

  it('accepts the largest safe integers where the sections rules are the ones to refuse them', () => {
    expect(byKey(readMeta(withEntry(good, 'lib/a.js', { size: 2 ** 53 - 1 })).index.entries, 'lib/a.js').fileSize).toBe(2 ** 53 - 1);
    bad(withEntry(good, 'lib/a.js', { so: 2 ** 53 - 1 }), /source of "lib\/a.js" .* out of bounds/);
    bad(withEntry(good, 'lib/a.js', { cl: 2 ** 53 - 1 }), /cache of "lib\/a.js" .* out of bounds/);
  });

  it('rejects a chars count whose derived source length is not a safe integer', () => {
    // UTF-16: (62 + chars + 3) × 2 bytes.
    bad(withEntry(good, 'lib/dash.js', { chars: 2 ** 52 }), /entry "lib\/dash.js" source length is not a safe integer/);
    bad(withEntry(good, 'lib/a.js', { chars: 2 ** 53 - 1 }), /entry "lib\/a.js" source length is not a safe integer/);
    bad(withEntry(good, 'esm/smile.mjs', { chars: 2 ** 52 + 2 }), /source length is not a safe integer/);
    // Safe, but far out of the file.
    bad(withEntry(good, 'lib/dash.js', { chars: 2 ** 51 }), /source of "lib\/dash.js" .* out of bounds/);
    bad(withEntry(good, 'esm/m.mjs', { chars: 2 ** 53 - 1 }), /source of "esm\/m.mjs" .* out of bounds/);
  });

  it.each([-1, -0.5, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])('rejects mtime %s', (mtime) => {
    bad(withEntry(good, 'lib/a.js', { mtime }), /entry "lib\/a.js" mtime is invalid/);
  });

  it('accepts any finite non-negative mtime, fractions included', () => {
    for (const mtime of [0, 0.125, 1_700_000_000_123.456, Number.MAX_VALUE]) {
      expect(byKey(readMeta(withEntry(good, 'lib/a.js', { mtime })).index.entries, 'lib/a.js').mtimeMs).toBe(mtime);
    }
  });

  it.each([-2, -1000, -(2 ** 31)])('rejects order %s', (order) => {
    bad(withEntry(good, 'lib/a.js', { order }), /entry "lib\/a.js" order is invalid/);
  });

  it('accepts order -1 and up to 2^31 - 1', () => {
    for (const order of [-1, 0, 2 ** 31 - 1]) expect(byKey(readMeta(withEntry(good, 'lib/a.js', { order })).index.entries, 'lib/a.js').order).toBe(order);
  });

  it('reads the cache hash as null exactly when the cache length is 0', () => {
    const cli = entryOfGood('bin/cli.js');
    expect(cli.cacheHash).toBeNull();
    // No cache: whatever the slot holds (the writer leaves zeros), there is no hash.
    expect(rawIndexOf(good)[I.hashes]).toBeInstanceOf(Uint8Array);
    expect(byKey(readMeta(withEntry(good, 'bin/cli.js', { ch: Buffer.alloc(16, 9) })).index.entries, 'bin/cli.js').cacheHash).toBeNull();
    expect(byKey(readMeta(withEntry(good, 'lib/a.js', { cl: 0 })).index.entries, 'lib/a.js').cacheHash).toBeNull();
    // A cache length makes the slot the hash, zeros included (the section check then refuses it).
    const a = entryOfGood('lib/a.js');
    const zeros = byKey(readMeta(withEntry(good, 'lib/a.js', { ch: Buffer.alloc(16) })).index.entries, 'lib/a.js');
    expect([zeros.cacheLength, zeros.cacheHash]).toEqual([a.cacheLength, Buffer.alloc(16)]);
    const moved = byKey(readMeta(withEntry(good, 'lib/a.js', { ch: Buffer.alloc(16, 5) })).index.entries, 'lib/a.js');
    expect([moved.sourceHash, moved.cacheHash, moved.contentHash]).toEqual([a.sourceHash, Buffer.alloc(16, 5), a.contentHash]);
  });

  it('derives the wrapper and the source length from kind, encoding and chars', () => {
    const { entries } = readMeta(good).index;
    for (const e of entries) {
      const [pre, suf] = e.kind === 'cjs' ? [CJS_PREFIX.length, CJS_SUFFIX.length] : [0, 0];
      expect([e.prefixChars, e.suffixChars, e.sourceLength], e.key).toEqual([pre, suf, (pre + e.chars + suf) * (e.encoding === 'utf16le' ? 2 : 1)]);
    }
    // bin/cli.js read as another kind: no wrapper, the same chars.
    for (const kind of ['esm', 'json'] as const) {
      const e = byKey(readMeta(withEntry(good, 'bin/cli.js', { kind: KIND[kind], flags: 0 })).index.entries, 'bin/cli.js');
      expect([e.prefixChars, e.suffixChars, e.sourceLength]).toEqual([0, 0, 40]);
    }
    // esm/m.mjs read as CommonJS: wrapped.
    const m = byKey(readMeta(withEntry(good, 'esm/m.mjs', { kind: KIND.cjs })).index.entries, 'esm/m.mjs');
    expect([m.prefixChars, m.suffixChars, m.sourceLength]).toEqual([62, 3, 62 + 19 + 3]);
    const u = byKey(readMeta(withEntry(good, 'esm/m.mjs', { kind: KIND.cjs, enc: ENC.utf16le, chars: 100 })).index.entries, 'esm/m.mjs');
    expect(u.sourceLength).toBe((62 + 100 + 3) * 2);
  });

  it('rejects a code cache on a non-CommonJS entry', () => {
    const a = entryOfGood('lib/a.js');
    for (const key of ['esm/m.mjs', 'package.json', 'img/logo.bin']) {
      bad(withEntry(good, key, { co: a.cacheOffset, cl: a.cacheLength, ch: a.cacheHash! }), /only CommonJS entries carry a code cache/);
    }
    // A cache offset alone (no length) is no cache.
    expect(byKey(readMeta(withEntry(good, 'esm/m.mjs', { co: a.cacheOffset })).index.entries, 'esm/m.mjs').cacheHash).toBeNull();
  });

  it('names the first entry that breaks a rule, in key order', () => {
    const b = withIndex(good, (raw) => {
      patchEntry(raw, 'package.json', { order: -5 });
      patchEntry(raw, 'esm/m.mjs', { mtime: -1 });
      return raw;
    });
    bad(b, /entry "esm\/m.mjs" mtime is invalid/);
  });

  it('encodeIndex and decodeIndex round-trip entries, hashes included, byte for byte', () => {
    const { header, index } = readMeta(good);
    const bytes = encodeIndex(index);
    expect(bytes.equals(good.subarray(header.indexOffset, header.indexOffset + header.indexLength))).toBe(true);
    const again = decodeIndex(bytes, index.entries.length);
    expect(again.root).toBe(index.root);
    expect(again.entries.map(plainEntry)).toEqual(index.entries.map(plainEntry));
    expect(again.entries.map((e) => e.key)).toEqual(index.entries.map((e) => e.key));
    // Whatever the order of the entries given, and from plain objects as from decoded ones.
    expect(encodeIndex({ root: index.root, entries: [...index.entries].reverse().map(plainEntry) }).equals(bytes)).toBe(true);
    // Entries are made once: the same object each time.
    expect(again.table.entry(2)).toBe(again.entries[2]);
    expect(again.table.positionOf(again.entries[3]!)).toBe(3);
    expect(again.table.positionOf(index.entries[3]!)).toBe(-1);
    expect(again.table.positionOf(plainEntry(again.entries[3]!))).toBe(-1);
    expect(JSON.parse(JSON.stringify(again.entries[0]))).toMatchObject({ key: again.entries[0]!.key, sourceHash: { type: 'Buffer' } });
  });

  it('encodeIndex refuses entries it would not store as they are, with a plain Error', () => {
    const ok = entryOf('a.js', { kind: 'cjs', chars: 10 });
    expect(decodeIndex(encodeIndex({ root: '.', entries: [ok] }), 1).entries[0]!.sourceLength).toBe(75);
    const refuse = (over: Partial<Entry>, rule: RegExp) => {
      let caught: unknown;
      try {
        encodeIndex({ root: '.', entries: [{ ...ok, ...over }] });
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(Error);
      expect(isCodeblobError(caught)).toBe(false);
      expect((caught as Error).message).toMatch(rule);
    };
    refuse({ prefixChars: 0 }, /entry "a.js" has a wrapper its kind does not have/);
    refuse({ suffixChars: 0, chars: 13 }, /has a wrapper its kind does not have/);
    refuse({ kind: 'esm' }, /has a wrapper its kind does not have/);
    refuse({ sourceLength: 74 }, /entry "a.js" has a source length its characters do not give/);
    refuse({ encoding: 'utf16le' }, /has a source length its characters do not give/);
    refuse({ sourceHash: Buffer.alloc(15) }, /entry "a.js" has a hash of 15 bytes/);
    refuse({ cacheHash: Buffer.alloc(17), cacheLength: 8 }, /has a hash of 17 bytes/);
    refuse({ contentHash: Buffer.alloc(32) }, /has a hash of 32 bytes/);
  });

  it('round-trips the traced root (Node 20 blobs), with or without a resolution table, and refuses one that is not absolute', () => {
    const { index } = readMeta(good);
    const plainOf = (i: DecodedIndex) => ({ root: i.root, resolutions: i.resolutions, tracedRoot: i.tracedRoot, entries: i.entries.map(plainEntry) });
    for (const resolutions of [undefined, Buffer.from([1, 2, 3])]) {
      const withRoot = { root: index.root, entries: index.entries, ...(resolutions && { resolutions }), tracedRoot: '/srv/app' };
      const again = decodeIndex(encodeIndex(withRoot), index.entries.length);
      expect(plainOf(again)).toEqual({ ...plainOf(index), resolutions, tracedRoot: '/srv/app' });
      expect(packr.unpack(encodeIndex(withRoot))).toHaveLength(9);
    }
    expect(packr.unpack(encodeIndex(index))).toHaveLength(8);
    const raw = (packr.unpack(encodeIndex(index)) as RawIndex).slice(0, 7);
    for (const root of ['srv/app', 7, '/srv/\0app']) {
      expectCode(() => decodeIndex(packr.pack([...raw, null, root]), index.entries.length), 'ERR_CODEBLOB_BAD_FORMAT', /traced root/);
    }
    expectCode(() => decodeIndex(packr.pack([...raw, 'not binary', '/srv/app']), index.entries.length), 'ERR_CODEBLOB_BAD_FORMAT', /not binary/);
    expect(decodeIndex(packr.pack([...raw, null, '/srv/app']), index.entries.length).tracedRoot).toBe('/srv/app');
  });
});

// ---- section rules ----------------------------------------------------------------------

describe('checkSections / readMeta: section rules', () => {
  const good = build(plan({ alignment: 8 }));
  const paged = build();
  const bad = (blob: Uint8Array, rule: RegExp) => expectCode(() => readMeta(blob), 'ERR_CODEBLOB_BAD_FORMAT', rule);

  it('rejects a source running past the end of the file', () => {
    bad(withEntry(good, 'img/logo.bin', { so: good.byteLength - 8 }), /source of "img\/logo.bin" .* out of bounds/);
  });

  it('rejects a source starting past the end of the file', () => {
    bad(withEntry(good, 'esm/m.mjs', { so: good.byteLength + 4096 }), /out of bounds/);
  });

  it('rejects a source inside the header or index', () => {
    bad(withEntry(good, 'esm/m.mjs', { so: HEADER_SIZE }), /source of "esm\/m.mjs" .* out of bounds/);
    bad(withEntry(good, 'esm/m.mjs', { so: 0 }), /out of bounds/);
  });

  it('rejects a cache out of bounds', () => {
    bad(withEntry(good, 'lib/a.js', { co: good.byteLength }), /cache of "lib\/a.js" .* out of bounds/);
    bad(withEntry(good, 'lib/a.js', { co: HEADER_SIZE }), /cache of "lib\/a.js" \[256, \+200\) is out of bounds/);
  });

  it('rejects a misaligned source', () => {
    const e = byKey(readMeta(paged).index.entries, 'esm/m.mjs');
    bad(withEntry(paged, 'esm/m.mjs', { so: e.sourceOffset + 8 }), /source of "esm\/m.mjs" at \d+ is not 4096-byte aligned/);
  });

  it('rejects a misaligned cache', () => {
    const e = byKey(readMeta(good).index.entries, 'lib/a.js');
    bad(withEntry(good, 'lib/a.js', { co: e.cacheOffset + 4 }), /cache of "lib\/a.js" at \d+ is not 8-byte aligned/);
  });

  it('rejects two sources at the same place', () => {
    const json = byKey(readMeta(good).index.entries, 'package.json');
    bad(withEntry(good, 'esm/m.mjs', { so: json.sourceOffset }), /source of "package.json" overlaps source of "esm\/m.mjs"|source of "esm\/m.mjs" overlaps source of "package.json"/);
  });

  it('rejects a source overlapping the tail of the previous one', () => {
    const { entries } = readMeta(good).index;
    const sorted = [...entries].sort((a, b) => a.sourceOffset - b.sourceOffset);
    const [first, second] = [sorted[0]!, sorted[1]!];
    const inside = first.sourceOffset + 8 * Math.floor((first.sourceLength - 1) / 8);
    expect(inside).toBeLessThan(first.sourceOffset + first.sourceLength);
    bad(withEntry(good, second.key, { so: inside }), /overlaps/);
  });

  it('rejects a cache overlapping a source', () => {
    const { entries } = readMeta(good).index;
    const a = byKey(entries, 'lib/a.js');
    // The cache (123 bytes) is the shorter: it sorts first, and the source is named as overlapping it.
    bad(withEntry(good, 'lib/dash.js', { co: a.sourceOffset }), /source of "lib\/a.js" overlaps cache of "lib\/dash.js"/);
    bad(withEntry(good, 'lib/dash.js', { co: a.sourceOffset + 8 }), /cache of "lib\/dash.js" overlaps source of "lib\/a.js"/);
  });

  it.each([
    ['lib/a.js', 'a CommonJS latin1 source: 62 + chars + 3 bytes'],
    ['lib/dash.js', 'a CommonJS utf16le source: (62 + chars + 3) × 2 bytes'],
    ['esm/m.mjs', 'an ES module latin1 source: chars bytes'],
    ['esm/smile.mjs', 'an ES module utf16le source: chars × 2 bytes'],
    ['package.json', 'a JSON source up to the end of the file'],
    ['img/logo.bin', 'an asset: chars bytes'],
  ])('checks the derived length of %s (%s) against the next section', (key) => {
    const e = byKey(readMeta(good).index.entries, key);
    const room = roomAfterSource(good, key);
    const bytesPerChar = e.encoding === 'utf16le' ? 2 : 1;
    const fits = room / bytesPerChar - e.prefixChars - e.suffixChars;
    expect(Number.isInteger(fits)).toBe(true);
    const full = byKey(readMeta(withEntry(good, key, { chars: fits })).index.entries, key);
    expect(full.sourceOffset + full.sourceLength).toBe(e.sourceOffset + room);
    bad(withEntry(good, key, { chars: fits + 1 }), e.sourceOffset + room === good.byteLength ? /out of bounds/ : /overlaps/);
  });

  it('checks a kind change against the next section: a CommonJS wrapper takes 65 chars more', () => {
    const room = roomAfterSource(good, 'bin/cli.js');
    const asEsm = { kind: KIND.esm, flags: 0 };
    expect(() => readMeta(withEntry(good, 'bin/cli.js', { ...asEsm, chars: room }))).not.toThrow();
    bad(withEntry(good, 'bin/cli.js', { ...asEsm, chars: room + 1 }), /overlaps/);
    bad(withEntry(good, 'bin/cli.js', { chars: room }), /overlaps/); // the same chars, wrapped
    expect(() => readMeta(withEntry(good, 'bin/cli.js', { chars: room - 65 }))).not.toThrow();
    bad(withEntry(good, 'esm/m.mjs', { kind: KIND.cjs }), /source of "esm\/m.mjs" overlaps|overlaps source of "esm\/m.mjs"/); // 19 chars wrapped: 84 bytes where 24 fit
  });

  describe('zero-length sections (empty files)', () => {
    // a.mjs: 96 bytes; e.mjs and f.mjs: empty; c.js: a CommonJS source with a cache.
    const blob = build(plan({
      alignment: 8,
      entries: [
        input('a.mjs', 'esm', { text: 'x'.repeat(96) }, 0),
        input('c.js', 'cjs', { text: 'y'.repeat(35), cache: bytesOf(64, 3) }, 1),
        input('e.mjs', 'esm', { text: '' }, 2),
        input('f.mjs', 'esm', { text: '' }, 3),
      ],
    }));
    const at = (key: string) => byKey(readMeta(blob).index.entries, key);

    it('accepts one at the start or the end of another section, or where another empty one is', () => {
      const a = at('a.mjs');
      const c = at('c.js');
      expect([a.sourceLength, at('e.mjs').sourceLength, c.sourceLength]).toEqual([96, 0, 100]);
      for (const so of [a.sourceOffset, a.sourceOffset + 96, c.sourceOffset, c.cacheOffset, c.cacheOffset + 64, at('f.mjs').sourceOffset]) {
        expect(() => readMeta(withEntry(blob, 'e.mjs', { so })), String(so)).not.toThrow();
      }
      expect(() => readMeta(withIndex(blob, (raw) => {
        patchEntry(raw, 'e.mjs', { so: a.sourceOffset + 96 });
        patchEntry(raw, 'f.mjs', { so: a.sourceOffset + 96 });
        return raw;
      }))).not.toThrow();
    });

    it('rejects one strictly inside another section, source or cache', () => {
      const a = at('a.mjs');
      const c = at('c.js');
      bad(withEntry(blob, 'e.mjs', { so: a.sourceOffset + 8 }), /source of "e.mjs" overlaps source of "a.mjs"/);
      bad(withEntry(blob, 'e.mjs', { so: a.sourceOffset + 88 }), /source of "e.mjs" overlaps source of "a.mjs"/);
      bad(withEntry(blob, 'f.mjs', { so: c.cacheOffset + 56 }), /source of "f.mjs" overlaps cache of "c.js"/);
      // Both empty ones inside: still found.
      bad(withIndex(blob, (raw) => {
        patchEntry(raw, 'e.mjs', { so: a.sourceOffset + 16 });
        patchEntry(raw, 'f.mjs', { so: a.sourceOffset + 16 });
        return raw;
      }), /overlaps source of "a.mjs"/);
    });

    it('rejects one out of bounds or misaligned like any other', () => {
      bad(withEntry(blob, 'e.mjs', { so: blob.byteLength + 8 }), /source of "e.mjs" \[\d+, \+0\) is out of bounds/);
      bad(withEntry(blob, 'e.mjs', { so: at('a.mjs').sourceOffset + 4 }), /source of "e.mjs" at \d+ is not 8-byte aligned/);
    });
  });

  it('checkSections accepts the sections layoutBlob wrote, and refuses a table whose sections overlap', () => {
    const { header, index } = readMeta(good);
    expect(() => checkSections(header, index.table)).not.toThrow();
    const b = withEntry(good, 'esm/m.mjs', { so: byKey(index.entries, 'package.json').sourceOffset });
    const h = headerOf(b);
    const { table } = decodeIndex(b.subarray(h.indexOffset, h.indexOffset + h.indexLength), h.entryCount);
    expectCode(() => checkSections(h, table), 'ERR_CODEBLOB_BAD_FORMAT', /overlaps/);
    expectCode(() => checkSections({ ...header, fileSize: header.fileSize - 1 }, index.table), 'ERR_CODEBLOB_BAD_FORMAT', /source of "package.json" .* out of bounds/);
  });

  it('accepts and refuses exactly what the pairwise rule does, naming the same sections (random tables)', () => {
    // The rule as first written: every section in order, then sorted by (start, end), each
    // checked against the one before. The table checks it without sorting objects.
    const reference = (entries: readonly Entry[], dataStart: number, fileSize: number, alignment: number): string | undefined => {
      const sections: Array<[number, number, string]> = [];
      for (const e of entries) {
        const check = (offset: number, length: number, align: number, what: string) => {
          if (offset < dataStart || offset + length > fileSize) throw new Error(`${what} of "${e.key}" [${offset}, +${length}) is out of bounds`);
          if (offset % align !== 0) throw new Error(`${what} of "${e.key}" at ${offset} is not ${align}-byte aligned`);
          sections.push([offset, offset + length, `${what} of "${e.key}"`]);
        };
        try {
          check(e.sourceOffset, e.sourceLength, alignment, 'source');
          if (e.cacheLength > 0) check(e.cacheOffset, e.cacheLength, Math.max(8, alignment), 'cache');
        } catch (error) {
          return (error as Error).message;
        }
      }
      sections.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      for (let i = 1; i < sections.length; i++) {
        if (sections[i]![0] < sections[i - 1]![1]) return `${sections[i]![2]} overlaps ${sections[i - 1]![2]}`;
      }
      return undefined;
    };
    let seed = 99;
    const rand = (n: number) => Math.floor(((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) * n);
    const tally = { accepted: 0, overlaps: 0, emptyInside: 0, other: 0 };
    for (let round = 0; round < 4000; round++) {
      const count = 1 + rand(6);
      const alignment = [8, 16][rand(2)]!;
      const dataStart = 64;
      const fileSize = 64 + 8 * (40 + rand(40));
      const numbers = new Float64Array(count * 6);
      const small = new Int32Array(count * 2);
      for (let i = 0; i < count; i++) {
        const cjs = rand(3) === 0;
        const utf16 = rand(4) === 0;
        small[i * 2 + 1] = (cjs ? 0 : 1) | ((utf16 ? 1 : 0) << 2);
        numbers[i * 6] = cjs ? rand(40) : [0, 0, rand(200)][rand(3)]!; // empty ES modules often
        numbers[i * 6 + 1] = 56 + 8 * rand(fileSize / 8 - 6) + (rand(20) === 0 ? 4 : 0);
        if (cjs && rand(2) === 0) {
          numbers[i * 6 + 2] = 56 + 8 * rand(fileSize / 8 - 6);
          numbers[i * 6 + 3] = 1 + rand(120);
        }
      }
      const keys = Array.from({ length: count }, (_, i) => `k${i}`).join('\0');
      const starts = Uint32Array.from({ length: count + 1 }, (_, i) => 3 * i); // keys of two characters and a NUL
      const table = new EntryTable(count, keys, starts, numbers, small, Buffer.alloc(count * 48));
      const expected = reference(table.all(), dataStart, fileSize, alignment);
      let actual: string | undefined;
      try {
        table.checkSections(dataStart, fileSize, alignment);
      } catch (error) {
        expect(isCodeblobError(error), String(error)).toBe(true);
        actual = (error as Error).message.replace(/^Not a valid codeblob file: /, '');
      }
      expect(actual, `round ${round}`).toBe(expected);
      if (expected === undefined) tally.accepted++;
      else if (!/overlaps/.test(expected)) tally.other++;
      else if (table.all().some((e) => e.sourceLength === 0 && expected.startsWith(`source of "${e.key}" overlaps`))) tally.emptyInside++;
      else tally.overlaps++;
    }
    // Every outcome was drawn often enough to mean something.
    expect(tally.accepted).toBeGreaterThan(200);
    expect(tally.overlaps).toBeGreaterThan(200);
    expect(tally.emptyInside).toBeGreaterThan(20);
    expect(tally.other).toBeGreaterThan(200);
  });
});

// ---- compatibility ----------------------------------------------------------------------

describe('compatibility', () => {
  const header = readMeta(build()).header;

  it('finds a blob built by this runtime usable', () => {
    expect(compatibility(header)).toEqual({ cachesUsable: true });
  });

  it('names another V8 cache tag', () => {
    const c = compatibility({ ...header, v8Tag: (TAG + 1) >>> 0, nodeVersion: 'v99.0.0' });
    expect(c.cachesUsable).toBe(false);
    expect(c.reason).toMatch(/V8 cache tag/);
    expect(c.reason).toContain(String((TAG + 1) >>> 0));
    expect(c.reason).toContain('v99.0.0');
  });

  it('names another arch', () => {
    const other = arch === 'arm64' ? 'x64' : 'arm64';
    const c = compatibility({ ...header, arch: other });
    expect(c.cachesUsable).toBe(false);
    expect(c.reason).toMatch(new RegExp(`arch ${other}`));
  });

  it('names another platform', () => {
    const c = compatibility({ ...header, platform: 'win32' });
    expect(c.cachesUsable).toBe(false);
    expect(c.reason).toMatch(/platform win32/);
  });

  it('names every mismatch at once', () => {
    const c = compatibility({ ...header, platform: 'darwin', arch: 'riscv64', v8Tag: (TAG ^ 1) >>> 0 });
    expect(c.reason).toMatch(/platform darwin/);
    expect(c.reason).toMatch(/arch riscv64/);
    expect(c.reason).toMatch(/V8 cache tag/);
  });
});

// ---- errors -----------------------------------------------------------------------------

describe('errors', () => {
  it('instanceof holds for the matching class and not for another code', () => {
    const e = codeblobError('ERR_CODEBLOB_BAD_FORMAT', 'x');
    expect(e).toBeInstanceOf(errors.ERR_CODEBLOB_BAD_FORMAT);
    expect(e).not.toBeInstanceOf(errors.ERR_CODEBLOB_CLOSED);
    expect(e).toBeInstanceOf(Error);
  });

  it('builds message, name and code from the table', () => {
    const e = new errors.ERR_CODEBLOB_BAD_FORMAT('bad magic');
    expect(e.message).toBe('Not a valid codeblob file: bad magic');
    expect(e.code).toBe('ERR_CODEBLOB_BAD_FORMAT');
    expect(e.name).toBe('Error [ERR_CODEBLOB_BAD_FORMAT]');
    expect(e.stack).toContain('bad magic');
  });

  it('uses the base class of the table', () => {
    const e = codeblobError('ERR_CODEBLOB_INVALID_OPTION', 'options.x is bad');
    expect(e).toBeInstanceOf(TypeError);
    expect(e.message).toBe('options.x is bad');
    expect(e.name).toBe('TypeError [ERR_CODEBLOB_INVALID_OPTION]');
  });

  it('keeps the cause', () => {
    const cause = new Error('root');
    expect(codeblobError('ERR_CODEBLOB_PACK_FAILED', 'x', cause).cause).toBe(cause);
    expect('cause' in codeblobError('ERR_CODEBLOB_PACK_FAILED', 'x')).toBe(false);
  });

  it('isCodeblobError is true for codeblob errors only', () => {
    expect(isCodeblobError(codeblobError('ERR_CODEBLOB_CLOSED', 'x'))).toBe(true);
    const plain = Object.assign(new Error('x'), { code: 'ERR_CODEBLOB_CLOSED' });
    expect(isCodeblobError(plain)).toBe(false);
    expect(plain).not.toBeInstanceOf(errors.ERR_CODEBLOB_CLOSED);
    for (const v of [null, undefined, 'ERR_CODEBLOB_CLOSED', 42]) expect(isCodeblobError(v)).toBe(false);
  });

  it('recognises an error from another copy of the package by its global brand', () => {
    const foreign = { [Symbol.for('codeblob.error')]: true, code: 'ERR_CODEBLOB_INCOMPATIBLE', message: 'x' };
    expect(foreign).toBeInstanceOf(errors.ERR_CODEBLOB_INCOMPATIBLE);
    expect(foreign).not.toBeInstanceOf(errors.ERR_CODEBLOB_BAD_FORMAT);
    expect(isCodeblobError(foreign)).toBe(true);
  });

  it('works across two loaded copies of errors.ts', async () => {
    // A query string makes the module loader evaluate the file a second time: a second copy.
    const specifier = new URL('../src/errors.ts?second-copy', import.meta.url).href;
    const other = (await import(/* @vite-ignore */ specifier)) as typeof import('../src/errors.js');
    expect(other.errors).not.toBe(errors);
    const e = other.codeblobError('ERR_CODEBLOB_CORRUPT_ENTRY', 'x');
    expect(e).toBeInstanceOf(errors.ERR_CODEBLOB_CORRUPT_ENTRY);
    expect(isCodeblobError(e)).toBe(true);
    expect(codeblobError('ERR_CODEBLOB_CLOSED', 'y')).toBeInstanceOf(other.errors.ERR_CODEBLOB_CLOSED);
  });

  it('does not brand an object without the symbol', () => {
    expect({ code: 'ERR_CODEBLOB_BAD_FORMAT' }).not.toBeInstanceOf(errors.ERR_CODEBLOB_BAD_FORMAT);
    expect({ [Symbol.for('codeblob.error')]: false, code: 'ERR_CODEBLOB_BAD_FORMAT' }).not.toBeInstanceOf(errors.ERR_CODEBLOB_BAD_FORMAT);
  });
});

describe("the format's msgpack decoder", () => {
  it('decodes what msgpackr encodes, for every type the formats use, as msgpackr decodes it', async () => {
    const { decode } = await import('../src/format/msgpack.js');
    const packr = new Packr({ useRecords: false, variableMapSize: true });
    const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: false });
    const values: unknown[] = [
      null, true, false, 0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1,
      -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 53 - 1),
      0.5, -1.25, 1e300, Number.MIN_VALUE, 1733580000123.456,
      '', 'a', 'x'.repeat(31), 'x'.repeat(32), 'y'.repeat(255), 'y'.repeat(256), 'z'.repeat(70000), 'über — ✓ 𝄞',
      Buffer.alloc(0), Buffer.from([1, 2, 3]), Buffer.alloc(300, 7), Buffer.alloc(70000, 9),
      [], [1, [2, [3, 'four']]], Array.from({ length: 20 }, (_, i) => i), Array.from({ length: 70000 }, (_, i) => i % 300),
      new Map<unknown, unknown>([['k', 1], [2, [3]]]),
    ];
    for (const v of values) {
      const bytes = packr.pack(v);
      expect(decode(bytes), `${String(v).slice(0, 40)}`).toEqual(unpackr.unpack(bytes));
    }
  });

  it('refuses trailing bytes, truncation and extension types', async () => {
    const { decode } = await import('../src/format/msgpack.js');
    expect(() => decode(Uint8Array.of(0x01, 0x02))).toThrow(/1 bytes after the value/);
    expect(() => decode(Uint8Array.of(0x92, 0x01))).toThrow(/unexpected end/);
    expect(() => decode(Uint8Array.of(0xd4, 0x01, 0x02))).toThrow(/not used/);
    expect(() => decode(Uint8Array.of(0xc1))).toThrow(/not used/);
    expect(typeof decode(Uint8Array.of(0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))).toBe('bigint');
  });
});
