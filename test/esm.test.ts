/**
 * ES module apps, differentially, where Node has module hooks (22.15+): `import` answered from
 * the blob's resolution table (relative files, a package's "exports", an import map, import()),
 * sources from the blob, and every change that changes an answer noticed (Node asks again).
 */
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { differential, type Program } from './helpers/differential.js';
import { cleanEnv, cli, run, runtimes } from './helpers/env.js';

const FILES: Record<string, string> = {
  'package.json': JSON.stringify({ name: 'app', type: 'module', imports: { '#util': './lib/util.js' } }),
  'main.js': [
    "import { a } from './lib/a.js';",
    "import util from '#util';",
    "import pkg from 'pkg';",
    "import cjs from 'cjspkg';",
    "console.log('static:', a, util, pkg, cjs);",
    "const lazy = await import('./lib/lazy.js');",
    "console.log('import():', lazy.x);",
    "try { await import('./lib/missing.js'); } catch (e) { console.log('missing:', e.code); }",
    "console.log('meta:', import.meta.resolve('./lib/a.js').endsWith('/lib/a.js'));",
  ].join('\n'),
  'lib/a.js': "export const a = 'a';",
  'lib/util.js': "export default 'util';",
  'lib/lazy.js': "export const x = 'lazy';",
  'node_modules/pkg/package.json': JSON.stringify({ name: 'pkg', type: 'module', exports: { '.': { import: './esm.js', require: './cjs.cjs' } } }),
  'node_modules/pkg/esm.js': "export default 'pkg (import)';",
  'node_modules/pkg/esm2.js': "export default 'pkg (import, moved)';",
  'node_modules/pkg/cjs.cjs': "module.exports = 'pkg (require)';",
  'node_modules/cjspkg/package.json': JSON.stringify({ name: 'cjspkg', main: 'index.js' }),
  'node_modules/cjspkg/index.js': "module.exports = 'cjs';",
};

describe.each(runtimes().filter((rt) => rt.major >= 22))('ES module app on $name', (rt) => {
  let dir: string;
  let blob: string;
  const program = (): Program => ({ node: rt.bin, cwd: dir, script: ['main.js'] });
  const write = () => {
    for (const [name, text] of Object.entries(FILES)) {
      mkdirSync(dirname(join(dir, name)), { recursive: true });
      writeFileSync(join(dir, name), text);
    }
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), `codeblob-esm-${rt.name}-`));
    write();
    blob = join(dir, 'app.blob');
    const r = run(process.execPath, [cli, 'pack', '--node', rt.bin, '--json', '-o', blob, 'main.js'], { cwd: dir, env: cleanEnv() });
    expect(r.status, r.stderr).toBe(0);
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('answers every import of an ES module from the table, and runs as without codeblob', () => {
    const { plain, report } = differential(program(), blob);
    expect(plain.stdout).toContain("static: a util pkg (import) cjs\nimport(): lazy\nmissing: ERR_MODULE_NOT_FOUND\nmeta: true");
    expect(report.esm).toBe('blob');
    // ./lib/a.js, #util, pkg, ./lib/lazy.js, and import.meta.resolve('./lib/a.js')
    expect(report.counters.resolveHits).toBeGreaterThanOrEqual(5);
    expect(report.counters.resolveStale).toBe(0);
    expect(report.counters.esmHits).toBeGreaterThanOrEqual(5);
  });

  it('a changed "exports" map, a deleted file: Node answers those, identically', () => {
    try {
      writeFileSync(join(dir, 'node_modules/pkg/package.json'), JSON.stringify({ name: 'pkg', type: 'module', exports: { '.': { import: './esm2.js', require: './cjs.cjs' } } }));
      unlinkSync(join(dir, 'lib/lazy.js'));
      const { plain, report } = differential(program(), blob);
      expect(plain.stdout).toContain('pkg (import, moved)');
      expect(plain.stderr).toContain('ERR_MODULE_NOT_FOUND');
      expect(report.counters.resolveStale).toBeGreaterThanOrEqual(2);
    } finally {
      write();
    }
  });
});

/**
 * require(esm) only: the CommonJS path serves those ES modules, and no module hook is installed
 * (with one, Node runs every require() of the thread through its hook chain). An ES module
 * graph below a require(esm) is loaded by `import`: hooks then.
 */
const REQUIRE_ONLY: Record<string, string> = {
  'package.json': JSON.stringify({ name: 'app' }),
  'main.cjs': [
    "const x = require('./lib/x.mjs');",
    "const pkg = require('esmpkg');",
    "console.log('require(esm):', x.x, pkg.default, require('./lib/plain.js'));",
  ].join('\n'),
  'graph.cjs': "console.log('graph:', require('./lib/y.mjs').y);",
  'lib/x.mjs': "export const x = 'x';",
  'lib/y.mjs': "import { z } from './z.mjs';\nexport const y = 'y' + z;",
  'lib/z.mjs': "export const z = 'z';",
  'lib/plain.js': "module.exports = 'cjs';",
  'node_modules/esmpkg/package.json': JSON.stringify({ name: 'esmpkg', type: 'module', exports: './index.js' }),
  'node_modules/esmpkg/index.js': "export default 'esmpkg';",
};

describe.each(runtimes().filter((rt) => rt.major >= 22))('require(esm) on $name', (rt) => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), `codeblob-require-esm-${rt.name}-`));
    for (const [name, text] of Object.entries(REQUIRE_ONLY)) {
      mkdirSync(dirname(join(dir, name)), { recursive: true });
      writeFileSync(join(dir, name), text);
    }
    for (const entry of ['main.cjs', 'graph.cjs']) {
      const r = run(process.execPath, [cli, 'pack', '--node', rt.bin, '-o', join(dir, `${entry}.blob`), entry], { cwd: dir, env: cleanEnv() });
      expect(r.status, r.stderr).toBe(0);
    }
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('ES modules only require()d are served from the blob without module hooks', () => {
    const { plain, report } = differential({ node: rt.bin, cwd: dir, script: ['main.cjs'] }, join(dir, 'main.cjs.blob'));
    expect(plain.stdout).toBe('require(esm): x esmpkg cjs\n');
    expect(report.esm).toBe('disk');
    expect(report.esmReason).toMatch(/all loaded by require\(\)/);
    expect(report.counters.esmHits).toBe(2);
    expect(report.counters.hits).toBe(2); // main.cjs, lib/plain.js
    expect(report.counters.misses).toBe(0);
  });

  it('an ES module graph below a require(esm) is imported: module hooks serve it', () => {
    const { plain, report } = differential({ node: rt.bin, cwd: dir, script: ['graph.cjs'] }, join(dir, 'graph.cjs.blob'));
    expect(plain.stdout).toBe('graph: yz\n');
    expect(report.esm).toBe('blob');
    expect(report.counters.esmHits).toBe(2); // y.mjs (require), z.mjs (import)
  });
});
