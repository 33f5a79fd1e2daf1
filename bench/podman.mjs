// Real containers for the container test and benchmark (podman with runc; no registry needed):
// podman itself (installed with apt where missing), a base image made from this machine's Node
// binary and the libraries it links, the recipe's build context (examples/containers) with this
// working tree's codeblob, image builds, and worker pools run in containers.
//
// Why these flags: crun fails on hybrid (v1 + v2) cgroup hosts and runc works; the default
// ulimits are refused in some sandboxes; no network is needed, and none is given.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { repo } from './lib.mjs';

export const RUNTIME = ['--runtime', '/usr/sbin/runc', '--cgroup-manager=cgroupfs'];
export const RUN_FLAGS = ['--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1000:1000'];
const example = join(repo, 'examples/containers');

/** Runs podman; returns stdout, throws with the end of stderr. */
export function podman(args, options = {}) {
  const r = spawnSync('podman', [...RUNTIME, ...args], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 600_000, ...options });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`podman ${args.join(' ')} failed (${r.status ?? r.signal}):\n${(r.stderr || r.stdout || '').trim().split('\n').slice(-25).join('\n')}`);
  return r.stdout;
}

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/**
 * Makes podman and runc available (apt-get as root where missing) and checks that a container
 * starts. Returns undefined when containers work, else the reason they cannot run here.
 */
export function podmanProblem() {
  if (process.platform !== 'linux') return `containers need Linux (this is ${process.platform})`;
  if (!has('podman') || !existsSync('/usr/sbin/runc')) {
    if (process.getuid?.() !== 0) return 'podman and runc are not installed, and installing them (apt-get) needs root';
    if (!has('apt-get')) return 'podman and runc are not installed, and there is no apt-get to install them';
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    for (const args of [['update', '-qq'], ['install', '-y', '-qq', 'podman', 'runc']]) {
      const r = spawnSync('apt-get', args, { env, encoding: 'utf8', timeout: 600_000 });
      if (r.status !== 0) return `apt-get ${args.join(' ')} failed: ${(r.stderr || '').trim().split('\n').pop()}`;
    }
  }
  if (process.getuid?.() !== 0) return 'the container test runs podman as root (it reads other processes\' memory maps and the page cache of image layers)';
  const info = spawnSync('podman', [...RUNTIME, 'info'], { encoding: 'utf8', timeout: 120_000 });
  if (info.status !== 0) return `podman cannot run here: ${(info.stderr || info.error?.message || '').trim().split('\n').pop()}`;
  return undefined;
}

/** Copies a binary and every library `ldd` lists for it into `root`, at the same paths. */
function copyWithLibraries(root, binary, target = binary) {
  mkdirSync(join(root, dirname(target)), { recursive: true });
  copyFileSync(binary, join(root, target));
  chmodSync(join(root, target), 0o755);
  const libs = execFileSync('ldd', [binary], { encoding: 'utf8' }).match(/\/\S+/g) ?? [];
  for (const lib of libs) {
    const at = join(root, lib);
    if (existsSync(at)) continue;
    mkdirSync(dirname(at), { recursive: true });
    copyFileSync(realpathSync(lib), at);
  }
}

/**
 * A base image made from this machine's files, like a slim Node image: `node` (the given
 * binary), npm and npx, a shell and the few tools the recipe's RUN lines use, the libraries they
 * link, /tmp and a passwd file. Built once per Node binary and npm (tag from their hashes), then
 * reused. Returns its name.
 */
export function baseImage(nodeBin) {
  const version = execFileSync(nodeBin, ['-p', 'process.version'], { encoding: 'utf8' }).trim();
  const npmDir = realpathSync(join(dirname(realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim())), '..'));
  const npmVersion = JSON.parse(readFileSync(join(npmDir, 'package.json'), 'utf8')).version;
  const id = createHash('sha256').update(readFileSync(nodeBin)).update(npmVersion).update(readFileSync(new URL(import.meta.url))).digest('hex').slice(0, 12);
  const name = `localhost/codeblob-node:${version.slice(1)}-${id}`;
  if (spawnSync('podman', [...RUNTIME, 'image', 'exists', name]).status === 0) return name;
  const work = mkdtempSync(join(tmpdir(), 'codeblob-rootfs-'));
  try {
    const root = join(work, 'root');
    copyWithLibraries(root, nodeBin, '/usr/local/bin/node');
    for (const tool of ['/bin/sh', '/usr/bin/env', '/bin/mkdir', '/bin/cat', '/bin/ls', '/usr/bin/sha256sum']) copyWithLibraries(root, realpathSync(tool), tool);
    cpSync(npmDir, join(root, 'usr/local/lib/node_modules/npm'), { recursive: true });
    symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(root, 'usr/local/bin/npm'));
    symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(root, 'usr/local/bin/npx'));
    for (const d of ['tmp', 'root', 'etc']) mkdirSync(join(root, d), { recursive: true });
    chmodSync(join(root, 'tmp'), 0o1777);
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000:node:/home/node:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnode:x:1000:\nnogroup:x:65534:\n');
    const tar = join(work, 'rootfs.tar');
    execFileSync('tar', ['-C', root, '--numeric-owner', '--owner=0', '--group=0', '-cf', tar, '.']);
    podman(['import', '--change', 'ENV PATH=/usr/local/bin:/usr/bin:/bin', '--change', 'ENV HOME=/root', '--change', 'CMD ["node"]', tar, name]);
    // Base images of the same Node made before (another npm, or another recipe) are not used again.
    const older = podman(['images', '--format', '{{.Repository}}:{{.Tag}}', 'localhost/codeblob-node']).split('\n').filter((n) => n.startsWith(`localhost/codeblob-node:${version.slice(1)}-`) && n !== name);
    if (older.length) spawnSync('podman', [...RUNTIME, 'rmi', ...older], { stdio: 'ignore' });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return name;
}

