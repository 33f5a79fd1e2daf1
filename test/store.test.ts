/**
 * The store API, as one conformance suite run against every backend (undici's
 * `cacheStoreTests(Impl)` pattern): what a loader sees must not depend on whether the blob is
 * mapped or read. Each test builds a real app directory and its blob in a fresh temp dir.
 */
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { cachedDataVersionTag, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CJS_PREFIX, CJS_SUFFIX, entryHash, layoutBlob, type BlobPlan, type Entry, type SectionInput } from '../src/format/index.js';
import { native } from '../src/native/binding.js';
import { open, type BlobStore } from '../src/store/store.js';
import type { OpenOptions } from '../src/store/options.js';
import { expectCode } from './helpers/expect-code.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
async function collect(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    gc();
    await tick();
  }
}

// ---- the app and its blob ---------------------------------------------------------------

const FILES: Record<string, { kind: SectionInput['kind']; text?: string; bytes?: Uint8Array; cache?: Uint8Array }> = {
  'index.js': {
    kind: 'cjs',
    text: "'use strict';\nconst dash = require('./lib/dash.js');\nmodule.exports = { dash, word: 'café' };\n",
    cache: Uint8Array.from({ length: 160 }, (_, i) => (i * 37 + 11) & 0xff),
  },
  'lib/dash.js': { kind: 'cjs', text: "module.exports = 'a — b';\n", cache: Uint8Array.from({ length: 24 }, (_, i) => 200 - i) },
  'bin/cli.js': { kind: 'cjs', text: "#!/usr/bin/env node\nrequire('../index.js');\n" },
  'esm/main.mjs': { kind: 'esm', text: "export { default } from './value.mjs';\n" },
  'esm/smile.mjs': { kind: 'esm', text: "export const smile = '😀';\n" },
  'package.json': { kind: 'json', text: '{"name":"app","version":"1.0.0","main":"index.js"}\n' },
  'img/logo.bin': { kind: 'asset', bytes: Uint8Array.from({ length: 700 }, (_, i) => (i * 13) & 0xff) },
};
const KEYS = Object.keys(FILES).sort();
const TEXT_KEYS = KEYS.filter((k) => FILES[k]!.kind !== 'asset');

let dir: string;
let appRoot: string;
let stores: BlobStore[];
const savedBackendEnv = process.env.CODEBLOB_BACKEND;

beforeEach(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), 'codeblob-store-')));
  appRoot = join(dir, 'app');
  for (const [key, f] of Object.entries(FILES)) {
    const path = join(appRoot, key);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, f.bytes ?? f.text!);
  }
  stores = [];
  delete process.env.CODEBLOB_BACKEND;
});

afterEach(() => {
  for (const s of stores) s.close();
  rmSync(dir, { recursive: true, force: true });
  if (savedBackendEnv === undefined) delete process.env.CODEBLOB_BACKEND;
  else process.env.CODEBLOB_BACKEND = savedBackendEnv;
});

/** Packs the app directory the way the packer would: read each real file back. */
function inputs(): SectionInput[] {
  return Object.entries(FILES).map(([key, f], order) => {
    const path = join(appRoot, key);
    const content = readFileSync(path);
    const st = statSync(path);
    return {
      key,
      kind: f.kind,
      ...(f.kind === 'asset' ? { bytes: content } : { text: content.toString('utf8') }),
      ...(f.cache ? { cache: f.cache } : {}),
      fileSize: st.size,
      mtimeMs: st.mtimeMs,
      contentHash: entryHash(content),
      order,
    };
  });
}

function writeBlob(name = 'app.blob', over: Partial<BlobPlan> = {}): string {
  const path = join(dir, name);
  const { chunks } = layoutBlob({
    root: 'app',
    entries: inputs(),
    pageSize: 4096,
    alignment: 4096,
    v8Tag: cachedDataVersionTag(),
    nodeVersion: process.version,
    arch: process.arch,
    platform: process.platform,
    toolVersion: '0.1.0',
    ...over,
  });
  writeFileSync(path, Buffer.concat(chunks));
  return path;
}

/** A copy of `path` with the byte at `offset` flipped. */
function corruptCopy(path: string, offset: number, name = 'corrupt.blob'): string {
  const bytes = readFileSync(path);
  bytes[offset]! ^= 0x5a;
  const out = join(dir, name);
  writeFileSync(out, bytes);
  return out;
}


// ---- the conformance suite --------------------------------------------------------------

