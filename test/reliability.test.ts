/**
 * Reliability and hostile files: a blob others could write is refused, packs killed or racing
 * never leave a torn file, opening and closing a store does not leak.
 */
import { chmodSync, chownSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { open } from '../src/index.js';
import { encodeHeader, FORMAT_VERSION, HEADER_SIZE, INDEX_TAG, sha256 } from '../src/format/index.js';
import { runFromBlob } from './helpers/differential.js';
import { cleanEnv, cli, registerPath, repo, run } from './helpers/env.js';

let dir: string;
let appDir: string;
let blob: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'codeblob-reliability-'));
  appDir = join(dir, 'app');
  cpSync(join(repo, 'test/fixtures/semantics'), appDir, { recursive: true });
  blob = join(appDir, 'app.blob');
  const r = run(process.execPath, [cli, 'pack', '--allow-failure', 'main.js', '-o', blob], { cwd: appDir, env: cleanEnv() });
  expect(r.status, r.stderr).toBe(0);
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function loaderStatus(file: string, env: NodeJS.ProcessEnv = {}) {
  const r = runFromBlob({ node: process.execPath, cwd: appDir, script: ['main.js'] }, file, env);
  expect(r.status).toBe(3); // the fixture's own exit code: the app ran either way
  return r.report;
}

describe('hostile files', () => {
  it('refuses a blob that its group or others can write, unless the operator opts in', () => {
    try {
      chmodSync(blob, 0o666);
      const refused = loaderStatus(blob);
      expect(refused.enabled).toBe(false);
      expect(refused.reason).toMatch(/the blob is writable by its group.*CODEBLOB_ALLOW_UNSAFE=1/);
      expect(loaderStatus(blob, { CODEBLOB_ALLOW_UNSAFE: '1' }).enabled).toBe(true);
    } finally {
      chmodSync(blob, 0o644);
    }
    expect(loaderStatus(blob).enabled).toBe(true);
  });

  it('refuses a blob in a directory others can write to, but not in a sticky one like /tmp', () => {
    try {
      chmodSync(appDir, 0o777);
      expect(loaderStatus(blob).reason).toMatch(/its directory .* is writable by/);
      chmodSync(appDir, 0o1777);
      expect(loaderStatus(blob).enabled).toBe(true);
    } finally {
      chmodSync(appDir, 0o755);
    }
  });

  it('a worker refuses a blob whose digest differs from the one its primary pinned', () => {
    const s = open(blob);
    const pin = s.pin();
    s.close();
    const good = `${pin.dev}:${pin.ino}:${pin.size}:${pin.ctimeNs}:${pin.digest}`;
    expect(loaderStatus(blob, { CODEBLOB_PIN: good }).enabled).toBe(true);
    // Another generation: inode facts differ and so does the digest.
    const wrong = `${pin.dev}:${pin.ino + 1}:${pin.size}:${pin.ctimeNs}:${'0'.repeat(64)}`;
    const refused = loaderStatus(blob, { CODEBLOB_PIN: wrong });
    expect(refused.enabled).toBe(false);
    expect(refused.reason).toMatch(/not the generation the primary verified/);
    // Same content under other inode facts (a copy): the full digest still vouches for it.
    const copy = join(appDir, 'copy.blob');
    cpSync(blob, copy);
    expect(loaderStatus(copy, { CODEBLOB_PIN: good }).enabled).toBe(true);
  });

  it.runIf(process.getuid?.() === 0)('refuses a blob owned by another (non-root) user', () => {
    const other = join(appDir, 'other.blob');
    cpSync(blob, other);
    chownSync(other, 4242, 4242);
    const s = loaderStatus(other);
    expect(s.enabled).toBe(false);
    expect(s.reason).toMatch(/owned by uid 4242/);
  });
});

