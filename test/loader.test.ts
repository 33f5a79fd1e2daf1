/**
 * The loader (codeblob/register) on a fixture that prints every CommonJS fact codeblob must
 * not change, on every runtime: identical output with and without codeblob, counters read from
 * the child, staleness, flag mismatch, missing and corrupt blobs, ES modules.
 */
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { open } from '../src/index.js';
import { Burst } from '../src/loader/burst.js';
import { readLoaderConfig } from '../src/loader/config.js';
import { FreshAhead, isFresh } from '../src/loader/freshness.js';
import { checkFresh, endStatsAhead, startStatsAhead, type ServeContext } from '../src/loader/serve.js';
import { loaderState, newCounters } from '../src/loader/status.js';
import { native } from '../src/native/binding.js';
import { differential, expectSameRun, runFromBlob, runPlain, type Program, type StatusReport } from './helpers/differential.js';
import { cleanEnv, cli, registerPath, repo, run, runtimes } from './helpers/env.js';
import { STALENESS_LINE, touchTree } from './helpers/files.js';

/** Sets a file's mtime to the nanosecond, as `touch -d` does. */
function setMtimeNs(path: string, mtimeNs: bigint): void {
  const sec = mtimeNs / 1_000_000_000n;
  const nsec = (mtimeNs % 1_000_000_000n).toString().padStart(9, '0');
  execFileSync('touch', ['-m', '-d', `@${sec}.${nsec}`, path]);
}

