/**
 * The published package, end to end: `npm pack` (which runs `prepare` and `prepack`, so
 * `npm run prebuilds` cross-compiles the four prebuilt addons into prebuilds/), then a fresh
 * project installs the tarball with default npm settings and with no compiler on PATH, and uses
 * the CLI and the library from it. The installed copy has no build/ directory, so the mmap
 * backend proves node-gyp-build found the prebuild.
 *
 * `npm pack` runs in a copy of the working tree, not in the repository itself: packing rebuilds
 * build/ and writes prebuilds/, which must not change under the test files that vitest runs in
 * parallel with this one. node_modules is a symlink to the repository's, so the copy builds
 * offline with the same tools. The cross compilers come from Debian's packages (installed by the
 * test setup as root); where they cannot be had, the pack builds the linux-x64 glibc addon alone
 * and the test of the other three skips, saying why.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cleanEnv } from '../bench/lib.mjs';
import { TARGETS } from '../scripts/prebuild/targets.mjs';
import { prebuilds } from './helpers/platforms.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const { version } = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string };

/** What a pack must not see, besides what "files" leaves out anyway: outputs and local state. */
const NOT_COPIED = new Set(['.git', 'node_modules', 'build', 'dist', 'prebuilds', 'coverage', '.bench-out']);

// The children get cleanEnv(): without npm's lifecycle variables (this test usually runs under
// `npm test`, and they would make the nested npm runs behave like lifecycle scripts of this
// repository), and without CODEBLOB_BACKEND, which would change the backend under test.
function run(cmd: string, args: string[], cwd: string, extraEnv: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(cmd, args, { cwd, env: cleanEnv(extraEnv), encoding: 'utf8', timeout: 300_000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) {
    const out = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim().split('\n').slice(-30).join('\n');
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed: status ${r.status}, signal ${r.signal}, error ${r.error?.message}\n${out}`);
  }
  return r.stdout;
}

let work: string;
let tarball: string;
let files: string[];
let app: string;
/** The only directory on PATH while the tarball installs: node, npm and npx, no compiler. */
let bin: string;

// The cross compilers (installed here when missing, as root), or why the pack builds x64 glibc alone.
const crossSkip = prebuilds().skip;

beforeAll(() => {
  work = realpathSync(mkdtempSync(join(tmpdir(), 'codeblob-package-')));

  const source = join(work, 'source');
  mkdirSync(source);
  for (const name of readdirSync(repo)) {
    if (NOT_COPIED.has(name) || name.endsWith('.tgz')) continue;
    cpSync(join(repo, name), join(source, name), { recursive: true });
  }
  symlinkSync(join(repo, 'node_modules'), join(source, 'node_modules'));

  const packed = join(work, 'packed');
  mkdirSync(packed);
  // node-gyp may keep files in os.tmpdir(); give it one that afterAll removes.
  const tmp = join(work, 'tmp');
  mkdirSync(tmp);
  run('npm', ['pack', '--pack-destination', packed], source, { TMPDIR: tmp, ...(crossSkip && { CODEBLOB_PREBUILD_TARGETS: 'linux-x64-glibc' }) });
  const tgz = readdirSync(packed).filter((f) => f.endsWith('.tgz'));
  expect(tgz).toEqual([`codeblob-${version}.tgz`]);
  tarball = join(packed, tgz[0]!);
  files = run('tar', ['-tzf', tarball], work).trim().split('\n');

  app = join(work, 'app');
  mkdirSync(app);
  run('npm', ['init', '-y'], app);
  bin = join(work, 'bin');
  mkdirSync(bin);
  for (const tool of ['node', 'npm', 'npx']) {
    const found = run('/bin/sh', ['-c', `command -v ${tool}`], work).trim();
    symlinkSync(realpathSync(found), join(bin, tool));
  }
  run('npm', ['install', tarball], app, { PATH: bin });
}, 600_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

it('the tarball has dist/ and the linux-x64 glibc prebuild, and no build/ directory', () => {
  expect(files).toContain('package/package.json');
  expect(files).toContain('package/dist/index.js');
  expect(files).toContain('package/dist/cli/main.js');
  expect(files).toContain('package/dist/pack/trace.js');
  expect(files).toContain('package/prebuilds/linux-x64/codeblob.glibc.node');
  expect(files.filter((f) => f.startsWith('package/build/'))).toEqual([]);
  // No build script or compat header in the package: it installs built.
  expect(files.filter((f) => f.startsWith('package/scripts/'))).toEqual([]);
});

it.skipIf(crossSkip)(`the tarball has the four prebuilds, linux-x64 and linux-arm64 for glibc and musl, and no other${crossSkip ? ` (skipped: ${crossSkip})` : ''}`, () => {
  expect(files.filter((f) => f.startsWith('package/prebuilds/')).sort()).toEqual(TARGETS.map((t) => `package/${t.file}`).sort());
});

it('the tarball installed with no compiler on PATH (npm, node and npx only)', () => {
  expect(run('/bin/sh', ['-c', 'for t in cc gcc g++ c++ clang make python3 node-gyp; do command -v $t || true; done'], work, { PATH: bin }).trim()).toBe('');
  expect(readdirSync(join(app, 'node_modules', 'codeblob', 'prebuilds'))).toContain('linux-x64');
});

it('`npx codeblob --version` in the installing project prints the package version', () => {
  expect(run('npx', ['codeblob', '--version'], app).trim()).toBe(version);
});

it('the installed package opens a blob with the mmap backend, using the prebuild', () => {
  const installed = join(app, 'node_modules', 'codeblob');
  expect(readdirSync(installed)).not.toContain('build');

  mkdirSync(join(app, 'src'));
  writeFileSync(join(app, 'src', 'greet.cjs'), "module.exports = (name) => `hello, ${name}`;\n");
  writeFileSync(join(app, 'src', 'main.cjs'), "const greet = require('./greet.cjs');\nconsole.log(greet('blob'));\n");
  run('npx', ['codeblob', 'pack', 'src/main.cjs', '-o', 'app.blob'], app);

  writeFileSync(
    join(app, 'check.mjs'),
    `import { readFileSync } from 'node:fs';
import { open } from 'codeblob';
const store = open('app.blob');
const greet = store.get('greet.cjs');
const addon = readFileSync('/proc/self/maps', 'utf8').split('\\n')
  .map((line) => line.split(/\\s+/).pop()).filter((file) => /\\/codeblob[^/]*\\.node$/.test(file));
console.log(JSON.stringify({
  backend: store.backend,
  fallbackReason: store.stats().fallbackReason ?? null,
  keys: store.entries().map((e) => e.key),
  greet: greet && store.source(greet),
  cachesUsable: store.cachesUsable,
  addon: [...new Set(addon)],
}));
store.close();
`,
  );
  const report = JSON.parse(run(process.execPath, ['check.mjs'], app)) as Record<string, unknown>;
  expect(report).toEqual({
    backend: 'mmap',
    fallbackReason: null,
    keys: ['greet.cjs', 'main.cjs'],
    greet: "module.exports = (name) => `hello, ${name}`;\n",
    cachesUsable: true,
    addon: [join(app, 'node_modules/codeblob/prebuilds/linux-x64/codeblob.glibc.node')],
  });
});

it('`--require codeblob/register` and `--import codeblob/register` (a three-line ES module requiring it) both load the app from the CommonJS bundle', () => {
  // The blob and app of the previous test.
  // Read at exit: --require preloads run before --import ones.
  const status = "process.on('exit', () => { const s = globalThis[Symbol.for('codeblob.loader.status')]; console.log(JSON.stringify({ enabled: s.enabled, backend: s.backend, hits: s.counters.hits, resolve: s.resolve })); });";
  writeFileSync(join(app, 'status.cjs'), status);
  const env = { CODEBLOB_FILE: 'app.blob' };
  for (const [flag, file] of [['--require', 'register.cjs'], ['--import', 'register.mjs']] as const) {
    const out = run(process.execPath, [flag, 'codeblob/register', '--require', './status.cjs', 'src/main.cjs'], app, env).trim().split('\n');
    expect(out[0]).toBe('hello, blob');
    expect(JSON.parse(out[1]!)).toEqual({ enabled: true, backend: 'mmap', hits: 2, resolve: 'blob' });
    // Which file each flag loads: the one the package's exports name for it.
    const which = run(process.execPath, ['--input-type=module', '-e', `import { createRequire } from 'node:module'; console.log(${flag === '--require' ? "createRequire(process.cwd() + '/').resolve('codeblob/register')" : "import.meta.resolve('codeblob/register')"})`], app);
    expect(which.trim().endsWith(`/node_modules/codeblob/dist/loader/${file}`)).toBe(true);
  }
});