describe('files are never torn or lost', () => {
  it('a pack killed at random points leaves the previous blob intact and no half-written file; the next pack cleans up', async () => {
    const before = readFileSync(blob);
    for (const delay of [30, 120, 250, 400, 600]) {
      const child = spawn(process.execPath, [cli, 'pack', '--allow-failure', 'main.js', '-o', blob], { cwd: appDir, env: cleanEnv(), stdio: 'ignore' });
      const exited = new Promise((r) => child.on('exit', r));
      await new Promise((r) => setTimeout(r, delay));
      child.kill('SIGKILL');
      await exited;
      const now = readFileSync(blob);
      // Either the old blob or a complete new one (packing is deterministic: the same bytes).
      expect(now.equals(before)).toBe(true);
      const s = open(blob);
      expect(s.verify()).toEqual([]);
      s.close();
    }
    const r = run(process.execPath, [cli, 'pack', '--allow-failure', 'main.js', '-o', blob], { cwd: appDir, env: cleanEnv() });
    expect(r.status).toBe(0);
    expect(readdirSync(appDir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  }, 60_000);

  it('two packs racing to the same path leave one complete blob', async () => {
    const other = join(dir, 'other');
    cpSync(appDir, other, { recursive: true });
    writeFileSync(join(other, 'lib/fn.js'), readFileSync(join(other, 'lib/fn.js'), 'utf8').replace('a + b', 'a + b + 0'));
    const target = join(dir, 'race.blob');
    const packOne = (cwd: string) =>
      new Promise<number>((resolve) => {
        const c = spawn(process.execPath, [cli, 'pack', '--allow-failure', '--root', cwd, 'main.js', '-o', target], { cwd, env: cleanEnv(), stdio: 'ignore' });
        c.on('exit', (code) => resolve(code ?? -1));
      });
    for (let i = 0; i < 3; i++) {
      const codes = await Promise.all([packOne(appDir), packOne(other)]);
      expect(codes).toEqual([0, 0]);
      const s = open(target);
      expect(s.verify()).toEqual([]);
      const fn = s.source(s.get('lib/fn.js')!);
      expect([readFileSync(join(appDir, 'lib/fn.js'), 'utf8'), readFileSync(join(other, 'lib/fn.js'), 'utf8')]).toContain(fn);
      s.close();
    }
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  }, 120_000);
});

describe('a blob written in place under a running process', () => {
  it('is noticed before its pages are touched: later modules load from disk, no SIGBUS', async () => {
    const app = join(dir, 'inplace');
    cpSync(appDir, app, { recursive: true });
    writeFileSync(join(app, 'first.js'), "exports.v = 'first';\n");
    writeFileSync(join(app, 'second.js'), "exports.v = 'second ' + 'x'.repeat(20000);\n");
    writeFileSync(
      join(app, 'inplace.js'),
      "require('./first.js');\n" +
        "console.log('ready');\n" +
        "process.stdin.once('data', () => {\n" +
        "  const v = require('./second.js').v.slice(0, 6);\n" +
        "  const s = globalThis[Symbol.for('codeblob.loader.status')];\n" +
        "  console.log(JSON.stringify({ v, modified: s.counters.modified, hits: s.counters.hits }));\n" +
        "  process.exit(0);\n" +
        "});\n",
    );
    const target = join(app, 'inplace.blob');
    expect(run(process.execPath, [cli, 'pack', '--include', 'second.js', '--settle-ms', '200', 'inplace.js', '-o', target], { cwd: app, env: cleanEnv() }).status).toBe(0);
    const child = spawn(process.execPath, ['--require', registerPath, 'inplace.js'], { cwd: app, env: cleanEnv({ CODEBLOB_FILE: target }), stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on('exit', (code, signal) => r([code, signal])));
    // Loaded inplace.js and first.js from the blob, and now waits for stdin.
    await new Promise<void>((ready) => child.stdout.on('data', (d) => {
      out += d;
      if (out.startsWith('ready\n')) ready();
    }));
    // What an operator must never do: truncate the mapped file in place.
    writeFileSync(target, readFileSync(target).subarray(0, 4096));
    child.stdin.write('go\n');
    const [code, signal] = await exited;
    expect(signal).toBeNull();
    expect(code).toBe(0);
    const r = JSON.parse(out.slice('ready\n'.length)) as { v: string; modified: number; hits: number };
    expect(r).toMatchObject({ v: 'second', modified: 1 });
    expect(r.hits).toBe(2); // inplace.js and first.js came from the blob before the damage
  });
});

describe('under load', () => {
  it('a 4-worker cluster from the blob answers every request right while the blob is replaced 20 times, then restarts onto it', () => {
    const r = run(process.execPath, [join(repo, 'bench/load-test.mjs'), '--requests', '2000', '--replacements', '20', '--json'], { env: cleanEnv() });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { requests: number; errors: number; mismatches: number; replacements: number; restarted: number };
    expect(out).toMatchObject({ requests: 2000, errors: 0, mismatches: 0, replacements: 20, restarted: 4 });
  }, 180_000);
});

describe('no leaks', () => {
  it('opening and closing a store 10,000 times leaks no descriptors, mappings or memory', () => {
    const r = run(process.execPath, ['--expose-gc', '--input-type=module', '-e', `
      import { readdirSync, readFileSync } from 'node:fs';
      const { open } = await import(${JSON.stringify(join(repo, 'dist/index.js'))});
      const { native } = await import(${JSON.stringify(join(repo, 'dist/native/binding.js'))});
      const fds = () => readdirSync('/proc/self/fd').length;
      const maps = () => readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.endsWith(${JSON.stringify(blob)})).length;
      const cycle = (n) => { for (let i = 0; i < n; i++) { const s = open(${JSON.stringify(blob)}); s.source(s.get('lib/fn.js')); s.close(); } };
      // The strings handed out keep their mapping until collected and finalized: collect until
      // nothing is mapped (at most 200 rounds; a leak stays mapped and fails below).
      const collected = async () => { for (let i = 0; i < 200 && native().liveMappings() > 0; i++) { gc(); await new Promise((r) => setImmediate(r)); } };
      cycle(200); await collected();
      const before = { fds: fds(), maps: maps(), live: native().liveMappings(), rss: process.memoryUsage().rss };
      cycle(10000); await collected();
      const after = { fds: fds(), maps: maps(), live: native().liveMappings(), rss: process.memoryUsage().rss };
      console.log(JSON.stringify({ before, after }));
    `], { env: cleanEnv() });
    expect(r.status, r.stderr).toBe(0);
    const { before, after } = JSON.parse(r.stdout) as Record<'before' | 'after', { fds: number; maps: number; live: number; rss: number }>;
    expect(after.fds).toBe(before.fds);
    expect(after.maps).toBe(0);
    expect(after.live).toBe(0);
    expect(after.rss - before.rss).toBeLessThan(16 * 1024 * 1024);
  }, 120_000);
});

describe('verify and inspect never write', () => {
  it('leave the blob byte-identical, with the same mtime', () => {
    const bytes = readFileSync(blob);
    const { mtimeMs } = statSync(blob);
    expect(run(process.execPath, [cli, 'verify', blob], { env: cleanEnv() }).status).toBe(0);
    expect(run(process.execPath, [cli, 'inspect', blob, '--entries'], { env: cleanEnv() }).status).toBe(0);
    expect(readFileSync(blob).equals(bytes)).toBe(true);
    expect(statSync(blob).mtimeMs).toBe(mtimeMs);
  });
});


describe('hostile msgpack in the index', () => {
  // Each index below is sealed with a correct hash (as an attacker who can write the file
  // would), under the current format version: the decoder itself must refuse it with a typed
  // error, in bounded memory.
  const craft = (index: Buffer) => {
    const size = HEADER_SIZE + index.length;
    const header = encodeHeader({
      formatVersion: FORMAT_VERSION, pageSize: 4096, alignment: 8, flags: 0, v8Tag: 0, entryCount: 1, fileSize: size,
      indexOffset: HEADER_SIZE, indexLength: index.length, indexHash: sha256(index),
      nodeVersion: process.version, arch: process.arch, platform: process.platform, toolVersion: '0',
    });
    const file = join(dir, `hostile-${Math.random().toString(36).slice(2)}.blob`);
    writeFileSync(file, Buffer.concat([header, index]));
    return file;
  };
  const bin = (n: number) => Buffer.concat([Buffer.from([0xc4, n]), Buffer.alloc(n)]);
  // An index of one entry: [tag, root "", count 1, keys, numbers (48 bytes), small (8), hashes (48), nil].
  const tag = Buffer.from([0xb0, ...Buffer.from(INDEX_TAG)]);
  const head = Buffer.concat([Buffer.from([0x98]), tag, Buffer.from([0xa0, 0x01])]);
  const sound = (keys: Buffer) => Buffer.concat([head, keys, bin(48), bin(8), bin(48), Buffer.from([0xc0])]);
  const map = Buffer.from([0x82, 0xa9, ...Buffer.from('__proto__'), 0x81, 0xa1, 0x78, 0x01, 0x01, 0x02]);
  const cases: Record<string, [Buffer, RegExp]> = {
    'an array header claiming 4 billion entries': [Buffer.concat([head, Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xf0, 0x90])]), /not valid msgpack/],
    'a string header claiming 4 GiB': [Buffer.concat([head, Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xf0, 0x41])]), /not valid msgpack/],
    'a binary header claiming 4 GiB': [Buffer.concat([head, Buffer.from([0xa1, 0x61, 0xc6, 0xff, 0xff, 0xff, 0xf0, 0x00])]), /not valid msgpack/],
    'nesting 200,000 deep': [Buffer.concat([head, Buffer.alloc(200_000, 0x91), Buffer.from([0xc0]), bin(48), bin(8), bin(48), Buffer.from([0xc0])]), /not valid msgpack/],
    'a map with __proto__ and non-string keys': [Buffer.concat([head, map, bin(48), bin(8), bin(48), Buffer.from([0xc0])]), /index keys are not a string/],
    'a map with __proto__ for a column': [Buffer.concat([head, Buffer.from([0xa1, 0x61]), map, bin(8), bin(48), Buffer.from([0xc0])]), /index numbers column/],
    'an extension type': [Buffer.concat([head, Buffer.from([0xd4, 0x72, 0x00]), bin(48), bin(8), bin(48), Buffer.from([0xc0])]), /not valid msgpack/],
    'an index of the previous format (tuples)': [Buffer.concat([Buffer.from([0x93]), tag, Buffer.from([0xa0, 0x91, 0x90])]), /index tag/],
  };
  it('the crafting is sound: the same index with a sound key reaches the section rules', () => {
    let error: unknown;
    try {
      open(craft(sound(Buffer.from([0xa1, 0x61])))).close();
    } catch (e) {
      error = e;
    }
    // Every number zero: a CommonJS source at offset 0, inside the header.
    expect((error as { code?: string })?.code).toBe('ERR_CODEBLOB_BAD_FORMAT');
    expect(String((error as Error)?.message)).toMatch(/source of "a" \[0, \+65\) is out of bounds/);
  });
  for (const [name, [index, rule]] of Object.entries(cases)) {
    it(`refuses ${name} with ERR_CODEBLOB_BAD_FORMAT`, () => {
      const before = process.memoryUsage().rss;
      let error: unknown;
      try {
        open(craft(index)).close();
      } catch (e) {
        error = e;
      }
      expect((error as { code?: string })?.code).toBe('ERR_CODEBLOB_BAD_FORMAT');
      expect(String((error as Error)?.message)).toMatch(rule);
      expect(({} as Record<string, unknown>).x).toBeUndefined(); // nothing polluted Object.prototype
      expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);
    });
  }
});
