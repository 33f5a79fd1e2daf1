/**
 * The resolution table (issue 7), differentially: a fixture that resolves and loads every kind
 * of request (relative, directory, JSON, self-reference, `#imports` with conditions, `exports`
 * with conditions and subpath patterns, `main` without extension, scoped packages, a symlinked
 * package, missing modules, builtins, `paths` options, a changed `module.paths`) prints the
 * same with and without codeblob, on every runtime — also after the file system changed under
 * the blob in every way that changes Node's answers, where codeblob must notice and ask Node.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { open } from '../src/index.js';
import { decodeResolutions } from '../src/format/index.js';
import { FreshAhead, isFresh } from '../src/loader/freshness.js';
import { ANSWER_HOLDS, ANSWER_RECHECKED, ANSWER_STALE, LoadedTable } from '../src/loader/resolve-cache.js';
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
import { setMtimeNs, touchTree } from './helpers/files.js';

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
    // When a large share of the answers went stale, codeblob says so in one line (issue 19).
    const { plain: a, report } = differential(app(dir, options), blob, env, { stalenessLine: true });
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

  // Issue 19: content, not time, decides. A time that changed is a hint: the listing a folder's
  // mtime stood for, and a package.json's content, settle it.
  it('every file and folder touched, content unchanged: the same answers from the table, in stat and hash mode', () => {
    const f = fixture();
    const before = same(f.dir, f.blob);
    expect(touchTree(f.dir)).toBeGreaterThan(30);
    for (const verify of ['stat', 'hash']) {
      const after = same(f.dir, f.blob, [], { CODEBLOB_VERIFY: verify });
      expect(after.counters.resolveStale, verify).toBe(0);
      expect(after.counters.resolveHits, verify).toBe(before.counters.resolveHits);
      // Answers resting on a folder in node_modules or a package.json were rechecked.
      expect(after.counters.resolveTimeOnly, verify).toBeGreaterThan(0);
      expect(after.counters.stale, verify).toBe(0);
      expect(after.counters.hits, verify).toBe(before.counters.hits);
    }
  });

  it('a copy that resets every time (cp -r, blob inside) answers from the table as before', () => {
    const f = fixture();
    const before = same(f.dir, f.blob);
    const copy = `${f.dir}-copy`;
    execFileSync('cp', ['-r', f.dir, copy]);
    const after = same(copy, join(copy, 'app.blob'));
    expect(after.counters.resolveStale).toBe(0);
    expect(after.counters.resolveHits).toBe(before.counters.resolveHits);
    expect(after.counters.resolveTimeOnly).toBeGreaterThan(0);
    expect(after.counters.timeOnly).toBe(before.counters.hits + before.counters.jsonHits);
  });

  it('absolute requests below the root are answered from the table after the app moved (cp -a elsewhere)', () => {
    const dir = join(base, `abs-${n++}`);
    mkdirSync(join(dir, 'lib'), { recursive: true });
    writeFileSync(join(dir, 'package.json'), '{"name":"abs"}');
    writeFileSync(join(dir, 'lib/x.js'), 'exports.x = 1;');
    writeFileSync(join(dir, 'lib/index.js'), 'exports.index = 2;');
    writeFileSync(join(dir, 'main.js'), "const p = require('path');\nconsole.log(require(p.join(__dirname, 'lib/x.js')).x, require(__dirname + '/lib').index, p.relative(__dirname, require.resolve(__dirname + '/lib/x')));\n");
    const blob = join(dir, 'app.blob');
    expect(run(process.execPath, [cli, 'pack', '--node', rt.bin, '-o', blob, 'main.js'], { cwd: dir, env: cleanEnv() }).status).toBe(0);
    const before = same(dir, blob);
    expect(before.counters).toMatchObject({ resolveHits: 3, resolveMisses: 0 });
    const moved = `${dir}-moved`;
    execFileSync('cp', ['-a', dir, moved]);
    rmSync(dir, { recursive: true });
    expect(same(moved, join(moved, 'app.blob')).counters).toMatchObject({ resolveHits: 3, resolveMisses: 0, resolveStale: 0 });
  });

  it('a symlink re-created in node_modules, and a package added beside the others, keep every answer', () => {
    const f = fixture();
    const before = same(f.dir, f.blob);
    unlinkSync(join(f.dir, 'node_modules/linked'));
    symlinkSync('../packages/linked', join(f.dir, 'node_modules/linked'));
    mkdirSync(join(f.dir, 'node_modules/added'));
    writeFileSync(join(f.dir, 'node_modules/added/package.json'), '{"name":"added"}');
    const after = same(f.dir, f.blob);
    expect(after.counters.resolveStale).toBe(0);
    expect(after.counters.resolveHits).toBe(before.counters.resolveHits);
    expect(after.counters.resolveTimeOnly).toBeGreaterThan(0);
  });

  it('a same-size edit of a package.json with its mtime put back: stat mode cannot see it, hash mode asks Node', () => {
    const f = fixture();
    const pj = join(f.dir, 'node_modules/pkg-main/package.json');
    const { mtimeNs } = statSync(pj, { bigint: true });
    const text = readFileSync(pj, 'utf8');
    writeFileSync(pj, text.replace('"pkg-main"', '"pkg-maim"'));
    setMtimeNs(pj, mtimeNs);
    expect(same(f.dir, f.blob).counters.resolveStale).toBe(0); // the documented limit of `stat`
    expect(same(f.dir, f.blob, [], { CODEBLOB_VERIFY: 'hash' }).counters.resolveStale).toBeGreaterThan(0);
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

describe('the recheck section: what a guard stood for, checked when its time changed (issue 19)', () => {
  let base: string;
  let n = 0;
  const opened: { close(): void }[] = [];
  beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), 'codeblob-recheck-'));
  });
  afterEach(() => {
    for (const store of opened.splice(0)) store.close();
  });
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  /** A packed copy of the fixture, its store, and a table over it (`v2`: without the recheck section). */
  function table(change: (dir: string) => void, options: { v2?: boolean; contentOnly?: boolean } = {}) {
    const dir = join(base, `app-${n++}`);
    const { blob } = packFixture(dir, process.execPath);
    change(dir);
    const store = open(blob);
    const decoded = decodeResolutions(store.resolutionTable()!);
    if (options.v2) delete decoded.recheckAt;
    const t = new LoadedTable(decoded, store.root, true, native(), { reread: () => store.resolutionTable(), explain: true, contentOnly: options.contentOnly === true });
    const verdicts = Array.from({ length: t.answers }, (_, i) => t.verdict(i));
    const answerFor = (request: string) => t.find(dir, request);
    opened.push(store);
    return { dir, t, verdicts, answerFor };
  }
  const count = (verdicts: number[], v: number) => verdicts.filter((x) => x === v).length;

  it('untouched, every answer holds without a recheck (the section is not even read)', () => {
    const r = table(() => {});
    expect(count(r.verdicts, ANSWER_HOLDS)).toBe(r.t.answers);
  });

  it('node_modules with a new mtime: its answers hold after a recheck; a version-2 table (no section) calls them stale', () => {
    const touch = (d: string) => utimesSync(join(d, 'node_modules'), new Date(2021, 0, 1), new Date(2021, 0, 1));
    const now = table(touch);
    expect(count(now.verdicts, ANSWER_STALE)).toBe(0);
    expect(count(now.verdicts, ANSWER_RECHECKED)).toBeGreaterThan(3);
    const old = table(touch, { v2: true });
    expect(count(old.verdicts, ANSWER_STALE)).toBe(count(now.verdicts, ANSWER_RECHECKED));
    expect(old.t.why(old.verdicts.indexOf(ANSWER_STALE))).toMatch(/node_modules changed \(its mtime; the blob records nothing else to check\)/);
  });

  it('a name the folder listed changed: the guard breaks, and why names it', () => {
    const r = table((d) => writeFileSync(join(d, 'node_modules/pkg-main.js'), "exports.name = 'shadow';"));
    const i = r.answerFor('pkg-main');
    expect(r.verdicts[i]).toBe(ANSWER_STALE);
    expect(r.t.why(i)).toBe(`${join(r.dir, 'node_modules')} changed: ${join(r.dir, 'node_modules/pkg-main.js')} is a file, was absent`);
    // Answers that do not rest on node_modules still hold.
    expect(r.verdicts[r.answerFor('./lib/util')]).toBe(ANSWER_HOLDS);
  });

  it('a symlink retargeted to another package of the same shape: its realpath breaks the guard', () => {
    const r = table((d) => {
      unlinkSync(join(d, 'node_modules/linked'));
      symlinkSync('../packages/linked2', join(d, 'node_modules/linked'));
    });
    expect(r.verdicts[r.answerFor('linked')]).toBe(ANSWER_STALE);
    expect(r.t.why(r.answerFor('linked'))).toMatch(/resolves to .*packages\/linked2/);
  });

  it('a package.json with a new mtime holds by its content; the same size with another content breaks it', () => {
    const pj = (d: string) => join(d, 'node_modules/pkg-main/package.json');
    const touched = table((d) => utimesSync(pj(d), new Date(2021, 0, 1), new Date(2021, 0, 1)));
    expect(touched.verdicts[touched.answerFor('pkg-main')]).toBe(ANSWER_RECHECKED);
    const edited = table((d) => writeFileSync(pj(d), readFileSync(pj(d), 'utf8').replace('"pkg-main"', '"pkg-maim"')));
    expect(edited.verdicts[edited.answerFor('pkg-main')]).toBe(ANSWER_STALE);
    expect(edited.t.why(edited.answerFor('pkg-main'))).toBe(`${pj(edited.dir)} changed (its content)`);
  });

  it('contentOnly (CODEBLOB_VERIFY=hash): a same-size edit with the mtime put back breaks the guard; untouched, everything holds', () => {
    const pj = (d: string) => join(d, 'node_modules/pkg-main/package.json');
    const edited = table((d) => {
      const { mtimeNs } = statSync(pj(d), { bigint: true });
      writeFileSync(pj(d), readFileSync(pj(d), 'utf8').replace('"pkg-main"', '"pkg-maim"'));
      setMtimeNs(pj(d), mtimeNs);
    }, { contentOnly: true });
    expect(edited.verdicts[edited.answerFor('pkg-main')]).toBe(ANSWER_STALE);
    const untouched = table(() => {}, { contentOnly: true });
    expect(count(untouched.verdicts, ANSWER_HOLDS)).toBe(untouched.t.answers);
  });
});
