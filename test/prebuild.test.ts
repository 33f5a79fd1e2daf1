/**
 * The prebuilt addons (`npm run prebuilds`, scripts/prebuild): where they land, what each asks
 * of the system that loads it (checked with binutils and with each libc's own dynamic linker,
 * the arm64 ones under qemu-user), the x64 glibc one run in every supported Node, how an
 * installed package picks one, and what it says when none fits. The arm64 one is run in
 * test/arm64-qemu.test.ts. The musl ones are not run: no musl Node can be had here (the npm
 * registry has none, Debian has no Alpine); musl's loader checks them instead.
 *
 * The builds need Debian's cross compilers, installed by the test setup when missing (as root);
 * without them the tests that need them skip, saying why.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareVersions, GLIBC_FLOOR, TARGETS } from '../scripts/prebuild/targets.mjs';
import { withPlatformTable } from '../scripts/prebuild/readme.mjs';
import { cleanEnv, cli, repo, runtimes } from './helpers/env.js';
import { addonCheckResult, arm64Environment, debian11Environment, installCopy, prebuilds, type Arm64, type Debian11, type Prebuilds } from './helpers/platforms.js';

interface Run {
  stdout: string;
  stderr: string;
  status: number | null;
}

function run(argv: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; ok?: boolean } = {}): Run {
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd: options.cwd ?? repo, env: cleanEnv(options.env), encoding: 'utf8', timeout: 180_000, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  if (options.ok !== false && r.status !== 0) throw new Error(`${argv.join(' ')} exited with ${r.status}:\n${r.stdout}\n${r.stderr}`);
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

const built = prebuilds();
const skip = built.skip;
const dir = (built as Prebuilds).prebuilds;
const file = (t: (typeof TARGETS)[number]) => join(dir, t.file.replace(/^prebuilds\//, ''));
const named = (name: string) => TARGETS.find((t) => t.name === name)!;

/** Symbols a dynamic linker could not bind, from glibc's LD_WARN report or musl's ldd mode. */
function unresolved(report: string): string[] {
  const glibc = [...report.matchAll(/undefined symbol: (\S+)/g)].map((m) => m[1]!);
  const musl = [...report.matchAll(/Error relocating [^:]+: ([^:]+): symbol not found/g)].map((m) => m[1]!);
  return [...new Set([...glibc, ...musl])].sort();
}

