/**
 * TypeScript as Node runs it (type stripping, Node 22.18+), differentially: `.ts`, `.mts` and
 * `.cts` modules from the blob give the same output, exit code, stack traces (file:line:column),
 * `require.cache` and `import.meta` as a plain run, and a process whose TypeScript all comes from
 * the blob never loads Node's stripper (amaro). What Node refuses (under node_modules, `enum`)
 * fails the same way; a changed file loads from disk, stripped by Node.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeIndex, encodeIndex, type Entry } from '../src/format/index.js';
import { differential, runFromBlob, runPlain, type Program } from './helpers/differential.js';
import { cleanEnv, cli, run, runtimes } from './helpers/env.js';

const FILES: Record<string, string> = {
  'package.json': JSON.stringify({ name: 'tsapp', type: 'module' }),
  'main.ts': [
    "import { greet, type Person } from './lib/greet.ts';",
    "import { twice } from './lib/math.mts';",
    "import { createRequire } from 'node:module';",
    "import { writeFileSync } from 'node:fs';",
    'const require = createRequire(import.meta.url);',
    "const counter = require('./lib/counter.cts') as { count(n: number): number; boom(): never };",
    "const scoped = require('./cjsdir/d.ts') as { d(x: number): number };",
    "const required = require('./lib/req.ts') as { req: string };",
    "const p: Person = { name: 'ada' };",
    'console.log(greet(p), twice(21), counter.count(3), scoped.d(2), required.req);',
    "const dyn = await import('./lib/dyn.ts');",
    "const imported = await import('./lib/counter.cts');",
    'console.log(dyn.value, imported.default.count(1));',
    'console.log(import.meta.url, import.meta.filename, import.meta.dirname);',
    'const top = (e: unknown) => (e as Error).stack!.split("\\n").slice(0, 3).join("\\n");',
    'try { dyn.boom(); } catch (e) { console.log(top(e)); }',
    'try { counter.boom(); } catch (e) { console.log(top(e)); }',
    'console.log(greet.toString());',
    "const root = import.meta.dirname + '/';",
    "console.log(Object.keys(require.cache).filter((k) => k.startsWith(root)).sort().join(','));",
    "if (process.env.AMARO_OUT) writeFileSync(process.env.AMARO_OUT, String(process.moduleLoadList.some((m) => m.includes('amaro'))));",
    "if (process.argv[2] === 'crash') dyn.boom();",
  ].join('\n'),
  'refused.ts': [
    "import { createRequire } from 'node:module';",
    'const require = createRequire(import.meta.url);',
    "try { await import('tspkg'); } catch (e) { console.log('import tspkg:', (e as { code?: string }).code, (e as Error).message); }",
    "try { require('tspkg'); } catch (e) { console.log('require tspkg:', (e as { code?: string }).code, (e as Error).message); }",
    "try { await import('./lib/enum.ts'); } catch (e) { console.log('import enum:', (e as { code?: string }).code); }",
    "try { require('./lib/enum.cts'); } catch (e) { console.log('require enum:', (e as { code?: string }).code); }",
  ].join('\n'),
  'lib/greet.ts': ['export interface Person { name: string }', 'export function greet(p: Person): string {', '  return `hello ${p.name as string}`;', '}'].join('\n'),
  'lib/math.mts': 'export const twice = <T extends number>(n: T): number => n * 2;',
  'lib/counter.cts': [
    'type N = number;',
    'let total: N = 0;',
    'exports.count = (n: N): N => (total += n);',
    "exports.boom = (): never => { throw new Error('cjs boom'); };",
  ].join('\n'),
  'lib/req.ts': "export const req: string = 'require(esm)';",
  'lib/dyn.ts': ['export const value: number = 42;', 'export function boom(this: void): void {', "  const what: string = 'esm boom'; throw new Error(what);", '}'].join('\n'),
  'lib/enum.ts': 'export enum Color { Red }',
  'lib/enum.cts': 'enum Color { Red }\nmodule.exports = Color;',
  'cjsdir/package.json': JSON.stringify({ name: 'cjsdir' }),
  'cjsdir/d.ts': 'const d = (x: number): number => x + 1;\nmodule.exports = { d };',
  'node_modules/tspkg/package.json': JSON.stringify({ name: 'tspkg', main: 'index.ts', exports: './index.ts' }),
  'node_modules/tspkg/index.ts': 'export const x: number = 1;',
};

/** Runtimes that strip types by default (22.18+, 24, 26). */
const stripping = runtimes().filter((rt) => rt.major >= 22);

