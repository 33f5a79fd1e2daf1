// Shared by the benchmark scripts: the reference corpus, packing, child samples, statistics.
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, release, type as osType } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const outDir = join(repo, '.bench-out');
export const cli = join(repo, 'dist/cli/main.js');
export const registerPath = join(repo, 'dist/loader/register.js');
export const childLoad = join(repo, 'bench/child-load.cjs');

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

/** Starts one sample process; resolves with {child, report} once it printed its line. */
export function startSample(node, args, env) {
  const child = spawn(node, [...args, childLoad], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  return new Promise((done, fail) => {
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl !== -1) done({ child, report: JSON.parse(out.slice(0, nl)) });
    });
    child.on('exit', (code) => fail(new Error(`sample exited with ${code} before reporting:\n${err.slice(-2000)}`)));
  });
}

export function stop(child) {
  return new Promise((done) => {
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

export function printHeader(h, backend) {
  console.log(`# ${h.date}  ${h.cpu} x${h.cores}, ${h.memoryGiB} GiB, ${h.os}`);
  console.log(`# Node ${h.node}, V8 ${h.v8}, cachedDataVersionTag ${h.tag}, codeblob backend ${backend}`);
}

/**
 * Installs a corpus pinned under corpus/<name> (package.json, lockfile, entry.js) into
 * .bench-out/<name>-corpus, once per lockfile.
 */
export function installCorpus(name) {
  const src = join(repo, 'corpus', name);
  const dir = join(outDir, `${name}-corpus`);
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
