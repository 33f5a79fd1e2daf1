/**
 * The loader (codeblob/register) on a fixture that prints every CommonJS fact codeblob must
 * not change, on every runtime: identical output with and without codeblob, counters read from
 * the child, staleness, flag mismatch, missing and corrupt blobs, ES modules.
 */
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { open } from '../src/index.js';
import { Burst } from '../src/loader/burst.js';
import { readLoaderConfig } from '../src/loader/config.js';
import { FreshAhead, isFresh } from '../src/loader/freshness.js';
import { checkFresh, endStatsAhead, startStatsAhead, type ServeContext } from '../src/loader/serve.js';
import { loaderState, newCounters } from '../src/loader/status.js';
import { native } from '../src/native/binding.js';
import { cleanEnv, cli, registerPath, repo, run, runtimes, type RunResult } from './helpers/env.js';
import { STALENESS_LINE, touchTree } from './helpers/files.js';

/**
 * Stack frames inside the module loader differ by construction (codeblob adds its hook frames
 * and the one-line `node:codeblob` stub between your module and Node's `Module._compile`):
 * compare everything else, every frame of the app included.
 */
function withoutLoaderFrames(stderr: string): string {
  return stderr
    .split('\n')
    .filter((l) => !/^\s+at (.*\()?(node:internal\/|node:codeblob|(file:\/\/)?\/.*\/dist\/loader\/)/.test(l))
    .join('\n');
}

/** Sets a file's mtime to the nanosecond, as `touch -d` does. */
function setMtimeNs(path: string, mtimeNs: bigint): void {
  const sec = mtimeNs / 1_000_000_000n;
  const nsec = (mtimeNs % 1_000_000_000n).toString().padStart(9, '0');
  execFileSync('touch', ['-m', '-d', `@${sec}.${nsec}`, path]);
}

interface Status {
  enabled: boolean;
  reason?: string;
  esm: string;
  esmReason?: string;
  cachesUsable: boolean;
  verify: string;
  counters: Record<string, number>;
}

describe.each(runtimes())('loader on $name', (rt) => {
  let dir: string;
  let blob: string;
  let n = 0;

  const plain = (args: string[], env: NodeJS.ProcessEnv = {}) => run(rt.bin, args, { cwd: dir, env: cleanEnv(env) });
  const withBlob = (args: string[], env: NodeJS.ProcessEnv = {}, file = blob): { r: RunResult; status: Status } => {
    const statusFile = join(dir, `status-${n++}.json`);
    const r = run(rt.bin, ['--require', registerPath, ...args], {
      cwd: dir,
      env: cleanEnv({ CODEBLOB_FILE: file, CODEBLOB_STATUS_FILE: statusFile, ...env }),
    });
    return { r, status: JSON.parse(readFileSync(statusFile, 'utf8')) as Status };
  };
  const same = (a: RunResult, b: RunResult) => {
    expect(b.signal).toBeNull();
    expect(b.stdout).toBe(a.stdout);
    expect(withoutLoaderFrames(b.stderr)).toBe(withoutLoaderFrames(a.stderr));
    expect(b.status).toBe(a.status);
  };
  const repack = () => {
    const r = run(process.execPath, [cli, 'pack', '--node', rt.bin, '--allow-failure', '--json', '-o', blob, 'main.js', 'sourcemaps.js', 'esm/main.mjs'], { cwd: dir, env: cleanEnv() });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as { warnings: string[]; entries: number };
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), `codeblob-loader-${rt.name}-`));
    cpSync(join(repo, 'test/fixtures/semantics'), dir, { recursive: true });
    blob = join(dir, 'app.blob');
    const summary = repack();
    // The two files a hook transformed ran as something else than the file: not packed.
    expect(summary.warnings.filter((w) => w.includes('differs from the file')).length).toBe(2);
  }, 120_000);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs the semantics fixture identically, from the blob', () => {
    const a = plain(['main.js']);
    expect(a.status).toBe(3);
    const { r, status } = withBlob(['main.js']);
    same(a, r);
    expect(status.enabled).toBe(true);
    expect(status.counters.hits).toBeGreaterThanOrEqual(12);
    expect(status.counters.jsonHits).toBe(1);
    expect(status.counters.stale).toBe(0);
    expect(status.counters.cacheRejected).toBe(0);
    expect(status.counters.stringsCopied).toBe(0);
    // transformed.js was not packed (a hook changes it), so it misses; typed.ts goes through
    // the fixture's own .ts handler, which codeblob does not touch.
    expect(status.counters.misses).toBe(1);
  });

  it('moved with its blob to another path (cp -a), the app runs identically there: stack traces name the new path', () => {
    const moved = `${dir}-moved`;
    execFileSync('cp', ['-a', dir, moved]);
    try {
      const a = run(rt.bin, ['main.js'], { cwd: moved, env: cleanEnv() });
      const statusFile = join(moved, 'moved-status.json');
      const r = run(rt.bin, ['--require', registerPath, 'main.js'], { cwd: moved, env: cleanEnv({ CODEBLOB_FILE: join(moved, 'app.blob'), CODEBLOB_STATUS_FILE: statusFile }) });
      same(a, r);
      const status = JSON.parse(readFileSync(statusFile, 'utf8')) as Status;
      expect(status.counters.hits).toBeGreaterThanOrEqual(12);
      // Node 20's caches name the file they were made from: there the sources serve, the caches do not.
      expect(status.cachesUsable).toBe(rt.major >= 22);
      if (rt.major < 22) expect(status.counters.noCache).toBe(status.counters.hits);
    } finally {
      rmSync(moved, { recursive: true, force: true });
    }
  });

  it('keeps --enable-source-maps working (the mapped module is handed to Node)', () => {
    const a = plain(['--enable-source-maps', 'sourcemaps.js']);
    expect(a.stdout).toContain('sourcemapped.ts:2:3');
    const { r, status } = withBlob(['--enable-source-maps', 'sourcemaps.js']);
    same(a, r);
    expect(status.counters.deferred).toBe(1);
  });

  it('runs an ES module entry identically; ESM comes from the blob where Node has registerHooks', () => {
    const a = plain(['esm/main.mjs']);
    expect(a.status).toBe(0);
    const { r, status } = withBlob(['esm/main.mjs']);
    same(a, r);
    const hasHooks = run(rt.bin, ['-p', 'typeof require("module").registerHooks']).stdout.trim() === 'function';
    if (hasHooks) {
      expect(status.esm).toBe('blob');
      expect(status.counters.esmHits).toBeGreaterThanOrEqual(3);
    } else {
      expect(status.esm).toBe('disk');
      expect(status.esmReason).toMatch(/registerHooks/);
    }
    expect(status.counters.hits).toBeGreaterThanOrEqual(2); // facts.js and fn.js, CommonJS under ESM
  });

  it('treats a V8 flag mismatch as unusable caches: same output, sources still from the blob', () => {
    const flag = '--no-opt'; // changes the cache tag on every supported Node (heap-size flags do not from Node 24)
    const a = plain([flag, 'main.js']);
    const { r, status } = withBlob([flag, 'main.js']);
    same(a, r);
    expect(status.enabled).toBe(true);
    expect(status.cachesUsable).toBe(false);
    expect(status.reason).toMatch(/cache tag/);
    expect(status.counters.hits).toBeGreaterThanOrEqual(12);
    expect(status.counters.noCache).toBe(status.counters.hits);
  });

  it('runs as if absent when the blob is missing, and says why', () => {
    const a = plain(['main.js']);
    const { r, status } = withBlob(['main.js'], {}, join(dir, 'missing.blob'));
    same(a, r);
    expect(status.enabled).toBe(false);
    expect(status.reason).toMatch(/ENOENT/);
  });

  it('runs as if absent when the blob is corrupt, and says why', () => {
    const bad = join(dir, 'corrupt-header.blob');
    const bytes = readFileSync(blob);
    bytes[20]! ^= 0xff;
    writeFileSync(bad, bytes);
    const a = plain(['main.js']);
    const { r, status } = withBlob(['main.js'], {}, bad);
    same(a, r);
    expect(status.enabled).toBe(false);
    expect(status.reason).toMatch(/Not a valid codeblob file/);
  });

  it('loads one corrupt entry from disk and everything else from the blob', () => {
    const bad = join(dir, 'corrupt-entry.blob');
    const store = open(blob);
    const entry = store.get('lib/fn.js')!;
    const at = entry.sourceOffset + entry.sourceLength - 10;
    store.close();
    const bytes = readFileSync(blob);
    bytes[at]! ^= 0x01;
    writeFileSync(bad, bytes);
    const a = plain(['main.js']);
    const { r, status } = withBlob(['main.js'], {}, bad);
    same(a, r);
    expect(status.counters.corrupt).toBe(1);
    expect(status.counters.hits).toBeGreaterThanOrEqual(11);
  });

  it('loads the same with the hash checks on the loading thread (CODEBLOB_VERIFY_AHEAD=0) as with them ahead', () => {
    const a = plain(['main.js']);
    const ahead = withBlob(['main.js']);
    const inline = withBlob(['main.js'], { CODEBLOB_VERIFY_AHEAD: '0' });
    same(a, ahead.r);
    same(a, inline.r);
    expect(inline.status.counters.verifiedAhead).toBe(0);
    expect(inline.status.counters.hits).toBe(ahead.status.counters.hits);
    // How many the thread got to first depends on the machine's load; never more than it was given.
    const s = open(blob);
    const sections = s.entries().length * 2;
    s.close();
    expect(ahead.status.counters.verifiedAhead).toBeLessThanOrEqual(sections);
  });

  it('a corrupt entry found by the background check loads from disk, the same as without it', () => {
    const bad = join(dir, 'corrupt-ahead.blob');
    const s = open(blob);
    const entry = s.get('lib/fn.js')!;
    const at = entry.sourceOffset + 20;
    s.close();
    const bytes = readFileSync(blob);
    bytes[at]! ^= 0x01;
    writeFileSync(bad, bytes);
    const a = plain(['main.js']);
    for (const env of [{}, { CODEBLOB_VERIFY_AHEAD: '0' }]) {
      const { r, status } = withBlob(['main.js'], env, bad);
      same(a, r);
      expect(status.counters.corrupt).toBe(1);
    }
  });

  it('rejects an unknown CODEBLOB_VERIFY value and runs without codeblob', () => {
    const a = plain(['main.js']);
    const { r, status } = withBlob(['main.js'], { CODEBLOB_VERIFY: 'sometimes' });
    same(a, r);
    expect(status.enabled).toBe(false);
    expect(status.reason).toMatch(/CODEBLOB_VERIFY/);
  });

  it('prints its status with NODE_DEBUG=codeblob', () => {
    const r = run(rt.bin, ['--require', registerPath, 'main.js'], { cwd: dir, env: cleanEnv({ CODEBLOB_FILE: blob, NODE_DEBUG: 'codeblob' }) });
    expect(r.stderr).toMatch(/CODEBLOB \d+: codeblob: on \(mmap/);
  });

  it('loaded twice (the CommonJS bundle by --require, the ES module by --import), it enables once and reports once', () => {
    const r = run(rt.bin, ['--require', registerPath, '--import', join(repo, 'dist/loader/register.js'), 'main.js'], {
      cwd: dir,
      env: cleanEnv({ CODEBLOB_FILE: blob, CODEBLOB_STATUS: '1' }),
    });
    // Any --import makes Node run the main module through its ES module loader (module.id is then
    // the path, not '.'): compare with plain Node given an --import too.
    writeFileSync(join(dir, 'noop.mjs'), '');
    const a = plain(['--import', './noop.mjs', 'main.js']);
    expect(r.stdout).toBe(a.stdout);
    expect(r.status).toBe(a.status);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('codeblob: '));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^codeblob: on \(mmap/);
  });

  it('reports its status when SIGTERM stops the process, and dies of SIGTERM as without codeblob; an app that handles SIGTERM keeps doing so', async () => {
    writeFileSync(join(dir, 'waits.js'), "require('./lib/facts'); console.log('ready'); setInterval(() => {}, 1000);");
    writeFileSync(join(dir, 'handles.js'), "require('./lib/facts'); process.on('SIGTERM', () => { console.log('the app handled it'); process.exit(7); }); console.log('ready'); setInterval(() => {}, 1000);");
    const stopped = async (script: string, env: NodeJS.ProcessEnv) => {
      const child = spawn(rt.bin, [...(env.CODEBLOB_FILE ? ['--require', registerPath] : []), script], { cwd: dir, env: cleanEnv(env) });
      let stdout = '';
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d));
      await new Promise<void>((ready) => child.stdout.on('data', (d: Buffer) => {
        stdout += d;
        if (stdout.includes('ready\n')) ready();
      }));
      child.kill('SIGTERM');
      const [code, signal] = await new Promise<[number | null, string | null]>((done) => child.on('close', (c, s) => done([c, s])));
      return { code, signal, stdout, stderr };
    };
    const statusFile = join(dir, 'sigterm-status.json');
    for (const script of ['waits.js', 'handles.js']) {
      rmSync(statusFile, { force: true });
      const plainRun = await stopped(script, {});
      const blobRun = await stopped(script, { CODEBLOB_FILE: blob, CODEBLOB_STATUS: '1', CODEBLOB_STATUS_FILE: statusFile });
      expect([blobRun.code, blobRun.signal, blobRun.stdout]).toEqual([plainRun.code, plainRun.signal, plainRun.stdout]);
      expect(blobRun.stderr.split('\n').filter((l) => l.startsWith('codeblob: '))).toEqual([expect.stringMatching(/^codeblob: on \(mmap.*[1-9]\d* cjs/)]);
      const status = JSON.parse(readFileSync(statusFile, 'utf8')) as Status;
      expect(status.counters.hits).toBeGreaterThan(0);
    }
  });

  describe('staleness', () => {
    const fn = () => join(dir, 'lib/fn.js');
    let original: Buffer;
    let mtimeNs: bigint;
    beforeAll(() => {
      original = readFileSync(fn());
      mtimeNs = statSync(fn(), { bigint: true }).mtimeNs;
    });
    const restore = () => {
      rmSync(fn(), { force: true });
      writeFileSync(fn(), original);
      setMtimeNs(fn(), mtimeNs);
    };

    it('loads a same-length edit from disk (mtime changed), with the file stats made ahead or not', () => {
      writeFileSync(fn(), original.toString().replace('return a + b;', 'return b + a;'));
      try {
        const a = plain(['main.js']);
        expect(a.stdout).toContain('return b + a;');
        for (const env of [{}, { CODEBLOB_VERIFY_AHEAD: '0' }]) {
          const { r, status } = withBlob(['main.js'], env);
          same(a, r);
          expect(status.counters.stale).toBe(1);
          const served = status.counters.hits + status.counters.jsonHits + status.counters.esmHits + status.counters.stale;
          // How many the thread had made first depends on the machine; never more than were checked.
          expect(status.counters.statsAhead).toBeLessThanOrEqual(served);
          if (Object.keys(env).length > 0) expect(status.counters.statsAhead).toBe(0);
        }
      } finally {
        restore();
      }
    });

    // Issue 19: content, not time, decides.
    it('a new mtime, the same content: served from the blob after a content check (counted), with the file stats made ahead or not', () => {
      const baseline = withBlob(['main.js']).status.counters;
      setMtimeNs(fn(), mtimeNs + 1_000_000_000n);
      try {
        const a = plain(['main.js']);
        for (const env of [{}, { CODEBLOB_VERIFY_AHEAD: '0' }]) {
          const { r, status } = withBlob(['main.js'], env);
          same(a, r);
          expect(status.counters).toMatchObject({ stale: 0, timeOnly: 1, hits: baseline.hits, jsonHits: baseline.jsonHits });
        }
      } finally {
        restore();
      }
    });

    it('a content change in one module: that module, and only it, loads from disk, and NODE_DEBUG=codeblob names it with why', () => {
      const baseline = withBlob(['main.js']).status.counters;
      writeFileSync(fn(), original.toString().replace('return a + b;', 'return b + a;'));
      try {
        const { r, status } = withBlob(['main.js'], { NODE_DEBUG: 'codeblob' });
        expect(status.counters).toMatchObject({ stale: 1, timeOnly: 0, hits: baseline.hits - 1, misses: baseline.misses });
        const stale = r.stderr.split('\n').filter((l) => / stale \(/.test(l));
        expect(stale).toEqual([expect.stringMatching(new RegExp(`^CODEBLOB \\d+: stale \\(its content changed\\), loading from disk: ${fn().replaceAll('/', '\\/')}$`))]);
        // What the table could not answer is named too, with why; no status line of zeros at startup.
        expect(r.stderr).toMatch(/^CODEBLOB \d+: resolution from Node \(the main module\): /m);
        expect(r.stderr).not.toMatch(/: 0 cjs \+ 0 json \+ 0 esm from blob/);
      } finally {
        restore();
      }
    });

    it('same length and same mtime: stat mode cannot see it, hash mode loads from disk', () => {
      writeFileSync(fn(), original.toString().replace('return a + b;', 'return b + a;'));
      setMtimeNs(fn(), mtimeNs);
      try {
        const a = plain(['main.js']);
        const statMode = withBlob(['main.js']);
        expect(statMode.r.stdout).toContain('return a + b;'); // the documented limit of `stat`
        const hashMode = withBlob(['main.js'], { CODEBLOB_VERIFY: 'hash' });
        same(a, hashMode.r);
        expect(hashMode.status.counters.stale).toBe(1);
      } finally {
        restore();
      }
    });

    it('a deleted module fails exactly as without codeblob', () => {
      unlinkSync(fn());
      try {
        const a = plain(['main.js']);
        expect(a.stderr).toContain('MODULE_NOT_FOUND');
        const { r } = withBlob(['main.js']);
        same(a, r);
      } finally {
        restore();
      }
    });

    it('a module replaced by a symlink loads its target from disk', () => {
      const target = join(dir, 'lib/fn-other.js');
      writeFileSync(target, original.toString().replace('return a + b;', 'return a - b;'));
      unlinkSync(fn());
      symlinkSync(target, fn());
      try {
        const a = plain(['main.js']);
        expect(a.stdout).toContain('return a - b;');
        const { r, status } = withBlob(['main.js']);
        same(a, r);
        expect(status.counters.misses).toBe(2); // transformed.js, and fn-other.js (the symlink's real path)
      } finally {
        restore();
        rmSync(target);
      }
    });

    it('CODEBLOB_VERIFY=none trusts the blob', () => {
      writeFileSync(fn(), original.toString().replace('return a + b;', 'return b + a;'));
      try {
        const { r, status } = withBlob(['main.js'], { CODEBLOB_VERIFY: 'none' });
        expect(r.stdout).toContain('return a + b;');
        expect(status.verify).toBe('none');
        expect(status.counters.stale).toBe(0);
      } finally {
        restore();
      }
    });
  });
});