describe.each(['mmap', 'read'] as const)('%s backend', (backend) => {
  const openStore = (path: string, options: OpenOptions = {}) => {
    const s = open(path, { backend, ...options });
    stores.push(s);
    return s;
  };
  const entry = (s: BlobStore, key: string): Entry => {
    const e = s.get(key);
    if (!e) throw new Error(`no entry ${key}`);
    return e;
  };
  /** Offset of a byte inside an entry's stored text, past the wrapper. */
  function textByte(path: string, key: string): number {
    const s = open(path, { backend });
    try {
      const e = entry(s, key);
      return e.sourceOffset + e.prefixChars * (e.encoding === 'utf16le' ? 2 : 1) + 3;
    } finally {
      s.close();
    }
  }

  function cacheByte(path: string, key: string): number {
    const s = open(path, { backend });
    try {
      return entry(s, key).cacheOffset + 5;
    } finally {
      s.close();
    }
  }


  describe('opening', () => {
    it('reports the backend it uses', () => {
      const s = openStore(writeBlob());
      expect(s.backend).toBe(backend);
      expect(s.stats().backend).toBe(backend);
      expect(s.stats().fallbackReason).toBeUndefined();
      expect(s.closed).toBe(false);
    });

    it('resolves the recorded root against the blob directory', () => {
      const path = writeBlob();
      const s = openStore(path);
      expect(s.path).toBe(path);
      expect(s.root).toBe(appRoot);
    });

    it('exposes the header and the file facts', () => {
      const path = writeBlob();
      const s = openStore(path);
      const st = statSync(path);
      expect(s.header.entryCount).toBe(KEYS.length);
      expect(s.header.fileSize).toBe(st.size);
      expect(s.file).toMatchObject({ size: st.size, ino: st.ino, dev: st.dev });
      expect(s.cachesUsable).toBe(true);
      expect(s.incompatibility).toBeUndefined();
    });

    it('a nonexistent path throws ENOENT', () => {
      expectCode(() => open(join(dir, 'nope.blob'), { backend }), 'ENOENT');
    });

    it('a file that is not a blob throws ERR_CODEBLOB_BAD_FORMAT', () => {
      const path = join(dir, 'not-a-blob.txt');
      writeFileSync(path, 'x'.repeat(5000));
      expectCode(() => open(path, { backend }), 'ERR_CODEBLOB_BAD_FORMAT', /bad magic/);
    });

    it('a file shorter than a header throws ERR_CODEBLOB_BAD_FORMAT', () => {
      const path = join(dir, 'short.blob');
      writeFileSync(path, 'CODEBLOB');
      expectCode(() => open(path, { backend }), 'ERR_CODEBLOB_BAD_FORMAT', /shorter than/);
    });

    // Known bug for mmap (see the report): the native map() refuses an empty file with a raw
    // EINVAL before the store can say "not a blob"; the read backend says BAD_FORMAT.
    it('an empty file throws ERR_CODEBLOB_BAD_FORMAT', () => {
      const path = join(dir, 'empty.blob');
      writeFileSync(path, '');
      expectCode(() => open(path, { backend }), 'ERR_CODEBLOB_BAD_FORMAT');
    });

    it('a truncated blob throws ERR_CODEBLOB_BAD_FORMAT', () => {
      const full = readFileSync(writeBlob());
      const path = join(dir, 'truncated.blob');
      writeFileSync(path, full.subarray(0, full.byteLength - 1));
      expectCode(() => open(path, { backend }), 'ERR_CODEBLOB_BAD_FORMAT', /truncated/);
    });

    it('a corrupt header throws ERR_CODEBLOB_BAD_FORMAT', () => {
      expectCode(() => open(corruptCopy(writeBlob(), 30), { backend }), 'ERR_CODEBLOB_BAD_FORMAT', /checksum/);
    });

    it('a corrupt index throws ERR_CODEBLOB_BAD_FORMAT', () => {
      expectCode(() => open(corruptCopy(writeBlob(), 300), { backend }), 'ERR_CODEBLOB_BAD_FORMAT', /index hash/);
    });

    it('opens the same file twice, and closing one store leaves the other working', () => {
      const path = writeBlob();
      const a = openStore(path);
      const b = openStore(path);
      const before = b.sourceView(entry(b, 'index.js'));
      a.close();
      expect(b.source(entry(b, 'index.js'))).toBe(FILES['index.js']!.text);
      expect(before.byteLength).toBe(FILES['index.js']!.text!.length);
    });
  });

  describe('lookup', () => {
    it('entries() lists every entry, sorted by key', () => {
      const s = openStore(writeBlob());
      expect(s.entries().map((e) => e.key)).toEqual(KEYS);
    });

    it('get(key) finds an entry by its relative key', () => {
      const s = openStore(writeBlob());
      expect(s.get('lib/dash.js')).toMatchObject({ key: 'lib/dash.js', kind: 'cjs', encoding: 'utf16le' });
      expect(s.get('img/logo.bin')).toMatchObject({ kind: 'asset', encoding: 'binary' });
    });

    it('get(absolute path under the root) finds the same entry', () => {
      const s = openStore(writeBlob());
      expect(s.get(join(appRoot, 'lib', 'dash.js'))).toBe(s.get('lib/dash.js'));
    });

    it('a key the blob does not hold is undefined and a miss', () => {
      const s = openStore(writeBlob());
      expect(s.get('lib/missing.js')).toBeUndefined();
      expect(s.stats()).toMatchObject({ lookups: 1, misses: 1 });
    });

    it('an absolute path outside the root is undefined and a miss', () => {
      const s = openStore(writeBlob());
      expect(s.get(join(dir, 'index.js'))).toBeUndefined();
      expect(s.get(join(dir, 'app-other', 'index.js'))).toBeUndefined(); // shares the root's prefix
      expect(s.get(appRoot)).toBeUndefined();
      expect(s.stats()).toMatchObject({ lookups: 3, misses: 3 });
    });

    it('a sibling directory whose name extends the root is outside it', () => {
      const s = openStore(writeBlob());
      // "<dir>/appXlib/dash.js" minus the length of "<dir>/app/" would read "lib/dash.js"
      expect(s.get(`${appRoot}Xlib${sep}dash.js`)).toBeUndefined();
      expect(s.stats().misses).toBe(1);
    });

    it('counts lookups and misses separately', () => {
      const s = openStore(writeBlob());
      s.get('index.js');
      s.get(join(appRoot, 'package.json'));
      s.get('nope.js');
      expect(s.stats()).toMatchObject({ lookups: 3, misses: 1 });
    });

    it('filename(entry) is the absolute path of the original file', () => {
      const s = openStore(writeBlob());
      expect(s.filename(entry(s, 'lib/dash.js'))).toBe(join(appRoot, 'lib', 'dash.js'));
    });

    it('options.root overrides the recorded root for absolute lookups', () => {
      const other = join(dir, 'deployed');
      const s = openStore(writeBlob(), { root: other });
      expect(s.root).toBe(other);
      expect(s.get(join(other, 'index.js'))?.key).toBe('index.js');
      expect(s.get(join(appRoot, 'index.js'))).toBeUndefined();
      expect(s.filename(entry(s, 'index.js'))).toBe(join(other, 'index.js'));
    });

    it('keys that are not normalised do not match', () => {
      const s = openStore(writeBlob());
      expect(s.get('./index.js')).toBeUndefined();
      expect(s.get('lib//dash.js')).toBeUndefined();
      expect(s.get('__proto__')).toBeUndefined();
    });
  });

  describe('sources and views', () => {
    it.each(TEXT_KEYS)('source(%s) equals the original text', (key) => {
      const s = openStore(writeBlob());
      const e = entry(s, key);
      expect(s.source(e)).toBe(FILES[key]!.text);
      expect(s.source(e)).toBe(readFileSync(s.filename(e), 'utf8'));
    });

    it('source() gives back a leading "#!" although the section stores "//"', () => {
      const s = openStore(writeBlob());
      const text = s.source(entry(s, 'bin/cli.js'));
      expect(text.startsWith('#!/usr/bin/env node\n')).toBe(true);
    });

    it('compileSource(cjs) is the source inside the CommonJS wrapper', () => {
      const s = openStore(writeBlob());
      const code = s.compileSource(entry(s, 'index.js'));
      expect(code.startsWith(CJS_PREFIX)).toBe(true);
      expect(code.endsWith(CJS_SUFFIX)).toBe(true);
      expect(code).toBe(CJS_PREFIX + FILES['index.js']!.text + CJS_SUFFIX);
    });

    it('compileSource(cjs) of a UTF-16 module is wrapped too', () => {
      const s = openStore(writeBlob());
      expect(s.compileSource(entry(s, 'lib/dash.js'))).toBe(CJS_PREFIX + FILES['lib/dash.js']!.text + CJS_SUFFIX);
    });

    it('compileSource(cjs) turns a "#!" line into a "//" comment of the same length', () => {
      const s = openStore(writeBlob());
      const text = FILES['bin/cli.js']!.text!;
      const code = s.compileSource(entry(s, 'bin/cli.js'));
      expect(code).toBe(CJS_PREFIX + '//' + text.slice(2) + CJS_SUFFIX);
      expect(code).not.toContain('#!');
    });

    it('compileSource() of an ES module or JSON is its source', () => {
      const s = openStore(writeBlob());
      for (const key of ['esm/main.mjs', 'esm/smile.mjs', 'package.json']) {
        expect(s.compileSource(entry(s, key))).toBe(FILES[key]!.text);
      }
    });

    it('compiled CommonJS source runs', () => {
      const s = openStore(writeBlob());
      const fn = runInNewContext(s.compileSource(entry(s, 'lib/dash.js'))) as (e: object, r: unknown, m: { exports: unknown }) => void;
      const module = { exports: {} as unknown };
      fn(module.exports as object, undefined, module);
      expect(module.exports).toBe('a — b');
    });

    it.each(TEXT_KEYS)('sourceView(%s) holds the text in its stored encoding, without the wrapper', (key) => {
      const s = openStore(writeBlob());
      const e = entry(s, key);
      const view = s.sourceView(e);
      expect(view).toBeInstanceOf(Uint8Array);
      const text = FILES[key]!.text!;
      // A zero-copy view shows the bytes as stored: a leading "#!" reads "//" (same length).
      const expected = e.shebang ? '//' + text.slice(2) : text;
      expect(Buffer.from(view).toString(e.encoding === 'utf16le' ? 'utf16le' : 'latin1')).toBe(expected);
    });

    it("an asset's sourceView is its bytes", () => {
      const s = openStore(writeBlob());
      expect(new Uint8Array(s.sourceView(entry(s, 'img/logo.bin')))).toEqual(FILES['img/logo.bin']!.bytes);
    });

    it('source() and compileSource() of an asset throw ERR_CODEBLOB_INVALID_OPTION', () => {
      const s = openStore(writeBlob());
      const e = entry(s, 'img/logo.bin');
      expectCode(() => s.source(e), 'ERR_CODEBLOB_INVALID_OPTION', /sourceView/);
      expectCode(() => s.compileSource(e), 'ERR_CODEBLOB_INVALID_OPTION');
    });

    it('cacheView returns the cache bytes given at pack time', () => {
      const s = openStore(writeBlob());
      for (const key of ['index.js', 'lib/dash.js']) {
        const view = s.cacheView(entry(s, key));
        expect(Buffer.isBuffer(view)).toBe(true);
        expect(new Uint8Array(view!)).toEqual(FILES[key]!.cache);
      }
    });

    it('cacheView is undefined for an entry without a cache', () => {
      const s = openStore(writeBlob());
      expect(s.cacheView(entry(s, 'bin/cli.js'))).toBeUndefined();
      expect(s.cacheView(entry(s, 'esm/main.mjs'))).toBeUndefined();
    });

    it('an entry of another store is refused', () => {
      const path = writeBlob();
      const a = openStore(path);
      const b = openStore(path);
      expectCode(() => a.source(entry(b, 'index.js')), 'ERR_CODEBLOB_INVALID_OPTION', /does not belong/);
    });

    it('advise() accepts a whole-file and a per-entry hint', () => {
      const s = openStore(writeBlob());
      expect(() => s.advise('willneed')).not.toThrow();
      expect(() => s.advise('sequential', entry(s, 'index.js'))).not.toThrow();
    });

    it('digest() is the SHA-256 of the file', () => {
      const path = writeBlob();
      const s = openStore(path);
      expect(s.digest()).toBe(createHash('sha256').update(readFileSync(path)).digest('hex'));
    });
  });

  describe('compatibility', () => {
    const otherTag = (cachedDataVersionTag() + 1) >>> 0;

    it('a blob whose caches were built for another V8 opens with caches marked unusable', () => {
      const s = openStore(writeBlob('old.blob', { v8Tag: otherTag }));
      expect(s.cachesUsable).toBe(false);
      expect(s.incompatibility).toMatch(/V8 cache tag/);
    });

    it('its cacheView is undefined, but sources still serve', () => {
      const s = openStore(writeBlob('old.blob', { v8Tag: otherTag }));
      expect(s.cacheView(entry(s, 'index.js'))).toBeUndefined();
      expect(s.source(entry(s, 'index.js'))).toBe(FILES['index.js']!.text);
    });

    it('requireCompatible: true refuses it with ERR_CODEBLOB_INCOMPATIBLE', () => {
      const path = writeBlob('old.blob', { v8Tag: otherTag });
      expectCode(() => open(path, { backend, requireCompatible: true }), 'ERR_CODEBLOB_INCOMPATIBLE', /V8 cache tag/);
    });

    it('requireCompatible: true opens a compatible blob', () => {
      expect(openStore(writeBlob(), { requireCompatible: true }).cachesUsable).toBe(true);
    });

    it('another arch makes caches unusable and says so', () => {
      const s = openStore(writeBlob('arm.blob', { arch: process.arch === 'arm64' ? 'x64' : 'arm64' }));
      expect(s.cachesUsable).toBe(false);
      expect(s.incompatibility).toMatch(/arch/);
    });
  });

  describe('integrity', () => {
    it('a flipped source byte does not stop open (checks are lazy)', () => {
      const good = writeBlob();
      const s = openStore(corruptCopy(good, textByte(good, 'index.js')));
      expect(s.entries()).toHaveLength(KEYS.length);
    });

    it('source() of the corrupt entry throws ERR_CODEBLOB_CORRUPT_ENTRY and is counted', () => {
      const good = writeBlob();
      const s = openStore(corruptCopy(good, textByte(good, 'index.js')));
      expectCode(() => s.source(entry(s, 'index.js')), 'ERR_CODEBLOB_CORRUPT_ENTRY', /index\.js/);
      expect(s.stats().corrupt).toBe(1);
    });

    it('counts a corrupt entry once, however often it is asked for or verified', () => {
      const good = writeBlob();
      const s = openStore(corruptCopy(good, textByte(good, 'index.js')));
      for (let i = 0; i < 3; i++) expectCode(() => s.source(entry(s, 'index.js')), 'ERR_CODEBLOB_CORRUPT_ENTRY');
      expect(s.verify()).toHaveLength(1);
      expect(s.stats().corrupt).toBe(1);
    });

    it('every accessor refuses the corrupt entry', () => {
      const good = writeBlob();
      const s = openStore(corruptCopy(good, textByte(good, 'index.js')));
      const e = entry(s, 'index.js');
      expectCode(() => s.compileSource(e), 'ERR_CODEBLOB_CORRUPT_ENTRY');
      expectCode(() => s.sourceView(e), 'ERR_CODEBLOB_CORRUPT_ENTRY');
      expectCode(() => s.source(e), 'ERR_CODEBLOB_CORRUPT_ENTRY'); // still refused on a second try
    });

    it('other entries of a blob with a corrupt entry still serve', () => {
      const good = writeBlob();
      const s = openStore(corruptCopy(good, textByte(good, 'index.js')));
      expect(() => s.source(entry(s, 'index.js'))).toThrow();
      expect(s.source(entry(s, 'lib/dash.js'))).toBe(FILES['lib/dash.js']!.text);
      expect(new Uint8Array(s.cacheView(entry(s, 'index.js'))!)).toEqual(FILES['index.js']!.cache);
    });

    it('a corrupt UTF-16 source is caught too', () => {
      const good = writeBlob();
      const s = openStore(corruptCopy(good, textByte(good, 'lib/dash.js')));
      expectCode(() => s.source(entry(s, 'lib/dash.js')), 'ERR_CODEBLOB_CORRUPT_ENTRY');
    });

    it('a corrupt asset is caught by sourceView', () => {
      const good = writeBlob();
      const s = openStore(corruptCopy(good, textByte(good, 'img/logo.bin')));
      expectCode(() => s.sourceView(entry(s, 'img/logo.bin')), 'ERR_CODEBLOB_CORRUPT_ENTRY');
    });

    it('a corrupt byte in the wrapper is caught by source() too', () => {
      const good = writeBlob();
      const s = openStore(corruptCopy(good, textByte(good, 'index.js') - 10));
      expectCode(() => s.source(entry(s, 'index.js')), 'ERR_CODEBLOB_CORRUPT_ENTRY');
    });

    it('verify() lists the problem', () => {
      const good = writeBlob();
      const s = openStore(corruptCopy(good, textByte(good, 'index.js')));
      expect(s.verify()).toEqual([{ key: 'index.js', section: 'source', message: expect.stringMatching(/hash/) }]);
    });

    it('verify() of a sound blob is empty', () => {
      expect(openStore(writeBlob()).verify()).toEqual([]);
    });

    it("verify: 'full' refuses the blob at open with ERR_CODEBLOB_CORRUPT_ENTRY", () => {
      const good = writeBlob();
      const bad = corruptCopy(good, textByte(good, 'index.js'));
      expectCode(() => open(bad, { backend, verify: 'full' }), 'ERR_CODEBLOB_CORRUPT_ENTRY', /index\.js/);
    });

    it("verify: 'full' opens a sound blob", () => {
      expect(openStore(writeBlob(), { verify: 'full' }).verifyMode).toBe('full');
    });

    it("verify: 'none' trusts the file and serves the corrupt text", () => {
      const good = writeBlob();
      const s = openStore(corruptCopy(good, textByte(good, 'index.js')), { verify: 'none' });
      const text = s.source(entry(s, 'index.js'));
      expect(text).toHaveLength(FILES['index.js']!.text!.length);
      expect(text).not.toBe(FILES['index.js']!.text);
    });

    it('a corrupt cache byte makes cacheView throw; the source still serves', () => {
      const good = writeBlob();
      const s = openStore(corruptCopy(good, cacheByte(good, 'index.js')));
      const e = entry(s, 'index.js');
      expectCode(() => s.cacheView(e), 'ERR_CODEBLOB_CORRUPT_ENTRY', /cache/);
      expect(s.source(e)).toBe(FILES['index.js']!.text);
      expect(s.verify()).toEqual([{ key: 'index.js', section: 'cache', message: expect.stringMatching(/hash/) }]);
    });

    it('a flipped padding byte changes the digest but no entry', () => {
      const good = writeBlob();
      const s0 = openStore(good);
      const first = [...s0.entries()].sort((a, b) => a.sourceOffset - b.sourceOffset)[0]!;
      const bad = corruptCopy(good, first.sourceOffset - 1); // zero padding in front of the first section
      const s = openStore(bad);
      expect(s.verify()).toEqual([]);
      expect(s.digest()).not.toBe(s0.digest());
    });
  });

  describe('resolution table', () => {
    const TABLE = Uint8Array.from({ length: 5000 }, (_, i) => (i * 7 + 3) & 0xff); // opaque to the store

    it('a blob without one says so', () => {
      const s = openStore(writeBlob());
      expect(s.hasResolutionTable()).toBe(false);
      expect(s.resolutionTable()).toBeUndefined();
    });

    it('hands out a private copy of the recorded bytes, each time', () => {
      const s = openStore(writeBlob('t.blob', { resolutions: TABLE }));
      expect(s.hasResolutionTable()).toBe(true);
      const a = s.resolutionTable()!;
      expect(new Uint8Array(a)).toEqual(TABLE);
      a[0]! ^= 0xff; // a copy: changing it changes nothing for the next caller
      expect(new Uint8Array(s.resolutionTable()!)).toEqual(TABLE);
    });

    it(backend === 'mmap' ? 'refuses the table once the index was changed in place after open' : 'keeps serving its private copy when the file changes after open', () => {
      const path = writeBlob('t.blob', { resolutions: TABLE });
      const s = openStore(path);
      const bytes = readFileSync(path);
      bytes[s.header.indexOffset + s.header.indexLength - 10]! ^= 0x01;
      const fd = openSync(path, 'r+'); // in place, as codeblob never does
      try {
        writeSync(fd, bytes, s.header.indexOffset + s.header.indexLength - 10, 1, s.header.indexOffset + s.header.indexLength - 10);
      } finally {
        closeSync(fd);
      }
      if (backend === 'mmap') expectCode(() => s.resolutionTable(), 'ERR_CODEBLOB_BAD_FORMAT', /index changed/);
      else expect(new Uint8Array(s.resolutionTable()!)).toEqual(TABLE);
    });
  });

  it(backend === 'mmap' ? 'changedSinceOpen: false until the file is written in place, true after' : 'changedSinceOpen: always false (a private copy)', () => {
    const path = writeBlob('c.blob');
    const s = openStore(path);
    expect(s.changedSinceOpen()).toBe(false);
    expect(s.changedSinceOpen()).toBe(false);
    const fd = openSync(path, 'r+'); // in place, as codeblob never does
    try {
      writeSync(fd, Buffer.from([0]), 0, 1, statSync(path).size); // one byte longer
    } finally {
      closeSync(fd);
    }
    expect(s.changedSinceOpen()).toBe(backend === 'mmap');
  });

  describe('verifyAhead', () => {
    /** Waits (without blocking the event loop) until the background thread has ended. */
    async function finished(s: BlobStore) {
      for (let i = 0; i < 2000 && s.verifyAheadProgress()?.running; i++) await new Promise((r) => setTimeout(r, 5));
      return s.verifyAheadProgress();
    }
    const sections = KEYS.length + KEYS.filter((k) => FILES[k]!.cache).length;

    if (backend === 'read') {
      it('is not available: every section is hashed on first use', () => {
        const s = openStore(writeBlob());
        expect(s.verifyAhead()).toBe(false);
        expect(s.verifyAheadProgress()).toBeUndefined();
        expect(s.source(entry(s, 'index.js'))).toBe(FILES['index.js']!.text);
        expect(s.stats().verifiedAhead).toBe(0);
      });
      return;
    }

    it('checks every section of the startup range on a thread; the store then hashes none', async () => {
      const s = openStore(writeBlob());
      expect(s.verifyAhead()).toBe(true);
      expect(s.verifyAhead()).toBe(true); // once per store
      expect(await finished(s)).toEqual({ sections, sound: sections, corrupt: 0, running: false });
      for (const key of TEXT_KEYS) expect(s.source(entry(s, key))).toBe(FILES[key]!.text);
      expect(new Uint8Array(s.cacheView(entry(s, 'index.js'))!)).toEqual(FILES['index.js']!.cache);
      expect(new Uint8Array(s.sourceView(entry(s, 'img/logo.bin')))).toEqual(FILES['img/logo.bin']!.bytes);
      expect(s.stats()).toMatchObject({ verifiedAhead: TEXT_KEYS.length + 2, corrupt: 0 });
    });

    it('leaves out modules the trace did not load (the cold tail)', async () => {
      const cold = new Set(['bin/cli.js', 'esm/smile.mjs']);
      const path = join(dir, 'cold.blob');
      const { chunks } = layoutBlob({
        root: 'app', entries: inputs().map((e) => (cold.has(e.key) ? { ...e, order: -1 } : e)), pageSize: 4096, alignment: 4096,
        v8Tag: cachedDataVersionTag(), nodeVersion: process.version, arch: process.arch, platform: process.platform, toolVersion: '0.1.0',
      });
      writeFileSync(path, Buffer.concat(chunks));
      const s = openStore(path);
      s.verifyAhead();
      expect(await finished(s)).toMatchObject({ sections: sections - cold.size, sound: sections - cold.size });
      expect(s.source(entry(s, 'bin/cli.js'))).toBe(FILES['bin/cli.js']!.text); // hashed here instead
      expect(s.stats().verifiedAhead).toBe(0);
    });

    it('a corrupt source found ahead is refused, counted once, and the rest still serves', async () => {
      const good = writeBlob();
      const s = openStore(corruptCopy(good, textByte(good, 'index.js')));
      s.verifyAhead();
      expect(await finished(s)).toMatchObject({ sections, sound: sections - 1, corrupt: 1 });
      for (let i = 0; i < 2; i++) expectCode(() => s.source(entry(s, 'index.js')), 'ERR_CODEBLOB_CORRUPT_ENTRY', /index\.js/);
      expect(s.source(entry(s, 'lib/dash.js'))).toBe(FILES['lib/dash.js']!.text);
      expect(new Uint8Array(s.cacheView(entry(s, 'index.js'))!)).toEqual(FILES['index.js']!.cache);
      expect(s.stats().corrupt).toBe(1);
    });

    it('a corrupt cache found ahead is refused; the source still serves', async () => {
      const good = writeBlob();
      const s = openStore(corruptCopy(good, cacheByte(good, 'index.js')));
      s.verifyAhead();
      expect(await finished(s)).toMatchObject({ corrupt: 1 });
      expectCode(() => s.cacheView(entry(s, 'index.js')), 'ERR_CODEBLOB_CORRUPT_ENTRY', /cache/);
      expect(s.source(entry(s, 'index.js'))).toBe(FILES['index.js']!.text);
    });

    it('has nothing to do when every section is already checked', () => {
      expect(openStore(writeBlob(), { verify: 'none' }).verifyAhead()).toBe(false);
      const s = openStore(writeBlob());
      expect(s.verify()).toEqual([]);
      expect(s.verifyAhead()).toBe(false);
    });

    it('sections used before the thread reaches them are hashed on the spot, with the same answers', () => {
      const good = writeBlob();
      const s = openStore(corruptCopy(good, textByte(good, 'index.js')));
      s.verifyAhead();
      // Straight away: the thread may or may not have got there; the answers must not depend on it.
      expectCode(() => s.source(entry(s, 'index.js')), 'ERR_CODEBLOB_CORRUPT_ENTRY');
      expect(s.source(entry(s, 'lib/dash.js'))).toBe(FILES['lib/dash.js']!.text);
      expect(s.stats().corrupt).toBe(1);
    });

    it('a second store on the same mapping joins the check: what the first verified counts for it', async () => {
      const path = writeBlob();
      const a = openStore(path);
      expect(a.verifyAhead()).toBe(true);
      expect(await finished(a)).toEqual({ sections, sound: sections, corrupt: 0, running: false });
      const b = openStore(path); // another thread's store would map the same way: one mapping
      expect(b.verifyAhead()).toBe(true);
      expect(b.verifyAheadProgress()).toEqual({ sections, sound: sections, corrupt: 0, running: false });
      for (const key of TEXT_KEYS) expect(b.source(entry(b, key))).toBe(FILES[key]!.text);
      expect(b.stats().verifiedAhead).toBe(TEXT_KEYS.length);
    });

    it('sections a loading thread hashed itself count for the other stores; a corrupt one stays refused', async () => {
      const good = writeBlob();
      const path = corruptCopy(good, textByte(good, 'index.js'));
      const a = openStore(path);
      a.verifyAhead();
      a.stopVerifyAhead(); // nothing more from the thread: a hashes what it uses
      await finished(a);
      expectCode(() => a.source(entry(a, 'index.js')), 'ERR_CODEBLOB_CORRUPT_ENTRY');
      expect(a.source(entry(a, 'lib/dash.js'))).toBe(FILES['lib/dash.js']!.text);
      const b = openStore(path);
      b.verifyAhead(); // a new job (the old one was stopped), starting from what was found sound
      b.stopVerifyAhead();
      await finished(b);
      expect(b.source(entry(b, 'lib/dash.js'))).toBe(FILES['lib/dash.js']!.text);
      expect(b.stats().verifiedAhead).toBeGreaterThanOrEqual(1);
      expectCode(() => b.source(entry(b, 'index.js')), 'ERR_CODEBLOB_CORRUPT_ENTRY');
      expect(b.stats().corrupt).toBe(1);
    });

    it('close() while it runs stops it; strings handed out stay valid', async () => {
      const path = writeBlob();
      const s = openStore(path);
      s.verifyAhead();
      const text = s.source(entry(s, 'index.js'));
      // A second store joins the check, to see when its thread has ended (stopping it stops it for both).
      const watcher = openStore(path);
      watcher.verifyAhead();
      s.close();
      expectCode(() => s.verifyAheadProgress(), 'ERR_CODEBLOB_CLOSED');
      expect(await finished(watcher)).toMatchObject({ running: false });
      watcher.close(); // the string is now all that holds the mapping
      expect(text.split('').join('')).toBe(FILES['index.js']!.text);
    });
  });

  describe('stats', () => {
    it('counts strings handed out', () => {
      const s = openStore(writeBlob());
      s.source(entry(s, 'index.js'));
      s.source(entry(s, 'lib/dash.js'));
      s.compileSource(entry(s, 'esm/main.mjs'));
      s.sourceView(entry(s, 'package.json')); // a view, not a string
      expect(s.stats().strings).toBe(3);
    });

    it(`stringsCopied is ${backend === 'mmap' ? '0 (external strings)' : 'every string (read copies)'}`, () => {
      const s = openStore(writeBlob());
      for (const key of TEXT_KEYS) s.source(entry(s, key));
      const { strings, stringsCopied } = s.stats();
      expect(strings).toBe(TEXT_KEYS.length);
      expect(stringsCopied).toBe(backend === 'mmap' ? 0 : strings);
    });

    it('bytesMapped is the file size', () => {
      const path = writeBlob();
      expect(openStore(path).stats().bytesMapped).toBe(statSync(path).size);
    });

    it(`bytesResident is ${backend === 'mmap' ? 'whole pages, never more than the file' : 'undefined'}`, () => {
      const s = openStore(writeBlob());
      s.source(entry(s, 'index.js'));
      const { bytesResident, bytesMapped } = s.stats();
      if (backend === 'read') {
        expect(bytesResident).toBeUndefined();
      } else {
        const page = native()!.pageSize;
        expect(typeof bytesResident).toBe('number');
        expect(bytesResident! % page === 0 || bytesResident === bytesMapped).toBe(true);
        expect(bytesResident).toBeGreaterThan(0);
        expect(bytesResident).toBeLessThanOrEqual(bytesMapped);
      }
    });

    it('starts at zero', () => {
      expect(openStore(writeBlob()).stats()).toMatchObject({ strings: 0, stringsCopied: 0, lookups: 0, misses: 0, corrupt: 0 });
    });
  });

  describe('close', () => {
    it('makes later calls throw ERR_CODEBLOB_CLOSED', () => {
      const s = openStore(writeBlob());
      const e = entry(s, 'index.js');
      s.close();
      expect(s.closed).toBe(true);
      const calls: Array<() => unknown> = [
        () => s.entries(),
        () => s.get('index.js'),
        () => s.source(e),
        () => s.compileSource(e),
        () => s.sourceView(e),
        () => s.cacheView(e),
        () => s.verify(),
        () => s.digest(),
        () => s.stats(),
        () => s.advise('normal'),
        () => s.backend,
      ];
      for (const call of calls) expectCode(call, 'ERR_CODEBLOB_CLOSED');
    });

    it('is idempotent', () => {
      const s = openStore(writeBlob());
      s.close();
      expect(() => s.close()).not.toThrow();
      expect(s.closed).toBe(true);
    });

    it('a string obtained before close stays correct after close and gc', async () => {
      const s = openStore(writeBlob());
      const one = s.source(entry(s, 'index.js'));
      const two = s.compileSource(entry(s, 'lib/dash.js'));
      s.close();
      await collect();
      expect(one.split('').join('')).toBe(FILES['index.js']!.text);
      expect(two.split('').join('')).toBe(CJS_PREFIX + FILES['lib/dash.js']!.text + CJS_SUFFIX);
    });

    it.runIf(backend === 'mmap')('views obtained before close become zero-length', () => {
      const s = openStore(writeBlob());
      const source = s.sourceView(entry(s, 'index.js'));
      const cache = s.cacheView(entry(s, 'index.js'))!;
      expect(source.byteLength).toBeGreaterThan(0);
      s.close();
      expect(source.byteLength).toBe(0);
      expect(cache.byteLength).toBe(0);
    });

    it.runIf(backend === 'mmap')('releases the mapping once nothing points into it', async () => {
      const n = native()!;
      await collect();
      const before = n.liveMappings();
      const s = open(writeBlob(), { backend });
      expect(n.liveMappings()).toBe(before + 1);
      s.close();
      await tick(); // released at once, not left for the GC to find
      expect(n.liveMappings()).toBe(before);
    });

    it.runIf(backend === 'mmap')('a blob refused at open does not leak its mapping', async () => {
      const n = native()!;
      const good = writeBlob();
      const bad = corruptCopy(good, 300);
      await collect();
      const before = n.liveMappings();
      expect(() => open(bad, { backend })).toThrow();
      expect(() => open(writeBlob('old.blob', { v8Tag: 1 }), { backend, requireCompatible: true })).toThrow();
      await tick(); // released at once, not left for the GC to find
      expect(n.liveMappings()).toBe(before);
      await collect();
      expect(n.liveMappings()).toBe(before);
    });
  });
});

