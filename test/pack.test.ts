/**
 * The packer on real packages (the reference corpus) and on small apps: completeness,
 * determinism, zero-copy strings equal to the files, CLI behaviour and errors.
 */
import { readFileSync, mkdtempSync, rmSync, writeFileSync, mkdirSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { open } from '../src/index.js';
import { cleanEnv, cli, referenceCorpus, run } from './helpers/env.js';

const codeblob = (args: string[], cwd: string) => run(process.execPath, [cli, ...args], { cwd, env: cleanEnv() });

describe('packing the reference corpus', () => {
  const corpus = referenceCorpus();
  let dir: string;
  let first: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'codeblob-pack-'));
    first = join(dir, 'a.blob');
    const r = codeblob(['pack', 'entry.js', '-o', first], corpus);
    expect(r.status, r.stderr).toBe(0);
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('contains every JS and JSON module that a plain run loads', () => {
    const listed = run(process.execPath, ['-e', "require('./entry.js'); console.log(JSON.stringify(Object.keys(require.cache)))"], { cwd: corpus, env: cleanEnv() });
    const loaded = (JSON.parse(listed.stdout) as string[]).filter((f) => /\.(c?js|json)$/.test(f));
    expect(loaded.length).toBeGreaterThan(1200);
    const store = open(first);
    try {
      const missing = loaded.filter((f) => !store.get(f));
      expect(missing).toEqual([]);
    } finally {
      store.close();
    }
  });

  it('packs byte-identical blobs twice in a row', () => {
    const second = join(dir, 'b.blob');
    const r = codeblob(['pack', 'entry.js', '-o', second], corpus);
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(second).equals(readFileSync(first))).toBe(true);
  }, 120_000);

  it('passes `codeblob verify`', () => {
    const r = codeblob(['verify', first], corpus);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^ok +1\d{3} entries, every hash matches/m);
  });

  it('serves every source as an external string, uncopied, equal to the file on disk', () => {
    const store = open(first, { backend: 'mmap' });
    try {
      expect(store.backend).toBe('mmap');
      let compared = 0;
      for (const e of store.entries()) {
        expect(store.source(e)).toBe(readFileSync(store.filename(e), 'utf8'));
        compared++;
      }
      expect(compared).toBeGreaterThan(1300);
      expect(store.stats().stringsCopied).toBe(0);
      expect(store.stats().strings).toBe(compared);
      // Sources that need two bytes per char were stored as UTF-16, the rest as Latin-1.
      expect(store.entries().some((e) => e.encoding === 'utf16le')).toBe(true);
      expect(store.entries().filter((e) => e.kind === 'cjs' && e.cacheLength > 0).length).toBeGreaterThan(1250);
    } finally {
      store.close();
    }
  });

  it('lays sections out on page boundaries with --align page', () => {
    const paged = join(dir, 'paged.blob');
    const r = codeblob(['pack', 'entry.js', '--align', 'page', '--json', '-o', paged], corpus);
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as { alignment: number; fileSize: number; paddingBytes: number };
    expect(summary.alignment).toBe(4096);
    const store = open(paged);
    try {
      for (const e of store.entries()) expect(e.sourceOffset % 4096).toBe(0);
      expect(store.header.fileSize).toBeGreaterThan(readFileSync(first).length);
    } finally {
      store.close();
    }
  }, 120_000);
});