/**
 * This working tree's codeblob as the npm registry would serve it (package.json, dist/, and the
 * addon built here in build/Release, where node-gyp-build finds it), added to the npm cache, so
 * that `npm ci --offline` in a build installs it by its integrity. Returns { version, integrity }.
 */
function cacheCodeblob(work) {
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
  const dir = join(work, 'package');
  mkdirSync(join(dir, 'build/Release'), { recursive: true });
  const { scripts, devDependencies, overrides, ...published } = pkg;
  writeFileSync(join(dir, 'package.json'), JSON.stringify(published, null, 2));
  cpSync(join(repo, 'dist'), join(dir, 'dist'), { recursive: true });
  copyFileSync(join(repo, 'build/Release/codeblob.node'), join(dir, 'build/Release/codeblob.node'));
  copyFileSync(join(repo, 'FORMAT.md'), join(dir, 'FORMAT.md'));
  const tgz = join(work, `codeblob-${pkg.version}.tgz`);
  execFileSync('tar', ['-C', work, '--numeric-owner', '--owner=0', '--group=0', '-czf', tgz, 'package']);
  const integrity = `sha512-${createHash('sha512').update(readFileSync(tgz)).digest('base64')}`;
  execFileSync('npm', ['cache', 'add', tgz], { stdio: 'ignore', env: npmEnv() });
  return { version: pkg.version, integrity, tgz };
}

/** npm's environment without this process's lifecycle variables (the tests run under npm). */
function npmEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'INIT_CWD' && !k.startsWith('CODEBLOB_') && k !== 'NODE_OPTIONS'));
}

/**
 * The recipe's build context in `dir`: examples/containers as it is, and a lockfile that pins
 * the reference corpus's packages (corpus/reference/package-lock.json) and this working tree's
 * codeblob. Everything the build installs is then in this machine's npm cache, so the build runs
 * with `--network none` and NPM_FLAGS=--offline.
 */
export function prepareContext(dir) {
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(example)) if (f !== 'k8s') cpSync(join(example, f), join(dir, f), { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'codeblob-tgz-'));
  try {
    const cb = cacheCodeblob(work);
    // npm resolves codeblob's own dependencies against the corpus's lockfile.
    const lockDir = join(work, 'lock');
    mkdirSync(lockDir);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    writeFileSync(join(lockDir, 'package.json'), JSON.stringify({ ...pkg, dependencies: { ...pkg.dependencies, codeblob: `file:${cb.tgz}` } }, null, 2));
    copyFileSync(join(repo, 'corpus/reference/package-lock.json'), join(lockDir, 'package-lock.json'));
    execFileSync('npm', ['install', '--package-lock-only', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: lockDir, stdio: ['ignore', 'ignore', 'pipe'], env: npmEnv() });
    const lock = JSON.parse(readFileSync(join(lockDir, 'package-lock.json'), 'utf8'));
    lock.name = pkg.name;
    lock.packages[''] = { ...lock.packages[''], name: pkg.name, version: pkg.version, dependencies: pkg.dependencies };
    // As if codeblob came from the registry: npm ci --offline finds the tarball by its integrity.
    lock.packages['node_modules/codeblob'] = { ...lock.packages['node_modules/codeblob'], version: cb.version, resolved: `https://registry.npmjs.org/codeblob/-/codeblob-${cb.version}.tgz`, integrity: cb.integrity };
    writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(lock, null, 2) + '\n');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return dir;
}

