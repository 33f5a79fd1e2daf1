/**
 * The resolution table (issue 7), differentially: a fixture that resolves and loads every kind
 * of request (relative, directory, JSON, self-reference, `#imports` with conditions, `exports`
 * with conditions and subpath patterns, `main` without extension, scoped packages, a symlinked
 * package, missing modules, builtins, `paths` options, a changed `module.paths`) prints the
 * same with and without codeblob, on every runtime — also after the file system changed under
 * the blob in every way that changes Node's answers, where codeblob must notice and ask Node.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { open } from '../src/index.js';
import { decodeResolutions } from '../src/format/index.js';
import { FreshAhead, isFresh } from '../src/loader/freshness.js';
import { LoadedTable } from '../src/loader/resolve-cache.js';
import { native } from '../src/native/binding.js';

// The addon's functions are read-only properties: the loader here sees a copy whose statAhead a
// test can swap (the children the other tests spawn load the real thing).
vi.mock('../src/native/binding.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../src/native/binding.js')>();
  const real = actual.native();
  const copy = real ? { ...real } : undefined;
  return { ...actual, native: () => copy };
});
import { differential, runFromBlob, runPlain, type Program, type StatusReport } from './helpers/differential.js';
import { cleanEnv, cli, repo, run, runtimes } from './helpers/env.js';

interface PackedFixture {
  blob: string;
  pack: { resolutions: { answers: number; skipped: Record<string, number> } };
}

/** Copies the resolve fixture (with its symlink) into `dir` and packs it, traced by `node`. */
function packFixture(dir: string, node: string, packArgs: string[] = []): PackedFixture {
  cpSync(join(repo, 'test/fixtures/resolve'), dir, { recursive: true });
  symlinkSync('../packages/linked', join(dir, 'node_modules/linked'));
  const blob = join(dir, 'app.blob');
  const r = run(process.execPath, [cli, 'pack', '--node', node, '--json', ...packArgs, '-o', blob, 'main.js'], { cwd: dir, env: cleanEnv() });
  expect(r.status, r.stderr).toBe(0);
  return { blob, pack: JSON.parse(r.stdout) };
}