describe.each(runtimes())('loader on $name', (rt) => {
  let dir: string;
  let blob: string;

  /** A script of the fixture (with Node's `options`), run on this runtime. */
  const program = (script: string, options: string[] = []): Program => ({ node: rt.bin, cwd: dir, script: [script], options });
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
    const { plain, report: status } = differential(program('main.js'), blob);
    expect(plain.status).toBe(3);
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

  it('a process that loads nothing from the blob (a cluster primary started with the preload) keeps none of its pages', () => {
    // The checks ahead start with the first load: none here, so no thread reads the startup range
    // into this process, where no end of a loading burst would ever drop it again.
    const app = mkdtempSync(join(tmpdir(), `codeblob-idle-${rt.name}-`));
    try {
      writeFileSync(join(app, 'package.json'), '{}');
      writeFileSync(join(app, 'big.js'), `exports.text = ${JSON.stringify('x'.repeat(2 << 20))};\n`);
      writeFileSync(join(app, 'main.js'), "require('./big.js');\n");
      expect(run(process.execPath, [cli, 'pack', '--node', rt.bin, 'main.js', '-o', 'app.blob'], { cwd: app, env: cleanEnv() }).status).toBe(0);
      const probe = `
        const { readFileSync } = require('fs');
        const store = globalThis[Symbol.for('codeblob.loader.status')][Symbol.for('codeblob.loader.store')];
        const wait = () => {
          if (store.verifyAheadProgress()?.running) return setImmediate(wait);
          let rss = 0, inBlob = false;
          for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\\n')) {
            if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inBlob = line.endsWith('app.blob');
            else if (inBlob && line.startsWith('Rss:')) rss += Number(line.split(/ +/)[1]);
          }
          const range = store.startupRange();
          console.log(JSON.stringify({ rss: rss * 1024, progress: store.verifyAheadProgress() ?? null, meta: range.start, startup: range.end - range.start }));
        };
        wait();`;
      const r = run(rt.bin, ['--require', registerPath, '-e', probe], { cwd: app, env: cleanEnv({ CODEBLOB_FILE: join(app, 'app.blob') }) });
      expect(r.status, r.stderr).toBe(0);
      const { rss, progress, meta, startup } = JSON.parse(r.stdout) as { rss: number; progress: unknown; meta: number; startup: number };
      expect(progress).toBeNull();
      expect(startup).toBeGreaterThan(2 << 20);
      // What opening it reads (header and index, with the kernel's fault-around), not the modules.
      expect(rss).toBeLessThanOrEqual(meta + 64 * 1024);
    } finally {
      rmSync(app, { recursive: true, force: true });
    }
  });

  it('keeps no more bytecode alive than a plain run (no compilation cache holding every module\'s top level)', () => {
    // On Node 20 a vm.Script stays in V8's compilation cache with all of its bytecode: 300
    // modules of generated top-level code kept ~2.4 MiB alive that a plain run frees.
    const app = mkdtempSync(join(tmpdir(), `codeblob-bytecode-${rt.name}-`));
    try {
      const body = Array.from({ length: 40 }, (_, i) => `const v${i} = [${i}, ${i + 1}, 'x${i}'].map((y) => String(y) + '${i}');`).join('\n');
      let main = '';
      for (let m = 0; m < 300; m++) {
        writeFileSync(join(app, `m${m}.js`), `// module ${m}\n${body}\nexports.f = function (a) { return a + ${m}; };\n`);
        main += `require('./m${m}.js');\n`;
      }
      writeFileSync(join(app, 'package.json'), '{}');
      writeFileSync(join(app, 'main.js'), main);
      writeFileSync(join(app, 'measure.js'), `require('./main.js');
        const v8 = require('v8'); v8.setFlagsFromString('--expose-gc'); const gc = require('vm').runInNewContext('gc');
        gc(); gc(); console.log(v8.getHeapCodeStatistics().bytecode_and_metadata_size);`);
      expect(run(process.execPath, [cli, 'pack', '--node', rt.bin, 'main.js', '-o', 'app.blob'], { cwd: app, env: cleanEnv() }).status).toBe(0);
      const plainRun = run(rt.bin, ['measure.js'], { cwd: app, env: cleanEnv() });
      const blobRun = run(rt.bin, ['--require', registerPath, 'measure.js'], { cwd: app, env: cleanEnv({ CODEBLOB_FILE: join(app, 'app.blob'), CODEBLOB_STATUS: '1' }) });
      expect(blobRun.stderr).toMatch(/: 30[0-9] cjs \+ 0 json/);
      expect(Number(blobRun.stdout)).toBeLessThan(Number(plainRun.stdout) * 1.5 + 512 * 1024);
    } finally {
      rmSync(app, { recursive: true, force: true });
    }
  });

  it('moved with its blob to another path (cp -a), the app runs identically there: stack traces name the new path', () => {
    const moved = `${dir}-moved`;
    execFileSync('cp', ['-a', dir, moved]);
    try {
      const { report: status } = differential({ node: rt.bin, cwd: moved, script: ['main.js'] }, join(moved, 'app.blob'));
      expect(status.counters.hits).toBeGreaterThanOrEqual(12);
      // Node 20's caches name the file they were made from: there the sources serve, the caches do not.
      expect(status.cachesUsable).toBe(rt.major >= 22);
      if (rt.major < 22) expect(status.counters.noCache).toBe(status.counters.hits);
    } finally {
      rmSync(moved, { recursive: true, force: true });
    }
  });

  it('keeps --enable-source-maps working (the mapped module is handed to Node)', () => {
    const { plain, report: status } = differential(program('sourcemaps.js', ['--enable-source-maps']), blob);
    expect(plain.stdout).toContain('sourcemapped.ts:2:3');
    expect(status.counters.deferred).toBe(1);
  });

  it('runs an ES module entry identically; ESM comes from the blob where Node has registerHooks', () => {
    const { plain, report: status } = differential(program('esm/main.mjs'), blob);
    expect(plain.status).toBe(0);
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
    const { report: status } = differential(program('main.js', [flag]), blob);
    expect(status.enabled).toBe(true);
    expect(status.cachesUsable).toBe(false);
    expect(status.reason).toMatch(/cache tag/);
    expect(status.counters.hits).toBeGreaterThanOrEqual(12);
    expect(status.counters.noCache).toBe(status.counters.hits);
  });

  it('runs as if absent when the blob is missing, and says why', () => {
    const { report: status } = differential(program('main.js'), join(dir, 'missing.blob'));
    expect(status.enabled).toBe(false);
    expect(status.reason).toMatch(/ENOENT/);
  });

  it('runs as if absent when the blob is corrupt, and says why', () => {
    const bad = join(dir, 'corrupt-header.blob');
    const bytes = readFileSync(blob);
    bytes[20]! ^= 0xff;
    writeFileSync(bad, bytes);
    const { report: status } = differential(program('main.js'), bad);
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
    const { report: status } = differential(program('main.js'), bad);
    expect(status.counters.corrupt).toBe(1);
    expect(status.counters.hits).toBeGreaterThanOrEqual(11);
  });

  it('loads the same with the hash checks on the loading thread (CODEBLOB_VERIFY_AHEAD=0) as with them ahead', () => {
    const p = program('main.js');
    const plain = runPlain(p);
    const ahead = runFromBlob(p, blob);
    const inline = runFromBlob(p, blob, { CODEBLOB_VERIFY_AHEAD: '0' });
    expectSameRun(plain, ahead);
    expectSameRun(plain, inline);
    expect(inline.report.counters.verifiedAhead).toBe(0);
    expect(inline.report.counters.hits).toBe(ahead.report.counters.hits);
    // How many the thread got to first depends on the machine's load; never more than it was given.
    const s = open(blob);
    const sections = s.entries().length * 2;
    s.close();
    expect(ahead.report.counters.verifiedAhead).toBeLessThanOrEqual(sections);
    // An app that loads only once the check has ended (it joins the loader's check through a
    // store of its own on the same file, and waits for it) finds every section it uses checked
    // ahead; with the check off, none.
    writeFileSync(join(dir, 'after-check.cjs'), `
      (async () => {
        const { open } = await import(${JSON.stringify(join(repo, 'dist/index.js'))});
        const store = open(process.env.CODEBLOB_FILE);
        store.verifyAhead();
        while (store.verifyAheadProgress().running) await new Promise((r) => setTimeout(r, 5));
        store.close();
        require('./main.js');
      })();
    `);
    const late = program('after-check.cjs');
    const checked = runFromBlob(late, blob);
    const unchecked = runFromBlob(late, blob, { CODEBLOB_VERIFY_AHEAD: '0' });
    expectSameRun(checked, unchecked);
    expect(checked.report.counters.hits).toBeGreaterThanOrEqual(12);
    expect(checked.report.counters.verifiedAhead).toBeGreaterThanOrEqual(checked.report.counters.hits);
    expect(unchecked.report.counters.verifiedAhead).toBe(0);
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
    const p = program('main.js');
    const plain = runPlain(p);
    for (const env of [{}, { CODEBLOB_VERIFY_AHEAD: '0' }]) {
      const fromBlob = runFromBlob(p, bad, env);
      expectSameRun(plain, fromBlob);
      expect(fromBlob.report.counters.corrupt).toBe(1);
    }
  });

  it('rejects an unknown CODEBLOB_VERIFY value and runs without codeblob', () => {
    const { report: status } = differential(program('main.js'), blob, { CODEBLOB_VERIFY: 'sometimes' });
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
    const a = runPlain(program('main.js', ['--import', './noop.mjs']));
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
      const status = JSON.parse(readFileSync(statusFile, 'utf8')) as StatusReport;
      expect(status.counters.hits).toBeGreaterThan(0);
    }
  });

  describe('staleness', () => {
    const fn = () => join(dir, 'lib/fn.js');
    const other = () => join(dir, 'lib/fn-other.js');
    let original: Buffer;
    let mtimeNs: bigint;
    beforeAll(() => {
      original = readFileSync(fn());
      mtimeNs = statSync(fn(), { bigint: true }).mtimeNs;
    });
    // Each test changes lib/fn.js under the blob: the next finds the packed file again, mtime included.
    afterEach(() => {
      rmSync(fn(), { force: true });
      rmSync(other(), { force: true });
      writeFileSync(fn(), original);
      setMtimeNs(fn(), mtimeNs);
    });

    it('loads a same-length edit from disk (mtime changed), with the file stats made ahead or not', () => {
      writeFileSync(fn(), original.toString().replace('return a + b;', 'return b + a;'));
      const p = program('main.js');
      const plain = runPlain(p);
      expect(plain.stdout).toContain('return b + a;');
      for (const env of [{}, { CODEBLOB_VERIFY_AHEAD: '0' }]) {
        const fromBlob = runFromBlob(p, blob, env);
        expectSameRun(plain, fromBlob);
        expect(fromBlob.report.counters.stale).toBe(1);
        // Only files in node_modules are statted ahead (freshness.ts), and this app has none:
        // each of its files is statted when it loads, the edited one included.
        expect(fromBlob.report.counters.statsAhead).toBe(0);
      }
    });

    // Issue 19: content, not time, decides.
    it('a new mtime, the same content: served from the blob after a content check (counted), with the file stats made ahead or not', () => {
      const p = program('main.js');
      const baseline = runFromBlob(p, blob).report.counters;
      setMtimeNs(fn(), mtimeNs + 1_000_000_000n);
      const a = runPlain(p);
      for (const env of [{}, { CODEBLOB_VERIFY_AHEAD: '0' }]) {
        const fromBlob = runFromBlob(p, blob, env);
        expectSameRun(a, fromBlob);
        expect(fromBlob.report.counters).toMatchObject({ stale: 0, timeOnly: 1, hits: baseline.hits, jsonHits: baseline.jsonHits });
      }
    });

    it('a content change in one module: that module, and only it, loads from disk, and NODE_DEBUG=codeblob names it with why', () => {
      const p = program('main.js');
      const baseline = runFromBlob(p, blob).report.counters;
      writeFileSync(fn(), original.toString().replace('return a + b;', 'return b + a;'));
      const { report: status, ...r } = runFromBlob(p, blob, { NODE_DEBUG: 'codeblob' });
      expect(status.counters).toMatchObject({ stale: 1, timeOnly: 0, hits: baseline.hits - 1, misses: baseline.misses });
      const stale = r.stderr.split('\n').filter((l) => / stale \(/.test(l));
      expect(stale).toEqual([expect.stringMatching(new RegExp(`^CODEBLOB \\d+: stale \\(its content changed\\), loading from disk: ${fn().replaceAll('/', '\\/')}$`))]);
      // What the table could not answer is named too, with why; no status line of zeros at startup.
      expect(r.stderr).toMatch(/^CODEBLOB \d+: resolution from Node \(the main module\): /m);
      expect(r.stderr).not.toMatch(/: 0 cjs \+ 0 json \+ 0 esm from blob/);
    });

    it('same length and same mtime: stat mode cannot see it, hash mode loads from disk', () => {
      writeFileSync(fn(), original.toString().replace('return a + b;', 'return b + a;'));
      setMtimeNs(fn(), mtimeNs);
      const p = program('main.js');
      const statMode = runFromBlob(p, blob);
      expect(statMode.stdout).toContain('return a + b;'); // the documented limit of `stat`
      const { report } = differential(p, blob, { CODEBLOB_VERIFY: 'hash' });
      expect(report.counters.stale).toBe(1);
    });

    it('a deleted module fails exactly as without codeblob', () => {
      unlinkSync(fn());
      const { plain } = differential(program('main.js'), blob);
      expect(plain.stderr).toContain('MODULE_NOT_FOUND');
    });

    it('a module replaced by a symlink loads its target from disk', () => {
      writeFileSync(other(), original.toString().replace('return a + b;', 'return a - b;'));
      unlinkSync(fn());
      symlinkSync(other(), fn());
      const { plain, report: status } = differential(program('main.js'), blob);
      expect(plain.stdout).toContain('return a - b;');
      expect(status.counters.misses).toBe(2); // transformed.js, and fn-other.js (the symlink's real path)
    });

    it('CODEBLOB_VERIFY=none trusts the blob', () => {
      writeFileSync(fn(), original.toString().replace('return a + b;', 'return b + a;'));
      const r = runFromBlob(program('main.js'), blob, { CODEBLOB_VERIFY: 'none' });
      expect(r.stdout).toContain('return a + b;');
      expect(r.report.verify).toBe('none');
      expect(r.report.counters.stale).toBe(0);
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
  // The tests change pkg's lib.js, and every run of main.js rewrites generated.js: each test
  // starts from the files as packed, mtimes included (a rewrite with the same bytes is still stale).
  const changed = ['node_modules/pkg/lib.js', 'generated.js'];
  const packed = new Map<string, { text: Buffer; mtimeNs: bigint }>();
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'codeblob-fresh-ahead-'));
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, f)), { recursive: true });
      writeFileSync(join(dir, f), text);
    }
    blob = join(dir, 'app.blob');
    const r = run(process.execPath, [cli, 'pack', '--json', '-o', blob, 'main.js'], { cwd: dir, env: cleanEnv() });
    expect(r.status, r.stderr).toBe(0);
    // generated.js as the traced run wrote it, which the blob holds.
    for (const f of changed) packed.set(f, { text: readFileSync(join(dir, f)), mtimeNs: statSync(join(dir, f), { bigint: true }).mtimeNs });
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => {
    for (const [f, { text, mtimeNs }] of packed) {
      writeFileSync(join(dir, f), text);
      setMtimeNs(join(dir, f), mtimeNs);
    }
  });

  /** Waits, without blocking the event loop, for the thread's finished byte (shared memory: there is no event to await). */
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
    const app = { node: process.execPath, cwd: dir, script: ['main.js'], env: { GENERATED: 'written at startup' } };
    const { plain, report: status } = differential(app, blob, {}, { stalenessLine: true }); // 2 of 5 modules stale
    expect(plain.stdout).toBe('lib-b local written at startup\n');
    expect(status.counters.stale).toBe(2); // lib.js, generated.js
    expect(status.counters.hits).toBe(3); // main.js, local.js, pkg/index.js
    expect(status.counters.statsAhead).toBeLessThanOrEqual(3); // pkg's files, as far as the thread got
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