describe('packing small apps', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const app = (files: Record<string, string>) => {
    dir = mkdtempSync(join(tmpdir(), 'codeblob-app-'));
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(join(dir, name, '..'), { recursive: true });
      writeFileSync(join(dir, name), text);
    }
    return dir;
  };

  it('stops a server after --settle-ms, runs --train, and packs what the training loaded', () => {
    app({
      'package.json': '{"type":"commonjs"}',
      'server.js': "require('./a'); setInterval(() => {}, 1000); console.log('listening');",
      'a.js': 'exports.a = 1;',
      'lazy.js': 'exports.lazy = true;',
      'warm.js': "module.exports = async () => { require('./lazy'); };",
    });
    const r = codeblob(['pack', 'server.js', '--settle-ms', '300', '--train', 'warm.js', '--json', '-o', 'app.blob'], dir);
    expect(r.status, r.stderr).toBe(0);
    const store = open(join(dir, 'app.blob'));
    try {
      expect(store.entries().map((e) => e.key).sort()).toEqual(['a.js', 'lazy.js', 'server.js', 'warm.js']);
    } finally {
      store.close();
    }
  });

  it('adds --include files and globs compiled without running, assets as bytes', () => {
    app({
      'package.json': '{"type":"commonjs"}',
      'main.js': "console.log('hi');",
      'extra/one.js': 'exports.one = 1;',
      'extra/deep/two.cjs': 'exports.two = 2;',
      'extra/data.bin': '\u0000\u0001binary',
    });
    const r = codeblob(['pack', 'main.js', '--include', 'extra/**/*.cjs', '--include', 'extra/one.js', '--include', 'extra/data.bin', '-o', 'app.blob'], dir);
    expect(r.status, r.stderr).toBe(0);
    const store = open(join(dir, 'app.blob'));
    try {
      expect(store.get('extra/one.js')?.cacheLength).toBeGreaterThan(0);
      expect(store.get('extra/deep/two.cjs')?.kind).toBe('cjs');
      expect(store.get('extra/one.js')?.order).toBe(-1);
      const asset = store.get('extra/data.bin')!;
      expect(asset.kind).toBe('asset');
      expect(Buffer.from(store.sourceView(asset)).equals(readFileSync(join(dir, 'extra/data.bin')))).toBe(true);
    } finally {
      store.close();
    }
  });

  it('fails clearly when the entry crashes, and leaves no file behind', () => {
    app({ 'package.json': '{}', 'main.js': "throw new Error('boom at startup');" });
    const r = codeblob(['pack', 'main.js', '-o', 'app.blob'], dir);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/exited with code 1 while being traced \(pass --allow-failure/);
    expect(r.stderr).toContain('boom at startup');
    expect(r.stderr).not.toMatch(/^\s+at .*dist\/cli/m);
    expect(readdirSync(dir).filter((f) => f.includes('app.blob'))).toEqual([]);
  });

  it('gives up on an entry that never ends, with the --settle-ms hint', () => {
    app({ 'package.json': '{}', 'main.js': 'setInterval(() => {}, 1000);' });
    const r = codeblob(['pack', 'main.js', '--timeout', '1000', '-o', 'app.blob'], dir);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/still running after 1000 ms.*--settle-ms/);
    expect(existsSync(join(dir, 'app.blob'))).toBe(false);
  });

  it('reports usage errors with exit code 2', () => {
    app({ 'package.json': '{}', 'main.js': '' });
    expect(codeblob(['pack', 'main.js'], dir)).toMatchObject({ status: 2, stderr: expect.stringMatching(/needs an output path/) });
    expect(codeblob(['pack', '-o', 'x.blob'], dir)).toMatchObject({ status: 2 });
    expect(codeblob(['pack', 'main.js', '-o', 'x.blob', '--align', 'sideways'], dir)).toMatchObject({ status: 2 });
    expect(codeblob(['pack', 'main.js', '-o', 'x.blob', '--bogus'], dir)).toMatchObject({ status: 2 });
    expect(codeblob(['pack', 'nope.js', '-o', 'x.blob'], dir)).toMatchObject({ status: 1, stderr: expect.stringMatching(/entry nope.js is not a file/) });
    expect(codeblob(['pack', 'main.js', '-o', 'no/such/dir/x.blob'], dir)).toMatchObject({ status: 1, stderr: expect.stringMatching(/output directory .* does not exist/) });
  });

  it('inspect reports the header and entries as JSON', () => {
    app({ 'package.json': '{}', 'main.js': "require('./b');", 'b.js': 'exports.b = "—";' });
    expect(codeblob(['pack', 'main.js', '-o', 'app.blob'], dir).status).toBe(0);
    const r = codeblob(['inspect', 'app.blob', '--entries', '--json'], dir);
    expect(r.status).toBe(0);
    const info = JSON.parse(r.stdout) as { compatible: boolean; entryCount: number; entries: { key: string; encoding: string }[]; alignment: number };
    expect(info.compatible).toBe(true);
    expect(info.alignment).toBe(8);
    expect(info.entries.map((e) => [e.key, e.encoding])).toEqual([['b.js', 'utf16le'], ['main.js', 'latin1']]);
  });

  it('run starts the app with the loader on, passing its arguments and exit code through', () => {
    app({ 'package.json': '{}', 'main.js': "const b = require('./b'); console.log(b.b, process.argv.slice(2).join(' ')); if (process.argv.includes('--fail')) process.exitCode = 3;", 'b.js': "exports.b = 'from b';" });
    expect(codeblob(['pack', 'main.js', '-o', 'app.blob'], dir).status).toBe(0);
    const r = run(process.execPath, [cli, 'run', 'app.blob', '--', 'main.js', '--port', '8080', '--fail'], { cwd: dir, env: cleanEnv({ CODEBLOB_STATUS: '1' }) });
    expect(r.stdout).toBe('from b --port 8080 --fail\n');
    expect(r.status).toBe(3);
    const status = r.stderr.split('\n').filter((l) => l.startsWith('codeblob: '));
    expect(status).toHaveLength(1);
    expect(status[0]).toMatch(/^codeblob: on \(mmap.*: 2 cjs \+ 0 json \+ 0 esm from blob, 0 not in blob/);
  });

  it('verify exits 1 on a corrupt blob and names the entry', () => {
    app({ 'package.json': '{}', 'main.js': "exports.text = 'hello world, this is some text';" });
    expect(codeblob(['pack', 'main.js', '-o', 'app.blob'], dir).status).toBe(0);
    const store = open(join(dir, 'app.blob'));
    const e = store.get('main.js')!;
    store.close();
    const bytes = readFileSync(join(dir, 'app.blob'));
    bytes[e.sourceOffset + 70]! ^= 1;
    writeFileSync(join(dir, 'app.blob'), bytes);
    const r = codeblob(['verify', 'app.blob'], dir);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/BAD +main\.js \(source\)/);
  });
});