describe.each(stripping)('TypeScript app on $name', (rt) => {
  let dir: string;
  let blob: string;
  const program = (args: string[] = [], options: string[] = []): Program => ({ node: rt.bin, cwd: dir, script: ['main.ts', ...args], options });
  const write = (name: string, text: string) => {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), `codeblob-ts-${rt.name}-`));
    for (const [name, text] of Object.entries(FILES)) write(name, text);
    blob = join(dir, 'app.blob');
    const r = run(process.execPath, [cli, 'pack', '--node', rt.bin, '--json', '-o', blob, 'main.ts', 'refused.ts'], { cwd: dir, env: cleanEnv() });
    expect(r.status, r.stderr).toBe(0);
  }, 60_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('packs the stripped modules: not those under node_modules, nor those Node refuses', () => {
    const r = run(process.execPath, [cli, 'inspect', '--json', '--entries', blob], { env: cleanEnv() });
    expect(r.status, r.stderr).toBe(0);
    const entries = (JSON.parse(r.stdout) as { entries: { key: string; kind: string; typescript?: boolean }[] }).entries;
    const ts = entries.filter((e) => e.typescript).map((e) => `${e.key}:${e.kind}`).sort();
    expect(ts).toEqual(['cjsdir/d.ts:cjs', 'lib/counter.cts:cjs', 'lib/dyn.ts:esm', 'lib/greet.ts:esm', 'lib/math.mts:esm', 'lib/req.ts:esm', 'main.ts:esm', 'refused.ts:esm']);
    expect(entries.filter((e) => /node_modules|enum/.test(e.key))).toEqual([]);
  });

  it('runs as plain Node does (output, stack positions, require.cache, import.meta, toString), all from the blob, without the stripper', () => {
    const amaroOut = join(dir, 'amaro');
    const { plain, report } = differential(program(), blob, { AMARO_OUT: amaroOut });
    expect(plain.stdout).toContain('hello ada 42 3 3 require(esm)\n42 4\n');
    expect(plain.stdout).toMatch(/esm boom\n {4}at (Module\.)?boom \(file:\/\/.*\/lib\/dyn\.ts:3:42\)/);
    expect(plain.stdout).toMatch(/cjs boom\n {4}at exports\.boom \(.*\/lib\/counter\.cts:4:37\)/);
    expect(plain.stdout).toContain('lib/counter.cts,');
    // main.ts, greet.ts, math.mts, dyn.ts through import; req.ts through require(esm).
    expect(report.counters.esmHits).toBeGreaterThanOrEqual(5);
    // counter.cts and cjsdir/d.ts from the blob, each with its code cache.
    expect(report.counters.hits).toBeGreaterThanOrEqual(2);
    expect(report.counters.noCache).toBe(0);
    expect(report.counters.stale).toBe(0);
    // Node's stripper (amaro) was never loaded; a plain run loads it.
    expect(readFileSync(amaroOut, 'utf8')).toBe('false');
    expect(runPlain(program(), { AMARO_OUT: amaroOut }).status).toBe(0);
    expect(readFileSync(amaroOut, 'utf8')).toBe('true');
  });

  it('what Node refuses (.ts under node_modules, enum) fails the same way from the blob', () => {
    const { plain } = differential({ ...program(), script: ['refused.ts'] }, blob);
    expect(plain.stdout).toContain('import tspkg: ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING');
    expect(plain.stdout).toContain('require tspkg: ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING');
    expect(plain.stdout).toContain('import enum: ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX');
    expect(plain.stdout).toContain('require enum: ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX');
  });

  it('an error thrown from a .ts module: the same stack (file:line:column) and exit code, with and without --enable-source-maps', () => {
    for (const options of [[], ['--enable-source-maps']]) {
      const { plain } = differential(program(['crash'], options), blob);
      expect(plain.status).toBe(1);
      expect(plain.stderr).toMatch(/lib\/dyn\.ts:3/);
    }
  });

  it('a changed .ts file loads from disk, stripped by Node', () => {
    const original = FILES['lib/greet.ts']!;
    try {
      write('lib/greet.ts', original.replace('hello', 'howdy'));
      // (1 of 8 modules stale: codeblob's staleness line says so on stderr, issue 19.)
      const { plain, fromBlob, report } = differential(program(), blob, { AMARO_OUT: join(dir, 'amaro-stale') }, { stalenessLine: true });
      expect(plain.stdout).toContain('howdy ada');
      expect(fromBlob.status).toBe(0);
      expect(readFileSync(join(dir, 'amaro-stale'), 'utf8')).toBe('true');
      expect(report.counters.stale).toBe(1);
    } finally {
      write('lib/greet.ts', original);
    }
  });

  it('with type stripping off, Node decides every TypeScript module (the same failure)', () => {
    const off = rt.major >= 24 ? '--no-strip-types' : '--no-experimental-strip-types';
    const { plain, report } = differential({ ...program(), script: ['cjsdir/d.ts'], options: [off] }, blob);
    expect(plain.status).not.toBe(0);
    expect(report.counters.hits ?? 0).toBe(0);
  });
});

describe('TypeScript without type stripping', () => {
  const old = runtimes().filter((rt) => rt.major < 22);
  it.skipIf(old.length === 0)('packing a .ts app on Node 20 fails with a clear message', () => {
    const dir = mkdtempSync(join(tmpdir(), 'codeblob-ts20-'));
    try {
      writeFileSync(join(dir, 'main.ts'), 'const x: number = 1;\nconsole.log(x);\n');
      const r = run(process.execPath, [cli, 'pack', '--node', old[0]!.bin, '-o', join(dir, 'app.blob'), 'main.ts'], { cwd: dir, env: cleanEnv() });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/main\.ts is TypeScript, and Node v20\.\d+\.\d+ does not strip types/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the index flag for stripped TypeScript', () => {
  const entry = (typescript: boolean, kind: Entry['kind'] = 'esm'): Entry => ({
    key: 'a.ts', kind, encoding: 'latin1', chars: 3, prefixChars: 0, suffixChars: 0, shebang: false, typescript,
    sourceOffset: 0, sourceLength: 3, sourceHash: Buffer.alloc(16), cacheOffset: 0, cacheLength: 0, cacheHash: null,
    fileSize: 5, mtimeMs: 1, contentHash: Buffer.alloc(16, 1), order: 0,
  });
  it('round-trips, and entries without it (older blobs) read as not TypeScript', () => {
    expect(decodeIndex(encodeIndex({ root: '.', entries: [entry(true)] }), 1).entries[0]!.typescript).toBe(true);
    expect(decodeIndex(encodeIndex({ root: '.', entries: [entry(false)] }), 1).entries[0]!.typescript).toBe(false);
  });
  it('is refused on JSON entries', () => {
    expect(() => decodeIndex(encodeIndex({ root: '.', entries: [entry(true, 'json')] }), 1)).toThrow(/only CommonJS and ES module entries can be stripped TypeScript/);
  });
});