describe('file stats made ahead (FreshAhead)', () => {
  let dir: string;
  let blob: string;
  const pkg = (f: string) => join(dir, 'node_modules/pkg', f);
  const files: Record<string, string> = {
    'main.js': "const fs = require('fs');\n" +
      "fs.writeFileSync(__dirname + '/generated.js', 'module.exports = ' + JSON.stringify(process.env.GENERATED || 'packed') + ';\\n');\n" +
      "console.log(require('pkg'), require('./local'), require('./generated'));\n",
    'local.js': "module.exports = 'local';\n",
    'generated.js': "module.exports = 'packed';\n",
    'node_modules/pkg/package.json': '{"name":"pkg","main":"index.js"}\n',
    'node_modules/pkg/index.js': "module.exports = require('./lib').name;\n",
    'node_modules/pkg/lib.js': "exports.name = 'lib-a';\n",
  };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'codeblob-fresh-ahead-'));
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, f)), { recursive: true });
      writeFileSync(join(dir, f), text);
    }
    blob = join(dir, 'app.blob');
    const r = run(process.execPath, [cli, 'pack', '--json', '-o', blob, 'main.js'], { cwd: dir, env: cleanEnv() });
    expect(r.status, r.stderr).toBe(0);
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const restore = () => writeFileSync(pkg('lib.js'), files['node_modules/pkg/lib.js']!);

  async function finished(ahead: FreshAhead): Promise<void> {
    for (let i = 0; i < 2000 && !ahead.finished; i++) await new Promise((r) => setTimeout(r, 5));
    expect(ahead.finished).toBe(true);
  }

  it('judges startup files in node_modules from the thread\'s stat; files outside node_modules are left to the loading thread', async () => {
    writeFileSync(pkg('lib.js'), "exports.name = 'lib-b';\n"); // changed before the thread stats it
    const store = open(blob);
    try {
      const ahead = FreshAhead.start(store, native()!)!;
      expect(ahead).toBeDefined();
      await finished(ahead);
      const keys = store.entries().filter((e) => e.order >= 0).map((e) => e.key).sort();
      expect(keys).toEqual(['generated.js', 'local.js', 'main.js', 'node_modules/pkg/index.js', 'node_modules/pkg/lib.js']);
      const verdict = (key: string) => ahead.fresh(store.get(key)!);
      expect(verdict('node_modules/pkg/index.js')).toBe(true);
      expect(verdict('node_modules/pkg/lib.js')).toBe(false);
      for (const key of ['main.js', 'local.js', 'generated.js']) expect(verdict(key), key).toBeUndefined();
      expect(isFresh(store.get('node_modules/pkg/lib.js')!, pkg('lib.js'), 'stat', native())).toBe(false);
      expect(isFresh(store.get('node_modules/pkg/lib.js')!, pkg('lib.js'), 'stat', undefined)).toBe(false);
      expect(ahead.madeAhead).toBe(2); // index.js and lib.js, both from the thread
      ahead.stop();
      expect(verdict('node_modules/pkg/index.js')).toBeUndefined(); // after the burst: stat when loading
    } finally {
      store.close();
      restore();
    }
  });

  it('serve only the synchronous burst that used them: gone at the next microtask (all a piscina worker runs between tasks)', async () => {
    const store = open(blob);
    const state = { ...loaderState(), verify: 'stat' as const, counters: newCounters() };
    const ctx: ServeContext = { store, state, config: readLoaderConfig({}).config, debug: () => {}, burst: new Burst(), native: native() };
    try {
      startStatsAhead(ctx);
      await finished(ctx.statsAhead!); // let the thread stat everything
      const e = store.get('node_modules/pkg/index.js')!;
      ctx.burst.noteLoad(); // a chain of loads starts
      expect(checkFresh(ctx, e, store.filename(e))).toBe(true);
      expect(checkFresh(ctx, e, store.filename(e))).toBe(true);
      expect(state.counters.statsAhead).toBe(2); // one chain: both from the thread
      await Promise.resolve(); // a microtask checkpoint, no macrotask
      expect(ctx.statsAhead).toBeUndefined();
      ctx.burst.noteLoad();
      expect(checkFresh(ctx, e, store.filename(e))).toBe(true);
      expect(state.counters.statsAhead).toBe(2); // statted when loaded
    } finally {
      endStatsAhead(ctx);
      store.close();
    }
  });

  it('a changed package file loads from disk; a module the app writes at startup loads as written', () => {
    writeFileSync(pkg('lib.js'), "exports.name = 'lib-b';\n");
    try {
      const env = { GENERATED: 'written at startup' };
      const a = run(process.execPath, ['main.js'], { cwd: dir, env: cleanEnv(env) });
      expect(a.stdout).toBe('lib-b local written at startup\n');
      const statusFile = join(dir, 'status.json');
      const r = run(process.execPath, ['--require', registerPath, 'main.js'], { cwd: dir, env: cleanEnv({ ...env, CODEBLOB_FILE: blob, CODEBLOB_STATUS_FILE: statusFile }) });
      expect(r.stdout).toBe(a.stdout);
      const status = JSON.parse(readFileSync(statusFile, 'utf8')) as Status;
      expect(status.counters.stale).toBe(2); // lib.js, generated.js
      expect(status.counters.hits).toBe(3); // main.js, local.js, pkg/index.js
      expect(status.counters.statsAhead).toBeLessThanOrEqual(3); // pkg's files, as far as the thread got
    } finally {
      restore();
    }
  });
});

