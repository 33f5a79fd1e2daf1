/**
 * The packer on real packages (the reference corpus) and on small apps: completeness,
 * determinism, zero-copy strings equal to the files, CLI behaviour and errors.
 */
import { readFileSync, mkdtempSync, rmSync, writeFileSync, mkdirSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { open } from '../src/index.js';
import { mayReachImport } from '../src/pack/dynamic-import.js';
import { cleanEnv, cli, referenceCorpus, registerPath, run, runtimes } from './helpers/env.js';
import { touchTree } from './helpers/files.js';

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
      // Every CommonJS module has a code cache, but on Node 20 those that could reach import()
      // from a cache (dynamic-import.ts): lodash's template, tapable's generated hooks ...
      const cjs = store.entries().filter((e) => e.kind === 'cjs');
      const uncached = cjs.filter((e) => e.cacheLength === 0);
      if (Number(process.versions.node.split('.')[0]) >= 22) expect(uncached).toEqual([]);
      else {
        expect(uncached.map((e) => e.key)).toEqual(cjs.filter((e) => mayReachImport(readFileSync(store.filename(e), 'utf8'))).map((e) => e.key));
        expect(uncached.length).toBeLessThan(50);
      }
    } finally {
      store.close();
    }
  });
});

describe('which modules could reach import() (no code cache for them on Node 20)', () => {
  it.each([
    ["import('x')", true],
    ["new Function('p', 'return import(p)')", true],
    ["Function('return this')()", false],
    ["Function('return import(x)')", true],
    ['eval(`1 + 1`)', false],
    ['eval(code)', true],
    ['(0, eval)(code)', true],
    ['new Function(a, b)', true],
    ['Function.call(null, code)', true],
    ['Function.apply(null, [code])', true],
    ['const f = Function.bind(null, code)', true],
    ['Reflect.construct(Function, [code])', true],
    ['globalThis.Function(code)', true],
    ["global['eval'](code)", true],
    ['const A = (async () => {}).constructor; new A(code)', true],
    ['Object.getPrototypeOf(function* () {}).constructor(code)', true],
    ['const c = a && x.constructor', true],
    ['const text = Function.prototype.toString.call(f)', false],
    ['const has = Function.call.bind(Object.prototype.hasOwnProperty)', false],
    ['if (x instanceof Function || y === Function) f()', false],
    ['if (x.constructor && x.constructor.name === "Object") f()', false],
    ['const b = typeof obj.constructor.isBuffer === "function"', false],
    ['this.constructor.create()', false],
    ['Kinds[Kinds["Function"] = 3] = "Function"', false],
    ['SymbolFlags.Function | SymbolFlags.Method', false],
    ['module.exports = { eval: false, Function: false }', false],
    ["const s = 'import(x) inside a string, with eval and Function in a comment'; // eval(Function)", false],
    ['eval((', true], // acorn cannot parse it: counted as reaching
  ])('%s → %s', (text, expected) => {
    expect(mayReachImport(text)).toBe(expected);
  });
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

  it('stops a server after --settle-ms and runs --train; what only the training script loaded is not packed', () => {
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
      expect(store.entries().map((e) => e.key).sort()).toEqual(['a.js', 'server.js']);
    } finally {
      store.close();
    }
  });

  it('settles a server by itself once it listens and has loaded nothing for a second', () => {
    app({
      'package.json': '{}',
      'server.js': [
        "const http = require('http');",
        "const server = http.createServer((q, s) => s.end('ok')).listen(0, () => {",
        "  console.log('listening');",
        // A server often loads more right after it listens: that belongs in the blob too.
        "  setTimeout(() => require('./after-listen'), 300);",
        '});',
      ].join('\n'),
      'after-listen.js': 'exports.late = true;',
    });
    const r = codeblob(['pack', 'server.js', '--json', '-o', 'app.blob'], dir);
    expect(r.status, r.stderr).toBe(0);
    const store = open(join(dir, 'app.blob'));
    try {
      expect(store.entries().map((e) => e.key).sort()).toEqual(['after-listen.js', 'server.js']);
    } finally {
      store.close();
    }
  });

  it('a training script from outside the app: its output is shown, it and its helpers are never packed, what the app loaded for it is', () => {
    app({
      'app/package.json': '{"name":"app"}',
      'app/server.js': [
        "const http = require('http');",
        "const server = http.createServer((q, s) => s.end(require('./lib/route').answer(q.headers.authorization)));",
        "server.listen(0, () => require('fs').writeFileSync(require('path').join(__dirname, '..', 'port'), String(server.address().port)));",
      ].join('\n'),
      'app/lib/route.js': "exports.answer = (auth) => auth ? 'authorised' : 'anonymous';",
      'train.js': [
        "const TOKEN = 'Bearer SECRET-TRAINING-TOKEN';",
        "const { get } = require('./train-helper');",
        'module.exports = async () => {',
        "  const port = require('fs').readFileSync(require('path').join(__dirname, 'port'), 'utf8');",
        "  console.log('training got', await get(port, TOKEN));",
        "  console.error('a warning from the training script');",
        '};',
      ].join('\n'),
      'train-helper.js': [
        'exports.get = (port, token) => new Promise((done, fail) => {',
        "  require('http').get({ port, headers: { authorization: token } }, (res) => {",
        "    let body = ''; res.on('data', (d) => (body += d)); res.on('end', () => done(body));",
        "  }).on('error', fail);",
        '});',
      ].join('\n'),
    });
    const r = codeblob(['pack', 'app/server.js', '--train', 'train.js', '-o', 'app.blob'], dir);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('train | training got authorised');
    expect(r.stderr).toContain('train ! a warning from the training script');
    expect(r.stderr).not.toMatch(/warning: .*root/);
    const store = open(join(dir, 'app.blob'));
    try {
      expect(store.root).toBe(join(dir, 'app'));
      expect(store.entries().map((e) => e.key).sort()).toEqual(['lib/route.js', 'server.js']);
    } finally {
      store.close();
    }
    expect(readFileSync(join(dir, 'app.blob')).includes('SECRET-TRAINING-TOKEN')).toBe(false);
  });

  it('an ES module app and training script (Node with module hooks): what the app imports while training is packed, what only the script imports is not', () => {
    const node = runtimes().find((rt) => rt.major >= 24)!;
    app({
      'app/package.json': '{"type":"module"}',
      'app/server.mjs': [
        "import http from 'node:http';",
        "import { writeFileSync } from 'node:fs';",
        "const server = http.createServer(async (q, s) => s.end((await import('./route.mjs')).answer));",
        "server.listen(0, () => writeFileSync(new URL('../port', import.meta.url), String(server.address().port)));",
      ].join('\n'),
      'app/route.mjs': "export const answer = 'from the route';",
      'train.mjs': [
        "import { readFileSync } from 'node:fs';",
        "import { get } from './train-helper.mjs';",
        "export default async () => console.log('got', await get(readFileSync(new URL('./port', import.meta.url), 'utf8')));",
      ].join('\n'),
      'train-helper.mjs': "import http from 'node:http';\nexport const get = (port) => new Promise((done) => http.get({ port }, (r) => { let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => done(b)); }));",
    });
    const r = codeblob(['pack', 'app/server.mjs', '--node', node.bin, '--train', 'train.mjs', '-o', 'app.blob'], dir);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('train | got from the route');
    const store = open(join(dir, 'app.blob'));
    try {
      expect(store.entries().map((e) => e.key).sort()).toEqual(['route.mjs', 'server.mjs']);
      expect(store.get('route.mjs')?.kind).toBe('esm');
      expect(store.root).toBe(join(dir, 'app'));
    } finally {
      store.close();
    }
  });

  it('fails the pack when the training script fails, even with --allow-failure, and shows why', () => {
    app({
      'package.json': '{}',
      'server.js': "require('http').createServer().listen(0);",
      'warm.js': "module.exports = async () => { throw new Error('the training request was refused'); };",
    });
    const r = codeblob(['pack', 'server.js', '--train', 'warm.js', '--allow-failure', '-o', 'app.blob'], dir);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/the training script .*warm\.js failed/);
    expect(r.stderr).toContain('the training request was refused');
    expect(existsSync(join(dir, 'app.blob'))).toBe(false);
  });

  it('records the modules worker threads load, and passes the trace its --env', () => {
    app({
      'package.json': '{}',
      'main.js': [
        "const { Worker } = require('worker_threads');",
        "if (process.env.TRACE_ONLY !== 'yes') throw new Error('--env did not reach the trace');",
        "new Worker(require('path').join(__dirname, 'worker.js')).on('message', (m) => console.log(m));",
      ].join('\n'),
      'worker.js': "const { parentPort } = require('worker_threads'); parentPort.postMessage(require('./only-in-worker').text + require('./data.json').n);",
      'only-in-worker.js': "exports.text = 'from the worker ';",
      'data.json': '{"n": 1}',
    });
    const r = codeblob(['pack', 'main.js', '--env', 'TRACE_ONLY=yes', '-o', 'app.blob'], dir);
    expect(r.status, r.stderr).toBe(0);
    const store = open(join(dir, 'app.blob'));
    try {
      expect(store.entries().map((e) => e.key).sort()).toEqual(['data.json', 'main.js', 'only-in-worker.js', 'worker.js']);
      expect(store.get('only-in-worker.js')!.cacheLength).toBeGreaterThan(0);
      expect(store.get('worker.js')!.order).toBeGreaterThan(store.get('main.js')!.order);
    } finally {
      store.close();
    }
  });

  it('warns when files outside the entry\'s package widen the root', () => {
    app({
      'shared/util.js': 'exports.x = 1;',
      'app/package.json': '{"name":"app"}',
      'app/main.js': "require('../shared/util');",
    });
    const r = codeblob(['pack', 'app/main.js', '-o', 'app.blob'], dir);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`warning: the blob's root is ${dir}, above the entry's package ${join(dir, 'app')}: 1 packed file`));
    expect(codeblob(['pack', 'app/main.js', '--root', '.', '-o', 'app.blob'], dir).stderr).not.toMatch(/warning/);
  });

  it('shows the tail of the app\'s stdout and stderr when the trace fails', () => {
    app({
      'package.json': '{}',
      'main.js': "console.log('starting on port 8080'); console.error('Error: listen EADDRINUSE: address already in use :::8080'); process.exit(2);",
    });
    const r = codeblob(['pack', 'main.js', '-o', 'app.blob'], dir);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/the app's stdout[^\n]*\nstarting on port 8080/);
    expect(r.stderr).toMatch(/the app's stderr[^\n]*\nError: listen EADDRINUSE/);
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

  it('lays sections out on page boundaries with --align page', () => {
    // Modules of every kind and size: tiny, one spanning pages, JSON, a shebang.
    const files: Record<string, string> = {
      'package.json': '{}',
      'main.js': "#!/usr/bin/env node\nconst big = require('./big.js'); const data = require('./data.json');\n" + Array.from({ length: 12 }, (_, i) => `require('./m${i}.js');`).join('\n') + '\nconsole.log(big.n, data.ok);\n',
      'big.js': `exports.n = ${JSON.stringify('y'.repeat(3 * 4096 + 17))}.length;\n`,
      'data.json': '{"ok": true}',
    };
    for (let i = 0; i < 12; i++) files[`m${i}.js`] = `module.exports = ${i};\n`;
    app(files);
    const packed = (args: string[], out: string) => {
      const r = codeblob(['pack', 'main.js', ...args, '--json', '-o', out], dir);
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { alignment: number; fileSize: number; paddingBytes: number };
    };
    const plain = packed([], join(dir, 'plain.blob'));
    const summary = packed(['--align', 'page'], join(dir, 'paged.blob'));
    expect(summary.alignment).toBe(4096);
    const store = open(join(dir, 'paged.blob'));
    try {
      expect(store.entries().length).toBe(15);
      for (const e of store.entries()) expect(e.sourceOffset % 4096).toBe(0);
      expect(store.header.fileSize).toBeGreaterThan(plain.fileSize);
    } finally {
      store.close();
    }
    // And it loads the same.
    const r = run(process.execPath, ['--require', registerPath, 'main.js'], { cwd: dir, env: cleanEnv({ CODEBLOB_FILE: join(dir, 'paged.blob'), CODEBLOB_STATUS: '1' }) });
    expect(r.stdout).toBe('12305 true\n');
    expect(r.stderr).toMatch(/^codeblob: on \(mmap.* 14 cjs \+ 1 json/m);
  });

  it('reports usage errors with exit code 2', () => {
    app({ 'package.json': '{}', 'main.js': '' });
    expect(codeblob(['pack', 'main.js'], dir)).toMatchObject({ status: 2, stderr: expect.stringMatching(/needs an output path/) });
    expect(codeblob(['pack', '-o', 'x.blob'], dir)).toMatchObject({ status: 2 });
    expect(codeblob(['pack', 'main.js', '-o', 'x.blob', '--align', 'sideways'], dir)).toMatchObject({ status: 2 });
    expect(codeblob(['pack', 'main.js', '-o', 'x.blob', '--bogus'], dir)).toMatchObject({
      status: 2,
      stderr: 'codeblob: unknown option --bogus (arguments for the app go after "--")\nRun `codeblob pack --help` for usage.\n',
    });
    expect(codeblob(['pack', 'nope.js', '-o', 'x.blob'], dir)).toMatchObject({ status: 1, stderr: expect.stringMatching(/entry nope.js is not a file/) });
    expect(codeblob(['pack', 'main.js', '-o', 'no/such/dir/x.blob'], dir)).toMatchObject({ status: 1, stderr: expect.stringMatching(/output directory .* does not exist/) });
  });

  it('every subcommand takes --help and -h', () => {
    app({ 'package.json': '{}' });
    for (const command of ['pack', 'inspect', 'verify', 'run', 'mem']) {
      for (const flag of ['--help', '-h']) {
        const r = codeblob([command, flag], dir);
        expect(r, `${command} ${flag}`).toMatchObject({ status: 0, stderr: '' });
        expect(r.stdout).toMatch(new RegExp(`^Usage:\\n  codeblob ${command} `));
      }
    }
    // After "--" it is the app's argument, not ours.
    expect(codeblob(['run', 'missing.blob', '--', 'x.js', '--help'], dir).stdout).not.toMatch(/Usage/);
  });

  it('inspect ends quietly when its reader closes the pipe early', () => {
    const files: Record<string, string> = { 'package.json': '{}', 'main.js': '' };
    for (let i = 0; i < 3000; i++) {
      files[`m/${i}.js`] = `exports.i = ${i};`;
      files['main.js'] += `require('./m/${i}');\n`;
    }
    app(files);
    expect(codeblob(['pack', 'main.js', '-o', 'app.blob'], dir).status).toBe(0);
    const r = run('bash', ['-c', `set -o pipefail; ${JSON.stringify(process.execPath)} ${JSON.stringify(cli)} inspect app.blob --entries | head -1`], { cwd: dir, env: cleanEnv() });
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')[0]).toMatch(/^blob /);
    expect(r.status).toBe(0);
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

  it('verify --files compares the blob with the files: served, a new mtime only, changed, gone; stale resolutions with why; exit 3 past --max-stale', () => {
    app({
      'package.json': '{"name":"app"}',
      'main.js': "console.log(require('./a').a + require('./b').b + require('dep').dep);",
      'a.js': 'exports.a = 1;',
      'b.js': 'exports.b = 2;',
      'node_modules/dep/package.json': '{"name":"dep","main":"lib/index.js"}',
      'node_modules/dep/lib/index.js': 'exports.dep = 3;',
    });
    expect(codeblob(['pack', 'main.js', '-o', 'app.blob'], dir).status).toBe(0);
    const verify = (...args: string[]) => codeblob(['verify', 'app.blob', '--files', ...args], dir);
    const json = (...args: string[]) => JSON.parse(verify('--json', ...args).stdout) as { files: { modules: { total: number; served: number; timeOnly: string[]; changed: { key: string; why: string }[]; gone: string[] }; resolutions: { total: number; holds: number; rechecked: number; stale: { request: string; from: string; why: string }[] }; overLimit: { modules: boolean; resolutions: boolean } } };

    const fresh = verify();
    expect(fresh.status, fresh.stdout).toBe(0);
    expect(fresh.stdout).toMatch(/^modules +4 packed: 4 would be served as packed, 0 served after a content check .*, 0 changed, 0 gone$/m);
    expect(fresh.stdout).toMatch(/^resolutions +3 recorded: 3 hold, 0 hold after a recheck .*, 0 stale$/m);

    // A copy that reset times: everything is still served, after a content check; exit 0.
    touchTree(dir);
    expect(verify().status).toBe(0);
    const touched = json().files;
    expect(touched.modules).toMatchObject({ total: 4, served: 0, changed: [], gone: [] });
    expect(touched.modules.timeOnly.sort()).toEqual(['a.js', 'b.js', 'main.js', 'node_modules/dep/lib/index.js']);
    expect(touched.resolutions).toMatchObject({ total: 3, stale: [] });
    expect(touched.resolutions.rechecked).toBeGreaterThan(0);

    // One module changed, one gone, a package shadowed: named, and past the default limit of 0.
    writeFileSync(join(dir, 'a.js'), 'exports.a = 10;');
    rmSync(join(dir, 'b.js'));
    writeFileSync(join(dir, 'node_modules/dep.js'), 'exports.dep = 30;');
    const changed = verify();
    expect(changed.status).toBe(3);
    expect(changed.stdout).toMatch(/^CHANGED +a\.js: its size changed$/m);
    expect(changed.stdout).toMatch(/^GONE +b\.js$/m);
    expect(changed.stdout).toMatch(/^STALE +require\("dep"\) from \.: .*node_modules changed: .*node_modules\/dep\.js is a file, was absent$/m);
    expect(changed.stdout).toMatch(/^STALE +more than --max-stale 0 of the modules and resolutions would not come from the blob$/m);
    expect(json().files.overLimit).toEqual({ modules: true, resolutions: true });
    expect(json().files.resolutions.stale.map((r) => r.request).sort()).toEqual(['./b', 'dep']);
    expect(verify('--max-stale', '2').status).toBe(0); // 2 of 4 modules, 2 of 3 resolutions
    expect(verify('--max-stale', '70%').status).toBe(0);
    expect(verify('--max-stale', '60%').status).toBe(3); // 2 of 3 resolutions
    expect(codeblob(['verify', 'app.blob', '--max-stale', '1'], dir)).toMatchObject({ status: 2, stderr: expect.stringMatching(/--max-stale needs --files/) });
    expect(verify('--max-stale', 'some')).toMatchObject({ status: 2, stderr: expect.stringMatching(/takes a count \(5\) or a share \(2%\)/) });
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