/** Builds one target of the recipe's Containerfile in `context`; returns the image name. */
export function buildImage(context, { base, target, tag, nodeOptions = '', extra = [] }) {
  const cache = execFileSync('npm', ['config', 'get', 'cache'], { encoding: 'utf8', env: npmEnv() }).trim();
  const before = spawnSync('podman', [...RUNTIME, 'image', 'inspect', '-f', '{{.Id}}', tag], { encoding: 'utf8' }).stdout?.trim();
  podman([
    'build', '--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1000:1000',
    '-v', `${cache}:/root/.npm`, '--build-arg', `NODE_IMAGE=${base}`, '--build-arg', 'NPM_FLAGS=--offline',
    '--build-arg', `NODE_OPTIONS=${nodeOptions}`, '--target', target, '-t', tag, '-f', join(context, 'Containerfile'), ...extra, context,
  ]);
  // The image this tag named before, now untagged: remove it (its layers stay while the build
  // cache or another image uses them).
  const after = podman(['image', 'inspect', '-f', '{{.Id}}', tag]).trim();
  if (before && before !== after) spawnSync('podman', [...RUNTIME, 'rmi', before], { stdio: 'ignore' });
  return tag;
}

/** The image's layers (diff IDs, bottom first). */
export function layers(image) {
  return JSON.parse(podman(['image', 'inspect', image]))[0].RootFS.Layers;
}

/** Resolves with the pool's "ready" event once its primary printed it; rejects when it refused to start or exited. */
function whenReady(child, what, stop) {
  let out = '';
  let err = '';
  return new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d) => {
      out += d;
      for (const line of out.split('\n').slice(0, -1)) {
        let event;
        try {
          event = JSON.parse(line);
        } catch {
          continue;
        }
        if (event.event === 'ready') resolve({ ready: event, output: () => out + err });
        if (event.event === 'refused') reject(Object.assign(new Error(`${what} refused to start: ${event.reason}`), { event }));
      }
    });
    // 'close', not 'exit': the last lines of stdout may still be on their way at 'exit'.
    child.on('close', (code) => reject(new Error(`${what} exited with ${code} before its pool was ready:\n${(out + err).slice(-3000)}`)));
  });
}

/**
 * Starts the recipe's pool in a container (attached, so that its stdout reaches this process) and
 * resolves once the primary printed its "ready" line: { id, name, ready, stop() }. Rejects with
 * the container's output when it exits first.
 */
export async function startPool(image, { name, env = {}, volumes = [], readOnly = true, command = [] }) {
  const args = ['run', '--rm', '--name', name, ...RUN_FLAGS, ...(readOnly ? ['--read-only'] : [])];
  for (const [k, v] of Object.entries(env)) args.push('-e', `${k}=${v}`);
  for (const v of volumes) args.push('-v', v);
  args.push(image, ...command);
  const child = spawn('podman', [...RUNTIME, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stop = () => new Promise((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done();
    child.once('exit', () => done());
    spawnSync('podman', [...RUNTIME, 'rm', '-f', '-t', '0', name], { stdio: 'ignore' });
  });
  try {
    const { ready, output } = await whenReady(child, `container ${name}`, stop);
    return { id: podman(['inspect', '-f', '{{.Id}}', name]).trim(), name, ready, stop, output };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * The same pool on the host, outside any container: `node server.cjs` in `appDir` (for example
 * an image's root mounted with mountImage). Resolves like startPool, with the primary's pid.
 */
export async function startHostPool(node, appDir, env) {
  const child = spawn(node, ['server.cjs'], { cwd: appDir, env: { ...npmEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const stop = () => new Promise((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done();
    child.once('exit', () => done());
    child.kill('SIGTERM');
  });
  try {
    const { ready, output } = await whenReady(child, 'the pool on the host', stop);
    return { pid: child.pid, ready, stop, output };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Runs a command in a running container; { status, stdout, stderr }. */
export function exec(name, command) {
  const r = spawnSync('podman', [...RUNTIME, 'exec', name, ...command], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Host path of an image's merged root (podman image mount; undo with unmountImage). */
export function mountImage(image) {
  return podman(['image', 'mount', image]).trim();
}

export function unmountImage(image) {
  spawnSync('podman', [...RUNTIME, 'image', 'unmount', image], { stdio: 'ignore' });
}

/**
 * Removes the untagged images builds leave behind as their cache (the build stage holds a whole
 * node_modules): without this, every build of a changed context adds a few hundred MB. The next
 * build starts from the base image again.
 */
export function pruneBuildCache() {
  spawnSync('podman', [...RUNTIME, 'image', 'prune', '-f'], { stdio: 'ignore', timeout: 300_000 });
}

/** Removes containers left by an earlier, interrupted run (by name prefix). */
export function removeContainers(prefix) {
  const names = podman(['ps', '-a', '--format', '{{.Names}}']).split('\n').filter((n) => n.startsWith(prefix));
  if (names.length) spawnSync('podman', [...RUNTIME, 'rm', '-f', '-t', '0', ...names], { stdio: 'ignore' });
}