let work: string;
beforeAll(() => {
  work = realpathSync(mkdtempSync(join(tmpdir(), 'codeblob-prebuild-')));
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(skip)(`the four prebuilds${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it.each(TARGETS.map((t) => [t.name, t] as const))('node-gyp-build picks %s by its platform, arch and libc tags', (_name, target) => {
    const pkg = join(work, 'tags');
    if (!readdirSync(work).includes('tags')) {
      mkdirSync(pkg);
      writeFileSync(join(pkg, 'package.json'), '{"name":"codeblob"}');
      cpSync(dir, join(pkg, 'prebuilds'), { recursive: true });
    }
    // node-gyp-build takes the arch from npm_config_arch and the libc from LIBC when set.
    const picked = run([process.execPath, '-e', `console.log(require(${JSON.stringify(join(repo, 'node_modules/node-gyp-build'))}).resolve(${JSON.stringify(pkg)}))`], {
      env: { npm_config_arch: target.arch, LIBC: target.libc },
    }).stdout.trim();
    expect(picked).toBe(join(pkg, target.file));
  });

  it.each(TARGETS.filter((t) => t.libc === 'glibc').map((t) => [t.name, t] as const))(
    `%s needs no glibc symbol version newer than GLIBC_${GLIBC_FLOOR} (Node 20's floor) and no library but libc`,
    (_name, target) => {
      const dynamic = run(['objdump', '-T', '-p', file(target)]).stdout;
      const versions = [...new Set([...dynamic.matchAll(/\(GLIBC_([0-9.]+)\)/g)].map((m) => m[1]!))];
      expect(versions.length).toBeGreaterThan(0);
      expect(versions.filter((v) => compareVersions(v, GLIBC_FLOOR) > 0)).toEqual([]);
      expect([...dynamic.matchAll(/NEEDED\s+(\S+)/g)].map((m) => m[1])).toEqual(['libc.so.6']);
    },
  );

  it.each(TARGETS.filter((t) => t.libc === 'musl').map((t) => [t.name, t] as const))('%s asks for no symbol versions and no library but libc', (_name, target) => {
    const headers = run(['objdump', '-p', file(target)]).stdout;
    expect([...headers.matchAll(/NEEDED\s+(\S+)/g)].map((m) => m[1])).toEqual(['libc.so']);
    expect(headers).not.toMatch(/Version References/);
  });

  it.each(TARGETS.filter((t) => t.arch === 'arm64').map((t) => [t.name, t] as const))('%s has its segments aligned to 64 KiB, so a 64 KiB-page kernel can map it', (_name, target) => {
    const loads = run(['readelf', '-lW', file(target)])
      .stdout.split('\n')
      .filter((l) => /^\s*LOAD\s/.test(l))
      .map((l) => Number(l.trim().split(/\s+/).at(-1)));
    expect(loads.length).toBeGreaterThan(0);
    for (const align of loads) expect(align).toBeGreaterThanOrEqual(65536);
  });

  // What is left after libc is Node-API, which Node provides: the addon checks below (and the
  // arm64 ones in arm64-qemu.test.ts) load the glibc builds with RTLD_NOW, binding all of it.
  it("the x64 builds link: glibc's and musl's own loaders bind every libc symbol, and what is left is Node-API", () => {
    const both = (r: Run) => r.stdout + r.stderr;
    const glibc = unresolved(both(run(['ldd', '-r', file(named('linux-x64-glibc'))], { ok: false })));
    const musl = unresolved(both(run([named('linux-x64-musl').loader!, '--list', file(named('linux-x64-musl'))], { ok: false })));
    expect(glibc).toContain('node_api_create_external_string_latin1');
    expect(musl).toEqual(glibc);
    expect(glibc.filter((s) => !/^(napi|node_api)_/.test(s))).toEqual([]);
  });

  it.each(runtimes().map((r) => [r.name, r.bin] as const))('the linux-x64 glibc prebuild loads with every symbol bound and works in %s: map, external strings, madvise, mincore, stat, threads, SHA-256 from Node', (_name, bin) => {
    const scratch = mkdtempSync(join(work, 'addon-'));
    const out = run([bin, join(repo, 'test/fixtures/prebuild/addon-check.cjs'), file(named('linux-x64-glibc')), scratch]).stdout;
    expect(JSON.parse(out)).toEqual(addonCheckResult('x64', 4096));
  });
});

describe.skipIf(skip)(`the arm64 builds, checked by the arm64 dynamic linkers under qemu-user${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('glibc and musl bind every libc symbol; what is left is Node-API', (ctx) => {
    const arm = arm64Environment();
    if (arm.skip) return ctx.skip(arm.skip);
    const env = arm as Arm64;
    const glibcReport = run(
      [env.qemu, '-L', env.sysroot, '-E', 'LD_TRACE_LOADED_OBJECTS=1', '-E', 'LD_WARN=1', '-E', 'LD_BIND_NOW=1', join(env.sysroot, 'lib/ld-linux-aarch64.so.1'), file(named('linux-arm64-glibc'))],
      { ok: false },
    );
    const glibc = unresolved(glibcReport.stdout + glibcReport.stderr);
    const muslReport = run([env.qemu, named('linux-arm64-musl').loader!, '--list', file(named('linux-arm64-musl'))], { ok: false });
    const musl = unresolved(muslReport.stdout + muslReport.stderr);
    expect(glibc).toContain('node_api_create_external_string_latin1');
    expect(musl).toEqual(glibc);
    expect(glibc.filter((s) => !/^(napi|node_api)_/.test(s))).toEqual([]);
  });
});

describe.skipIf(skip)(`the glibc builds on Debian 11's glibc 2.31 (older than the 2.36 they were built with)${skip ? ` (skipped: ${skip})` : ''}`, { timeout: 300_000 }, () => {
  // Node 20 run through Debian 11's own ld.so and libraries (libc6, libstdc++6, libgcc-s1 from
  // Debian's bullseye packages); an addon built on Debian 12 without glibc-compat.h fails to
  // load there ("version `GLIBC_2.33' not found").
  const glibcVersion = 'process.report.getReport().header.glibcVersionRuntime';
  function prepared(ctx: { skip: (note?: string) => void }): Debian11 | undefined {
    const env = debian11Environment();
    if (env.skip) {
      ctx.skip(env.skip);
      return undefined;
    }
    return env as Debian11;
  }

  it('linux-x64 glibc, in the system Node 20', (ctx) => {
    const env = prepared(ctx);
    if (!env) return;
    const root = env.debian11.roots.x64;
    const scratch = mkdtempSync(join(work, 'deb11-x64-'));
    const libs = [join(root, 'lib/x86_64-linux-gnu'), join(root, 'usr/lib/x86_64-linux-gnu')].join(':');
    const node = [join(root, 'lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'), '--library-path', libs, process.execPath];
    expect(run([...node, '-p', glibcVersion]).stdout.trim()).toBe(env.debian11.glibc);
    const out = run([...node, join(repo, 'test/fixtures/prebuild/addon-check.cjs'), file(named('linux-x64-glibc')), scratch]).stdout;
    expect(JSON.parse(out)).toEqual(addonCheckResult('x64', 4096));
  });

  it('linux-arm64 glibc, in the arm64 Node 20 under qemu-user, with 64 KiB pages', (ctx) => {
    const env = prepared(ctx);
    if (!env) return;
    const scratch = mkdtempSync(join(work, 'deb11-arm64-'));
    const node = (pageSize: number) => [env.qemu, '-L', env.debian11.roots.arm64, '-p', String(pageSize), '-E', 'LD_LIBRARY_PATH=/lib/aarch64-linux-gnu:/usr/lib/aarch64-linux-gnu', env.node];
    // (process.report crashes under qemu-user with a page size larger than the host's: asked at 4 KiB.)
    expect(run([...node(4096), '-p', glibcVersion]).stdout.trim()).toBe(env.debian11.glibc);
    const out = run([...node(65536), join(repo, 'test/fixtures/prebuild/addon-check.cjs'), file(named('linux-arm64-glibc')), scratch]).stdout;
    expect(JSON.parse(out)).toEqual(addonCheckResult('arm64', 65536));
  });
});