describe.each(runtimes())('resolution table on $name', (rt) => {
  let base: string;
  let n = 0;

  /** A fresh copy of the fixture with its symlink, packed. */
  function fixture(packArgs: string[] = []): { dir: string } & PackedFixture {
    const dir = join(base, `app-${n++}`);
    return { dir, ...packFixture(dir, rt.bin, packArgs) };
  }

  /** The fixture's main.js in `dir`, with Node's `options` (given before codeblob's --require). */
  const app = (dir: string, options: string[] = []): Program => ({ node: rt.bin, cwd: dir, script: ['main.js'], options });
  const plain = (dir: string) => runPlain(app(dir));
  /** Runs plain and from the blob, expects the same run, and an exit code 0; the blob run's status. */
  function same(dir: string, blob: string, options: string[] = [], env: NodeJS.ProcessEnv = {}): StatusReport {
    const { plain: a, report } = differential(app(dir, options), blob, env);
    expect(a.status, a.stderr).toBe(0);
    return report;
  }

  let main: ReturnType<typeof fixture>;
  beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), `codeblob-resolve-${rt.name}-`));
    main = fixture();
  }, 120_000);
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it('records the run’s resolutions and answers them exactly as Node does', () => {
    // 18 successful requests from main.js and 3 from lib/deep; not the one after module.paths changed.
    expect(main.pack.resolutions).toMatchObject({ answers: 21, skipped: {} });
    const status = same(main.dir, main.blob);
    expect(status.resolve).toBe('blob');
    expect(status.counters.resolveStale).toBe(0);
    // Every recorded request of the run is answered from the table; errors, builtins and calls
    // with `paths` (or after module.paths changed) are Node's.
    expect(status.counters.resolveHits).toBeGreaterThanOrEqual(main.pack.resolutions.answers);
    expect(status.counters.hits).toBeGreaterThan(10);
    const out = JSON.parse(plain(main.dir).stdout) as Record<string, string>;
    expect(out['resolve linked']).toBe('packages/linked/index.js'); // realpath, as Node gives it
    expect(out['resolve #cond']).toBe('lib/cond-require.js');
    expect(out['resolve pkg-exports/not-exported']).toMatch(/^ERR_PACKAGE_PATH_NOT_EXPORTED/);
  });

  it('answers from the table with the read backend too (its addon loads through require while the table decodes)', () => {
    const status = same(main.dir, main.blob, [], { CODEBLOB_BACKEND: 'read' });
    expect(status).toMatchObject({ resolve: 'blob' });
    expect(status.counters.resolveHits).toBeGreaterThanOrEqual(main.pack.resolutions.answers);
    expect(status.counters.resolveStale).toBe(0);
  });

  it('steps aside under another resolution environment (--preserve-symlinks, --conditions)', () => {
    for (const flags of [['--preserve-symlinks'], ['--conditions=default']]) {
      const status = same(main.dir, main.blob, flags);
      expect(status.resolve).toBe('disk');
      expect(status.resolveReason).toMatch(/recorded under/);
      expect(status.counters.resolveHits).toBe(0);
    }
  });

  it('notices every file-system change that changes an answer, and asks Node', () => {
    const changes: Array<[string, (dir: string) => void]> = [
      ['a file that shadows a package directory', (d) => writeFileSync(join(d, 'node_modules/pkg-main.js'), "exports.name = 'shadow';")],
      ['a closer node_modules', (d) => cpSync(join(d, 'node_modules/pkg-main'), join(d, 'lib/deep/node_modules/pkg-main'), { recursive: true })],
      ['a file that shadows a directory index', (d) => writeFileSync(join(d, 'lib.js'), "exports.name = 'lib.js';")],
      ['an edited package.json main', (d) => {
        mkdirSync(join(d, 'node_modules/pkg-main/v2'));
        writeFileSync(join(d, 'node_modules/pkg-main/v2/index.js'), "exports.name = 'pkg-main v2';");
        writeFileSync(join(d, 'node_modules/pkg-main/package.json'), '{"name":"pkg-main","main":"v2/index"}');
      }],
      ['edited exports', (d) => {
        const pj = join(d, 'node_modules/pkg-exports/package.json');
        writeFileSync(pj, readFileSync(pj, 'utf8').replace('"./src/cjs.js"', '"./src/default.js"'));
      }],
      ['edited imports', (d) => {
        const pj = join(d, 'package.json');
        writeFileSync(pj, readFileSync(pj, 'utf8').replace('./lib/internal.js', './lib/util.js'));
      }],
      ['a retargeted symlink', (d) => {
        unlinkSync(join(d, 'node_modules/linked'));
        symlinkSync('../packages/linked2', join(d, 'node_modules/linked'));
      }],
      ['a deleted target', (d) => rmSync(join(d, 'node_modules/@scope/pkg/extra.js'))],
    ];
    for (const [what, change] of changes) {
      const f = fixture();
      const before = plain(f.dir).stdout;
      change(f.dir);
      const status = same(f.dir, f.blob);
      expect(plain(f.dir).stdout, `${what}: the change must change Node's answer`).not.toBe(before);
      expect(status.counters.resolveStale, what).toBeGreaterThan(0);
    }
  });

  it('does not use an answer whose guard changed even when mtimes are put back', () => {
    const f = fixture();
    const pj = join(f.dir, 'node_modules/pkg-main/package.json');
    const text = readFileSync(pj, 'utf8');
    const then = new Date('2020-01-01T00:00:00Z');
    writeFileSync(pj, text.replace('lib/index', 'lib/index.js'));
    utimesSync(pj, then, then);
    // Same answer from Node, but the file is not the one recorded: Node is asked.
    const status = same(f.dir, f.blob);
    expect(status.counters.resolveStale).toBeGreaterThan(0);
  });

  it('trusts the table under CODEBLOB_VERIFY=none (immutable deploys)', () => {
    const f = fixture();
    writeFileSync(join(f.dir, 'node_modules/pkg-main.js'), "exports.name = 'shadow';");
    const { stdout, report: status } = runFromBlob(app(f.dir), f.blob, { CODEBLOB_VERIFY: 'none' });
    expect(status.counters.resolveStale).toBe(0);
    // The recorded answer stands, as the mode promises; plain Node now finds the shadow.
    expect(JSON.parse(stdout)['resolve pkg-main']).toBe('node_modules/pkg-main/lib/index.js');
    expect(JSON.parse(plain(f.dir).stdout)['resolve pkg-main']).toBe('node_modules/pkg-main.js');
  });

  it('can be switched off: by the packer, by CODEBLOB_RESOLVE=0, and by an earlier resolver', () => {
    const f = fixture(['--no-resolutions']);
    expect(f.pack.resolutions.answers).toBe(0);
    const off = same(f.dir, f.blob);
    expect(off).toMatchObject({ resolve: 'disk' });
    expect(off.resolveReason).toMatch(/no resolution table/);
    const env = same(main.dir, main.blob, [], { CODEBLOB_RESOLVE: '0' });
    expect(env).toMatchObject({ resolve: 'disk', resolveReason: 'switched off by CODEBLOB_RESOLVE' });
    const alias = join(main.dir, 'alias.cjs');
    writeFileSync(alias, "const M = require('module'); const r = M._resolveFilename; M._resolveFilename = function (q, ...a) { return r.call(this, q, ...a); };");
    const first = same(main.dir, main.blob, ['--require', alias]);
    expect(first.resolve).toBe('disk');
    expect(first.resolveReason).toMatch(/replaced before codeblob/);
  });
});