describe.each(runtimes())('the staleness line on $name (issue 19)', (rt) => {
  const MODULES = 12;
  let base: string;
  let template: string;
  let n = 0;

  beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), `codeblob-staleness-${rt.name}-`));
    template = join(base, 'template');
    mkdirSync(join(template, 'm'), { recursive: true });
    const requires = Array.from({ length: MODULES }, (_, i) => `require('./m/${i}')`).join(' + ');
    writeFileSync(join(template, 'main.js'), `console.log('sum', ${requires});\nif (require('node:cluster').isWorker) process.disconnect();\n`);
    for (let i = 0; i < MODULES; i++) writeFileSync(join(template, `m/${i}.js`), `module.exports = ${i};\n`);
    // A cluster of three workers: one process tree, one process group.
    writeFileSync(join(template, 'primary.js'), "const cluster = require('node:cluster');\ncluster.setupPrimary({ exec: require('node:path').join(__dirname, 'main.js') });\nfor (let i = 0; i < 3; i++) cluster.fork();\n");
    const r = run(process.execPath, [cli, 'pack', '--node', rt.bin, '-o', join(template, 'app.blob'), 'main.js'], { cwd: template, env: cleanEnv() });
    expect(r.status, r.stderr).toBe(0);
  }, 120_000);
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  /** A copy of the packed app (times kept), with its own temp dir for the markers. */
  function app(): { dir: string; tmp: string } {
    const dir = join(base, `app-${n}`);
    const tmp = join(base, `tmp-${n++}`);
    execFileSync('cp', ['-a', template, dir]);
    mkdirSync(tmp);
    return { dir, tmp };
  }

  /** Runs the cluster as a process tree of its own (a new session and process group). */
  function cluster(dir: string, tmp: string): Promise<{ stdout: string; stderr: string; code: number | null }> {
    const child = spawn(rt.bin, ['--require', registerPath, 'primary.js'], {
      cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
      env: cleanEnv({ CODEBLOB_FILE: join(dir, 'app.blob'), TMPDIR: tmp }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    return new Promise((resolve) => child.on('close', (code) => resolve({ stdout, stderr, code })));
  }
  const lines = (stderr: string) => stderr.match(STALENESS_LINE) ?? [];
  const markers = (tmp: string) => readdirSync(tmp).filter((f) => f.startsWith('codeblob-stale-'));

  it('nothing changed: no line, no marker', async () => {
    const { dir, tmp } = app();
    const r = await cluster(dir, tmp);
    expect(r.code).toBe(0);
    expect(r.stdout.match(/^sum 66$/gm)).toHaveLength(3);
    expect(r.stderr).toBe('');
    expect(markers(tmp)).toEqual([]);
  });

  it('every file with a new mtime (a copy that reset times): one line for the whole tree, with the cause and the fix; another tree says it again', async () => {
    const { dir, tmp } = app();
    touchTree(dir);
    const first = await cluster(dir, tmp);
    expect(first.stdout.match(/^sum 66$/gm)).toHaveLength(3);
    expect(lines(first.stderr)).toEqual([expect.stringMatching(
      new RegExp(`^codeblob: ${MODULES + 1} of the ${MODULES + 1} modules packed in ${join(dir, 'app.blob').replaceAll('/', '\\/')} .*new modification times.*copied after packing without keeping times.*cp -p or rsync -t`),
    )]);
    expect(first.stderr.replace(STALENESS_LINE, '').trim()).toBe('');
    const [marker] = markers(tmp);
    expect(markers(tmp)).toHaveLength(1);
    // A new tree (the first is gone): its own line, and the gone tree's marker is swept.
    const second = await cluster(dir, tmp);
    expect(lines(second.stderr)).toHaveLength(1);
    expect(markers(tmp)).toHaveLength(1);
    expect(markers(tmp)).not.toContain(marker);
  });

  it('3 of 13 modules changed: the line says they changed since packing; 1 of 13 is under the 10% that makes a line', async () => {
    const { dir, tmp } = app();
    writeFileSync(join(dir, 'm/0.js'), 'module.exports = 100;\n');
    const one = await cluster(dir, tmp);
    expect(one.stdout.match(/^sum 166$/gm)).toHaveLength(3);
    expect(lines(one.stderr)).toEqual([]);
    for (const i of [1, 2]) writeFileSync(join(dir, `m/${i}.js`), 'module.exports = 100;\n');
    const three = await cluster(dir, tmp);
    expect(three.stdout.match(/^sum 363$/gm)).toHaveLength(3);
    expect(lines(three.stderr)).toEqual([expect.stringMatching(/^codeblob: 3 of the 13 modules packed in .* changed on disk since packing: they load from disk .*Fix: pack as the last build step/)]);
  });
});
