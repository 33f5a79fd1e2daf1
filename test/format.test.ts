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

type RawIndex = [unknown, unknown, unknown[]];

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

/** Tuple positions (see index-codec.ts). */
const F = {
  key: 0, kind: 1, enc: 2, chars: 3, pre: 4, suf: 5, flags: 6, so: 7, sl: 8, sh: 9,
  co: 10, cl: 11, ch: 12, size: 13, mtime: 14, content: 15, order: 16,
} as const;

/** Index of an entry's tuple in the (sorted) raw index. */
function tupleOf(raw: RawIndex, key: string): unknown[] {
  const t = raw[2].find((x) => (x as unknown[])[0] === key);
  if (!t) throw new Error(`no tuple ${key}`);
  return t as unknown[];
}

/** A copy with fields of one entry's tuple replaced. */
function withEntry(blob: Buffer, key: string, patch: Partial<Record<keyof typeof F, unknown>>): Buffer {
  return withIndex(blob, (raw) => {
    const t = tupleOf(raw, key);
    for (const [name, value] of Object.entries(patch)) t[F[name as keyof typeof F]] = value;
    return raw;
  });
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
    expectCode(() => readMeta(withHeader(good, { formatVersion: 2 })), 'ERR_CODEBLOB_UNSUPPORTED_VERSION', /^Unsupported codeblob format version: 2 /);
    expectCode(() => readMeta(withHeader(good, { formatVersion: 0 })), 'ERR_CODEBLOB_UNSUPPORTED_VERSION', /0/);
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

  it('re-encoding the untouched index is accepted (the crafting helper is sound)', () => {
    const b = withIndex(good, (raw) => raw);
    expect(readMeta(b).index.entries).toHaveLength(7);
  });

  it('rejects an index that is not valid msgpack', () => {
    bad(withIndex(good, () => Buffer.from([0x93, 0xa1])), /not valid msgpack/);
  });

  it('rejects an index with trailing bytes', () => {
    bad(withIndex(good, (raw) => Buffer.concat([packr.pack(raw), Buffer.from([0xc0])])), /not valid msgpack/);
  });

  it('rejects a wrong tag', () => {
    bad(withIndex(good, (raw) => ['codeblob-index/2', raw[1], raw[2]]), /index tag/);
  });

  it('rejects an index that is not a 3- to 5-element array, or whose 4th is not binary', () => {
    bad(withIndex(good, (raw) => [...raw, Buffer.alloc(1), '/srv/app', 0]), /index tag/);
    bad(withIndex(good, (raw) => [...raw, Buffer.alloc(1), 0]), /traced root/);
    bad(withIndex(good, (raw) => [...raw, 0]), /resolution table is not binary/);
    bad(withIndex(good, () => 'codeblob-index/1'), /index tag/);
  });

  it('rejects a root that is not a string or holds NUL', () => {
    bad(withIndex(good, (raw) => [raw[0], 5, raw[2]]), /root/);
    bad(withIndex(good, (raw) => [raw[0], 'a\0b', raw[2]]), /root/);
  });

  it('rejects entries that are not an array', () => {
    bad(withIndex(good, (raw) => [raw[0], raw[1], 'nope']), /entries are not an array/);
  });

  it('rejects an entry count different from the header', () => {
    bad(withIndex(good, (raw) => raw, { entryCount: 6 }), /index has 7 entries, header says 6/);
    bad(withIndex(good, (raw) => [raw[0], raw[1], raw[2].slice(1)]), /index has 6 entries, header says 7/);
  });

  it.each([16, 18, 0])('rejects an entry tuple of %i fields', (length) => {
    bad(
      withIndex(good, (raw) => {
        const t = raw[2][0] as unknown[];
        raw[2][0] = length <= 17 ? t.slice(0, length) : [...t, 0];
        return raw;
      }),
      /not a 17-field tuple/,
    );
  });

  it.each([
    ['a parent segment', '../x'],
    ['an inner parent segment', 'lib/../a.js'],
    ['an absolute path', '/abs'],
    ['an empty segment', 'a//b'],
    ['a dot segment', 'a/./b'],
    ['a trailing slash', 'lib/'],
    ['an empty key', ''],
    ['a NUL', 'a\0b'],
    ['a backslash', 'a\\b'],
    ['a lone dot', '.'],
  ])('rejects a key with %s', (_what, key) => {
    bad(withEntry(good, 'lib/a.js', { key }), /invalid key/);
  });

  it('rejects a key that is not a string', () => {
    bad(withEntry(good, 'lib/a.js', { key: 42 }), /invalid key/);
  });

  it('isValidKey accepts normal relative keys', () => {
    expect(isValidKey('a.js')).toBe(true);
    expect(isValidKey('node_modules/@scope/pkg/index.js')).toBe(true);
    expect(isValidKey('..a/b..')).toBe(true);
    expect(isValidKey('x'.repeat(4097))).toBe(false);
  });

  it('rejects duplicate keys', () => {
    bad(
      withIndex(good, (raw) => {
        raw[2] = [raw[2][0], raw[2][0], ...raw[2].slice(2)];
        return raw;
      }),
      /duplicate key/,
    );
  });

  it.each([4, 99, -1, 1.5, '0'])('rejects kind %s', (kind) => {
    bad(withEntry(good, 'esm/m.mjs', { kind }), /kind/);
  });

  it.each([3, 255, -1, null])('rejects encoding %s', (enc) => {
    bad(withEntry(good, 'esm/m.mjs', { enc }), /encoding/);
  });

  it('rejects an asset stored as text', () => {
    bad(withEntry(good, 'img/logo.bin', { enc: 0 }), /kind asset cannot use encoding latin1/);
  });

  it('rejects a text module stored as binary', () => {
    bad(withEntry(good, 'esm/m.mjs', { enc: 2 }), /kind esm cannot use encoding binary/);
  });

  it('rejects unknown entry flags', () => {
    bad(withEntry(good, 'lib/a.js', { flags: 8 }), /unknown flags/);
    bad(withEntry(good, 'lib/a.js', { flags: 10 }), /unknown flags/);
  });

  it('rejects the require()-only flag on anything but an ES module', () => {
    bad(withEntry(good, 'lib/a.js', { flags: 4 }), /only ES module entries are flagged as loaded by require\(\) only/);
    expect(byKey(readMeta(withEntry(good, 'esm/m.mjs', { flags: 4 })).index.entries, 'esm/m.mjs').requiredOnly).toBe(true);
  });

  it.each(['chars', 'pre', 'suf', 'so', 'sl', 'co', 'cl', 'size'] as const)('rejects a negative or fractional %s', (field) => {
    bad(withEntry(good, 'lib/a.js', { [field]: -1 }), /not a non-negative integer/);
    bad(withEntry(good, 'lib/a.js', { [field]: 2.5 }), /not a non-negative integer/);
  });

  it('rejects a 64-bit offset beyond the safe integer range', () => {
    bad(withEntry(good, 'lib/a.js', { so: 1n << 60n }), /source offset is not a non-negative integer/);
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY, '1'])('rejects mtime %s', (mtime) => {
    bad(withEntry(good, 'lib/a.js', { mtime }), /mtime is invalid/);
  });

  it.each([-2, 0.5, null])('rejects order %s', (order) => {
    bad(withEntry(good, 'lib/a.js', { order }), /order is invalid/);
  });

  it.each(['sh', 'content'] as const)('rejects a %s hash of the wrong length or type', (field) => {
    bad(withEntry(good, 'lib/a.js', { [field]: Buffer.alloc(ENTRY_HASH_BYTES + 1) }), /hash/);
    bad(withEntry(good, 'lib/a.js', { [field]: 'x'.repeat(ENTRY_HASH_BYTES) }), /hash/);
  });

  it('rejects a cache length without a cache hash', () => {
    bad(withEntry(good, 'lib/a.js', { ch: null }), /cache hash/);
  });

  it('accepts no cache with a null cache hash, and rejects a malformed one', () => {
    const cli = readMeta(good).index.entries.find((e) => e.key === 'bin/cli.js')!;
    expect(cli.cacheHash).toBeNull();
    bad(withEntry(good, 'bin/cli.js', { ch: Buffer.alloc(3) }), /cache hash/);
  });

  it('rejects a source length that does not match latin1 chars', () => {
    const e = byKey(readMeta(good).index.entries, 'lib/a.js');
    bad(withEntry(good, 'lib/a.js', { sl: e.sourceLength - 1 }), /source length does not match/);
    bad(withEntry(good, 'lib/a.js', { chars: e.chars + 1 }), /source length does not match/);
  });

  it('rejects a utf16le source length that counts chars, not bytes', () => {
    const e = byKey(readMeta(good).index.entries, 'lib/dash.js');
    bad(withEntry(good, 'lib/dash.js', { sl: e.sourceLength / 2 }), /source length does not match/);
  });

  it('rejects a wrapper on a non-CommonJS entry', () => {
    const e = byKey(readMeta(good).index.entries, 'esm/m.mjs');
    // chars shrunk so the length rule still holds and the wrapper rule is the one reached
    bad(withEntry(good, 'esm/m.mjs', { pre: 1, chars: e.chars - 1 }), /only CommonJS entries are wrapped/);
    bad(withEntry(good, 'esm/m.mjs', { flags: 1 }), /only CommonJS entries are wrapped/);
  });

  it('rejects a CommonJS entry with another wrapper length', () => {
    const e = byKey(readMeta(good).index.entries, 'lib/a.js');
    bad(withEntry(good, 'lib/a.js', { pre: e.prefixChars - 1, chars: e.chars + 1 }), /unexpected CommonJS wrapper/);
    bad(withEntry(good, 'lib/a.js', { suf: 0, chars: e.chars + e.suffixChars }), /unexpected CommonJS wrapper/);
  });

  it('rejects a code cache on a non-CommonJS entry', () => {
    const a = byKey(readMeta(good).index.entries, 'lib/a.js');
    bad(
      withEntry(good, 'esm/m.mjs', { co: a.cacheOffset, cl: a.cacheLength, ch: a.cacheHash }),
      /only CommonJS entries carry a code cache/,
    );
  });

  it('rejects an entry encoded as a map, and a __proto__ key pollutes nothing', () => {
    const hostile = JSON.parse('{"__proto__": {"polluted": true}, "key": "lib/a.js", "kind": 0}') as object;
    bad(
      withIndex(good, (raw) => {
        raw[2][0] = hostile;
        return raw;
      }),
      /not a 17-field tuple/,
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
  });

  it('rejects a whole index encoded as a map, and a __proto__ key pollutes nothing', () => {
    const hostile = JSON.parse('{"__proto__": {"polluted": true}, "0": "codeblob-index/1", "length": 3}') as object;
    bad(withIndex(good, () => hostile), /index tag/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('decodeIndex itself rejects a map entry', () => {
    const bytes = packr.pack(['codeblob-index/1', 'app', [JSON.parse('{"__proto__": 1}')]]);
    expectCode(() => decodeIndex(bytes, 1), 'ERR_CODEBLOB_BAD_FORMAT', /not a 17-field tuple/);
  });

  it('encodeIndex and decodeIndex round-trip entries', () => {
    const { index } = readMeta(good);
    const again = decodeIndex(encodeIndex(index), index.entries.length);
    expect(again).toEqual(index);
  });

  it('round-trips the traced root (Node 20 blobs), with or without a resolution table, and refuses one that is not absolute', () => {
    const { index } = readMeta(good);
    for (const resolutions of [undefined, Buffer.from([1, 2, 3])]) {
      const withRoot = { ...index, ...(resolutions && { resolutions }), tracedRoot: '/srv/app' };
      expect(decodeIndex(encodeIndex(withRoot), index.entries.length)).toEqual(withRoot);
    }
    const tuples = (packr.unpack(encodeIndex(index)) as unknown[])[2];
    for (const root of ['srv/app', 7, '/srv/\0app']) {
      expectCode(() => decodeIndex(packr.pack(['codeblob-index/1', 'app', tuples, null, root]), index.entries.length), 'ERR_CODEBLOB_BAD_FORMAT', /traced root/);
    }
    expectCode(() => decodeIndex(packr.pack(['codeblob-index/1', 'app', tuples, 'not binary', '/srv/app']), index.entries.length), 'ERR_CODEBLOB_BAD_FORMAT', /not binary/);
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
    bad(withEntry(good, 'esm/m.mjs', { so: json.sourceOffset }), /overlaps/);
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
    bad(withEntry(good, 'lib/dash.js', { co: a.sourceOffset }), /overlaps/);
  });

  it('checkSections accepts the sections layoutBlob wrote', () => {
    const { header, index } = readMeta(good);
    expect(() => checkSections(header, index.entries)).not.toThrow();
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