describe('guard and file stats made on the loading thread when the stat thread has not got there', () => {
  let dir: string;
  let blob: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'codeblob-resolve-taken-'));
    blob = packFixture(dir, process.execPath).blob;
    // Changes that break some answers' guards (a shadowing file, an edited package.json).
    writeFileSync(join(dir, 'node_modules/pkg-main.js'), "exports.name = 'shadow';");
    const pj = join(dir, 'node_modules/pkg-exports/package.json');
    writeFileSync(pj, readFileSync(pj, 'utf8').replace('"./src/cjs.js"', '"./src/default.js"'));
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** statAhead as if its thread never ran: every row pending, so the caller stats each itself. */
  function withIdleThread<T>(fn: () => T): T {
    const binding = native()!;
    const real = binding.statAhead;
    binding.statAhead = (paths: string) => {
      const count = paths.split('\0').length;
      return new Float64Array(new ArrayBuffer(count * 24 + count + 2), 0, count * 3);
    };
    try {
      return fn();
    } finally {
      binding.statAhead = real;
    }
  }

  it('the resolution table gives every answer the same verdict either way', () => {
    const store = open(blob);
    try {
      const decode = () => decodeResolutions(store.resolutionTable()!);
      const answers = decode().requests.length;
      expect(answers).toBeGreaterThan(20);
      const taken = withIdleThread(() => new LoadedTable(decode(), store.root, true, native()));
      const ahead = new LoadedTable(decode(), store.root, true, native());
      const lazy = withIdleThread(() => {
        const binding = native()!;
        const real = binding.statAhead;
        binding.statAhead = () => { throw new Error('no memory'); };
        try {
          return new LoadedTable(decode(), store.root, true, native()); // falls back to JS stat per guard
        } finally {
          binding.statAhead = real;
        }
      });
      const verdicts = (t: LoadedTable) => Array.from({ length: answers }, (_, i) => t.holds(i));
      const expected = verdicts(lazy);
      expect(expected.filter((v) => !v).length).toBeGreaterThan(0); // the changes broke some
      expect(expected.filter((v) => v).length).toBeGreaterThan(0);
      expect(verdicts(taken)).toEqual(expected);
      expect(verdicts(ahead)).toEqual(expected);
    } finally {
      store.close();
    }
  });

  it('the startup file stats: each is made by the loading thread, the same verdict as a stat of its own, and marked taken for the thread', () => {
    const store = open(blob);
    try {
      const ahead = withIdleThread(() => FreshAhead.start(store, native()!))!;
      const inNodeModules = store.entries().filter((e) => e.order >= 0 && e.key.startsWith('node_modules/'));
      expect(inNodeModules.length).toBeGreaterThan(3);
      for (const e of inNodeModules) expect(ahead.fresh(e), e.key).toBe(isFresh(e, store.filename(e), 'stat', undefined));
      expect(ahead.madeAhead).toBe(0);
      expect(ahead.finished).toBe(false); // no thread ran; it would skip every row now
    } finally {
      store.close();
    }
  });
});