// ---- options and backend choice ---------------------------------------------------------

describe('open() options', () => {
  it.each([
    [{ bogus: 1 }, /options\.bogus is not an option/],
    [{ backend: 'fast' }, /options\.backend must be one of/],
    [{ backend: 1 }, /options\.backend/],
    [{ verify: 'sometimes' }, /options\.verify must be one of/],
    [{ root: '' }, /options\.root/],
    [{ root: 5 }, /options\.root/],
    [{ requireCompatible: 'yes' }, /options\.requireCompatible/],
  ])('%o throws ERR_CODEBLOB_INVALID_OPTION naming the option', (options, message) => {
    const path = writeBlob();
    expectCode(() => open(path, options as OpenOptions), 'ERR_CODEBLOB_INVALID_OPTION', message);
  });

  it('a non-object options throws ERR_CODEBLOB_INVALID_OPTION', () => {
    const path = writeBlob();
    expectCode(() => open(path, null as unknown as OpenOptions), 'ERR_CODEBLOB_INVALID_OPTION', /options must be an object/);
    expectCode(() => open(path, 'read' as unknown as OpenOptions), 'ERR_CODEBLOB_INVALID_OPTION');
  });

  it('the unknown-key message lists the known options', () => {
    expectCode(() => open(writeBlob(), { verfy: 'full' } as OpenOptions), 'ERR_CODEBLOB_INVALID_OPTION', /root, backend, verify, requireCompatible/);
  });

  it('defaults: auto backend (mmap, the addon is built), lazy verification', () => {
    const s = open(writeBlob());
    stores.push(s);
    expect(s.backend).toBe('mmap');
    expect(s.verifyMode).toBe('lazy');
  });
});

describe('CODEBLOB_BACKEND', () => {
  it('=read makes auto pick the read backend', () => {
    process.env.CODEBLOB_BACKEND = 'read';
    const s = open(writeBlob(), { backend: 'auto' });
    stores.push(s);
    expect(s.backend).toBe('read');
    expect(s.stats().fallbackReason).toBeUndefined();
  });

  it('=read also applies when no backend is given', () => {
    process.env.CODEBLOB_BACKEND = 'read';
    const s = open(writeBlob());
    stores.push(s);
    expect(s.backend).toBe('read');
  });

  it('does not override an explicit backend', () => {
    process.env.CODEBLOB_BACKEND = 'read';
    const s = open(writeBlob(), { backend: 'mmap' });
    stores.push(s);
    expect(s.backend).toBe('mmap');
  });

  it('an unknown value is ignored', () => {
    process.env.CODEBLOB_BACKEND = 'floppy';
    const s = open(writeBlob());
    stores.push(s);
    expect(s.backend).toBe('mmap');
  });
});
