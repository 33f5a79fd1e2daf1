/**
 * `codeblob mem --cgroup` without containers: a cgroup made for the test (a child of this
 * process's own memory cgroup) holds one process that maps a blob. The cgroup is found by path,
 * by `pid:<n>` and by a container-style id; its processes, what it is charged, and the blob (the
 * file on this machine, its page cache) come out of measureCgroups and the CLI alike. Skipped,
 * with the reason, where this process may not create cgroups (not root, a read-only cgroupfs).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cgroupOfPid, cgroupPids, findCgroup } from '../src/measure/cgroup.js';
import { measureCgroups } from '../src/measure/containers.js';
import { cleanEnv, cli, repo, run } from './helpers/env.js';

/** A child cgroup of ours, or why there cannot be one here. */
function makeCgroup(): { dir: string } | { problem: string } {
  if (process.getuid?.() !== 0) return { problem: 'creating a cgroup needs root' };
  try {
    const mine = cgroupOfPid(process.pid);
    const dir = join(mine.dir, `codeblob-test-${process.pid}`);
    mkdirSync(dir);
    return { dir };
  } catch (error) {
    return { problem: `cannot create a cgroup here: ${(error as Error).message}` };
  }
}
const made = makeCgroup();
const problem = 'problem' in made ? made.problem : undefined;
const ID = 'c0ffee15'.padEnd(64, 'ab');

describe.skipIf(problem !== undefined)(problem ? `mem --cgroup (skipped: ${problem})` : 'mem --cgroup', () => {
  const dir = 'dir' in made ? made.dir : '';
  const container = join(dir, `libpod-${ID}`);
  let work: string;
  let blob: string;
  let child: ChildProcess;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'codeblob-mem-cgroup-'));
    writeFileSync(join(work, 'app.cjs'), "module.exports = require('./lib.cjs') + 1;\n");
    writeFileSync(join(work, 'lib.cjs'), `module.exports = ${JSON.stringify('x'.repeat(200_000))}.length;\n`);
    blob = join(work, 'app.blob');
    const r = run(process.execPath, [cli, 'pack', 'app.cjs', '-o', blob], { cwd: work, env: cleanEnv() });
    expect(r.status, r.stderr).toBe(0);
    mkdirSync(container);
    // One process that maps the blob, touches every page and keeps them (like a worker with
    // CODEBLOB_KEEP_PAGES=1), moved into the test's container cgroup before it starts mapping.
    child = spawn(process.execPath, ['--input-type=module', '-e', `
      import { open } from ${JSON.stringify(join(repo, 'dist/index.js'))};
      process.stdin.once('data', () => {
        const store = open(${JSON.stringify(blob)});
        for (const e of store.entries()) store.sourceView(e);
        globalThis.keep = store;
        process.stdout.write('mapped\\n');
      });
      process.stdin.on('end', () => process.exit(0));
    `], { stdio: ['pipe', 'pipe', 'inherit'] });
    writeFileSync(join(container, 'cgroup.procs'), String(child.pid));
    await new Promise<void>((resolve) => {
      child.stdout!.once('data', () => resolve());
      child.stdin!.write('go\n');
    });
  }, 120_000);

  afterAll(async () => {
    if (child && child.exitCode === null) {
      await new Promise((r) => {
        child.once('exit', r);
        child.stdin!.end();
      });
    }
    for (const d of [container, dir]) {
      try {
        rmdirSync(d);
      } catch {
        // Already gone.
      }
    }
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('finds the cgroup by path, by pid:<n> and by container id, and lists exactly its process', () => {
    const byPath = findCgroup(container);
    expect(cgroupPids(byPath)).toEqual([child.pid]);
    const inside = byPath.name;
    expect(findCgroup(inside).dir).toBe(container);
    expect(cgroupOfPid(child.pid!).dir).toBe(container);
    expect(findCgroup(ID.slice(0, 12)).dir).toBe(container);
    // The parent holds the child cgroup: a pod and its containers.
    expect(cgroupPids(findCgroup(dir))).toEqual([child.pid]);
    expect(() => findCgroup('0123456789abcdef0123')).toThrow(/no cgroup for container/);
    expect(() => findCgroup('not-an-id')).toThrow(/container id/);
  });

  it('measures its process, its charge, and the blob as one file with its page cache', () => {
    const n = measureCgroups([ID.slice(0, 12), `pid:${child.pid}`]);
    expect(n.cgroups.map((c) => c.cgroup.dir)).toEqual([container, container]);
    const [c] = n.cgroups;
    expect(c!.memory.processes.map((p) => p.pid)).toEqual([child.pid]);
    expect(c!.accounting.usage).toBeGreaterThan(0);
    expect(c!.accounting.workingSet).toBeLessThanOrEqual(c!.accounting.usage);
    expect(n.blobs).toHaveLength(1);
    const [b] = n.blobs;
    const st = statSync(blob);
    expect(b!.file).toMatchObject({ key: `${st.dev}:${st.ino}`, via: 'mount', size: st.size });
    expect(b!.paths).toEqual([blob]);
    expect(b!.pageCache).toBeGreaterThan(0);
    expect(b!.pageCache).toBeLessThanOrEqual(st.size);
    // Every page mapped by this one process: resident, private to it, in both cgroups given.
    expect(b!.byCgroup.map((x) => x.processes)).toEqual([1, 1]);
    expect(b!.rss).toBeGreaterThan(0);
  });

  it('the CLI prints the same, as a table and as JSON', () => {
    const json = run(process.execPath, [cli, 'mem', '--cgroup', container, '--json'], { env: cleanEnv() });
    expect(json.status, json.stderr).toBe(0);
    const n = JSON.parse(json.stdout);
    expect(n.cgroups[0].memory.processes.map((p: { pid: number }) => p.pid)).toEqual([child.pid]);
    expect(n.blobs[0].file.size).toBe(statSync(blob).size);
    const text = run(process.execPath, [cli, 'mem', '--cgroup', `pid:${child.pid}`], { env: cleanEnv() });
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/working set .* \(what the kubelet reports\)/);
    expect(text.stdout).toMatch(new RegExp(`blob ${blob} = .* in the page cache, once for the node; mapped by 1 process`));
    const usage = run(process.execPath, [cli, 'mem', '--cgroup', container, String(child.pid)], { env: cleanEnv() });
    expect(usage.status).toBe(2);
  });
});