describe.skipIf(skip)(`an installed package${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let blob: string;
  beforeAll(() => {
    const src = join(work, 'src');
    mkdirSync(src);
    writeFileSync(join(src, 'greet.cjs'), 'module.exports = (name) => `hello, ${name}`;\n');
    writeFileSync(join(src, 'main.cjs'), "console.log(require('./greet.cjs')('blob'));\n");
    blob = join(work, 'app.blob');
    run([process.execPath, cli, 'pack', join(src, 'main.cjs'), '-o', blob], { cwd: work });
  });

  /** Runs probe.mjs from inside `app` (from the repository, `codeblob` is the repository itself). */
  function probe(app: string, env: NodeJS.ProcessEnv = {}) {
    cpSync(join(repo, 'test/fixtures/prebuild/probe.mjs'), join(app, 'probe.mjs'));
    return JSON.parse(run([process.execPath, 'probe.mjs', blob], { cwd: app, env }).stdout) as {
      backend: string;
      fallbackReason: string | null;
      addons: string[];
    };
  }

  it('loads the glibc build, also when node-gyp-build is told the libc is musl (as on a musl system that is not Alpine, the other way round)', () => {
    const app = join(work, 'full');
    const pkg = installCopy(app, dir);
    const glibc = join(pkg, 'prebuilds/linux-x64/codeblob.glibc.node');
    expect(probe(app)).toEqual({ backend: 'mmap', fallbackReason: null, addons: [glibc] });
    expect(probe(app, { LIBC: 'musl' })).toEqual({ backend: 'mmap', fallbackReason: null, addons: [glibc] });
  });

  it('a build/ for another machine (node_modules copied across architectures) does not hide the prebuild that fits', () => {
    const app = join(work, 'foreign-build');
    const pkg = installCopy(app, dir);
    mkdirSync(join(pkg, 'build/Release'), { recursive: true });
    cpSync(join(dir, 'linux-arm64/codeblob.glibc.node'), join(pkg, 'build/Release/codeblob.node'));
    expect(probe(app)).toEqual({ backend: 'mmap', fallbackReason: null, addons: [join(pkg, 'prebuilds/linux-x64/codeblob.glibc.node')] });
  });

  it('where no prebuild fits: the read backend, and a reason naming the platform, the libc, the prebuilds there are and the command that builds one', () => {
    const app = join(work, 'arm-only');
    installCopy(app, dir, ['linux-arm64']);
    const r = probe(app);
    expect(r.backend).toBe('read');
    expect(r.addons).toEqual([]);
    expect(r.fallbackReason).toBe(
      "no prebuilt native addon fits linux-x64 with glibc (the package has: linux-arm64 (glibc, musl)); reading blobs into memory instead (backend 'read': nothing is shared between processes). " +
        'To build the addon here (needs python3, make and a C compiler): `cd node_modules/codeblob && npx node-gyp rebuild`',
    );

    // The loader runs the app all the same and says why it reads; asking for mmap is a typed error.
    const statusFile = join(app, 'status.json');
    const out = run([process.execPath, '--require', 'codeblob/register', join(work, 'src/main.cjs')], { cwd: app, env: { CODEBLOB_FILE: blob, CODEBLOB_STATUS_FILE: statusFile } });
    expect(out.stdout).toBe('hello, blob\n');
    const status = JSON.parse(readFileSync(statusFile, 'utf8'));
    expect(status).toMatchObject({ enabled: true, backend: 'read', reason: `read backend: ${r.fallbackReason}` });
    expect(status.counters.hits).toBe(2);
    const mmap = run([process.execPath, '--input-type=module', '-e', `import { open } from 'codeblob'; try { open(${JSON.stringify(blob)}, { backend: 'mmap' }); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`], { cwd: app });
    expect(JSON.parse(mmap.stdout)).toEqual({ code: 'ERR_CODEBLOB_NATIVE_UNAVAILABLE', message: expect.stringContaining('no prebuilt native addon fits linux-x64 with glibc') });
  });

  it('a prebuild that fits by name but does not load is named, with the dynamic linker\'s reason', () => {
    const app = join(work, 'wrong-machine');
    const pkg = installCopy(app, dir, ['linux-arm64']);
    mkdirSync(join(pkg, 'prebuilds/linux-x64'));
    cpSync(join(pkg, 'prebuilds/linux-arm64/codeblob.glibc.node'), join(pkg, 'prebuilds/linux-x64/codeblob.glibc.node'));
    const r = probe(app);
    expect(r.backend).toBe('read');
    expect(r.fallbackReason).toMatch(
      new RegExp(`^the native addon ${join(pkg, 'prebuilds/linux-x64/codeblob.glibc.node').replaceAll('/', '\\/').replaceAll('.', '\\.')} does not load on linux-x64 with glibc \\(.+\\); reading blobs into memory instead`),
    );
  });
});

describe('the build script', () => {
  it('the README platform table is the one scripts/prebuild/targets.mjs makes (`npm run prebuilds -- --readme` writes it)', () => {
    const readme = readFileSync(join(repo, 'README.md'), 'utf8');
    expect(withPlatformTable(readme)).toBe(readme);
    for (const t of TARGETS) expect(readme).toContain(`\`${t.file}\``);
  });

  it('without compilers it fails, naming the Debian packages that bring them', () => {
    const bin = join(work, 'bin-node-only');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    const r = run([process.execPath, join(repo, 'scripts/prebuild.mjs'), '--out', join(work, 'never')], { env: { PATH: bin }, ok: false });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('prebuild: no compiler for linux-x64-glibc, linux-arm64-glibc, linux-x64-musl, linux-arm64-musl, readelf.');
    expect(r.stderr).toContain(
      'dpkg --add-architecture arm64 && apt-get update && apt-get install -y --no-install-recommends gcc gcc-aarch64-linux-gnu musl-tools musl-dev:arm64 binutils',
    );
    expect(readdirSync(work)).not.toContain('never');
  });

  it('refuses a target it does not know', () => {
    const r = run([process.execPath, join(repo, 'scripts/prebuild.mjs'), '--targets', 'linux-x64-glibc,linux-riscv64-glibc'], { ok: false });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe('prebuild: unknown prebuild target linux-riscv64-glibc; known: linux-x64-glibc, linux-arm64-glibc, linux-x64-musl, linux-arm64-musl');
  });
});
