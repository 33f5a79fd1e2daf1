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
