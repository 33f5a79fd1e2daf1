/**
 * The container recipe in real containers (podman with runc, no registry): the base image is
 * made from this machine's Node (bench/podman.mjs), the images are built from
 * examples/containers/Containerfile as it is, and the containers run with the environment of
 * examples/containers/k8s/*.yaml. Two containers of one image, each a pool of 4 workers loading
 * the reference corpus, measured from the host: the blob is one file on the node, once in the
 * page cache; the workers' PSS against the same pools with plain `require`; each container's
 * workers against the same pool run on the host; answers identical. Then the blob on a read-only
 * volume shared by two different images, the startup probe, and the pinned digest.
 *
 * Skipped, with the reason, where containers cannot run (not root, no podman and no apt-get).
 * The full measurement (more rounds, the memory model) is `node bench/containers.mjs`.
 */
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { baseImage, buildImage, exec, mountImage, podmanProblem, prepareContext, pruneBuildCache, removeContainers, startHostPool, startPool, unmountImage } from '../bench/podman.mjs';
import { measureCgroups, type NodeMemory } from '../src/measure/containers.js';
import { measureTree, type ProcessMemory } from '../src/measure/smaps.js';
import { cleanEnv, cli, referenceCorpus, repo, run } from './helpers/env.js';

const problem = podmanProblem();
const PREFIX = 'codeblob-test-';
const WORKERS = 4;

interface WorkerReport {
  pid: number;
  loadMs: number;
  codeblob: null | { enabled: boolean; reason?: string; backend: string; cachesUsable: boolean; counters: { hits: number; misses: number; stale: number; cacheRejected: number; corrupt: number } };
  answer: unknown;
}
interface Pool {
  id: string;
  name: string;
  ready: { workers: WorkerReport[]; digest: string | null };
  stop(): Promise<void>;
}

/** The first container's env of a manifest, as the test runs it. */
function manifestEnv(file: string, index = 0): Record<string, string> {
  const doc = parseAllDocuments(readFileSync(join(repo, 'examples/containers/k8s', file), 'utf8'))[index]!.toJS();
  return Object.fromEntries(doc.spec.template.spec.containers[0].env.map((e: { name: string; value: string }) => [e.name, e.value]));
}
function manifestProbe(file: string): string[] {
  const doc = parseAllDocuments(readFileSync(join(repo, 'examples/containers/k8s', file), 'utf8'))[0]!.toJS();
  return doc.spec.template.spec.containers[0].startupProbe.exec.command;
}

/** A process's pid inside its own pid namespace (the last NSpid field). */
function nsPid(hostPid: number): number {
  const line = readFileSync(`/proc/${hostPid}/status`, 'utf8').split('\n').find((l) => l.startsWith('NSpid:'))!;
  return Number(line.trim().split(/\s+/).pop());
}

/** The workers (by the pids they reported) among a measured cgroup's processes. */
function workersOf(n: NodeMemory, pool: Pool): ProcessMemory[] {
  const c = n.cgroups.find((x) => x.cgroup.spec === pool.id)!;
  const pids = new Set(pool.ready.workers.map((w) => w.pid));
  return c.memory.processes.filter((p) => pids.has(nsPid(p.pid)));
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const MiB = 1024 * 1024;

describe.skipIf(problem !== undefined)(problem ? `containers (skipped: ${problem})` : 'containers', () => {
  let work: string;
  let image: string;
  let imageNoBlob: string;
  let root: string;
  let digest: string;
  let blobSize: number;
  const running: Pool[] = [];

  const start = async (name: string, env: Record<string, string>, options: { image?: string; volumes?: string[] } = {}) => {
    const pool = (await startPool(options.image ?? image, { name: PREFIX + name, env, volumes: options.volumes })) as Pool;
    running.push(pool);
    return pool;
  };

  beforeAll(() => {
    removeContainers(PREFIX);
    referenceCorpus(); // its packages in the npm cache: the build installs them offline
    work = mkdtempSync(join(tmpdir(), 'codeblob-containers-'));
    const context = prepareContext(join(work, 'context'));
    const base = baseImage(process.execPath);
    image = buildImage(context, { base, target: 'runtime', tag: 'localhost/codeblob-test-app:latest' });
    imageNoBlob = buildImage(context, { base, target: 'app-without-blob', tag: 'localhost/codeblob-test-app-noblob:latest' });
    root = mountImage(image);
    const bytes = readFileSync(join(root, 'blob/app.blob'));
    digest = createHash('sha256').update(bytes).digest('hex');
    blobSize = bytes.length;
  }, 900_000);

  afterEach(async () => {
    await Promise.all(running.splice(0).map((p) => p.stop()));
  });

  afterAll(() => {
    if (image) unmountImage(image);
    if (work) rmSync(work, { recursive: true, force: true });
    pruneBuildCache();
  }, 300_000);

  it('two containers of one image, 4 workers each: one blob file, once in the page cache; workers\' PSS ≤ 0.60× plain; USS no more than on the host; answers identical', async () => {
    // Memory after load and a memory-reducing full GC in every worker (examples/containers/worker.cjs;
    // on Node 20 through V8's inspector), the state an idle worker reaches, as the benchmarks measure it.
    const env = { ...manifestEnv('deployment.yaml'), CODEBLOB_SHA256: digest, GC_AFTER_LOAD: '1' };
    expect(env.WORKERS).toBe(String(WORKERS));

    // Plain require: the same image and pods, without the blob.
    const plain = [await start('plain-a', { ...env, CODEBLOB_FILE: '', CODEBLOB_SHA256: '' }), await start('plain-b', { ...env, CODEBLOB_FILE: '', CODEBLOB_SHA256: '' })];
    const plainMem = measureCgroups(plain.map((p) => p.id));
    const plainWorkers = plain.flatMap((p) => workersOf(plainMem, p));
    expect(plainWorkers).toHaveLength(2 * WORKERS);
    for (const p of plain) await p.stop();

    const pods = [await start('blob-a', env), await start('blob-b', env)];
    const mem = measureCgroups(pods.map((p) => p.id));
    const workers = pods.flatMap((p) => workersOf(mem, p));
    expect(workers).toHaveLength(2 * WORKERS);

    for (const r of pods.flatMap((p) => p.ready.workers)) {
      expect(r.codeblob).toMatchObject({ enabled: true, backend: 'mmap', cachesUsable: true });
      expect(r.codeblob!.counters.hits).toBeGreaterThan(1000);
      expect(r.codeblob!.counters.stale + r.codeblob!.counters.cacheRejected + r.codeblob!.counters.corrupt).toBe(0);
    }
    for (const p of pods) expect(p.ready.digest).toBe(digest);

    // One file on the node behind both containers' /blob/app.blob (the image layer), mapped by
    // all 8 workers, and in the page cache once: at most the file's size for both together.
    expect(mem.blobs).toHaveLength(1);
    const [blob] = mem.blobs;
    expect(blob!.file.via).toBe('overlay-lower');
    expect(blob!.file.size).toBe(blobSize);
    expect(blob!.byCgroup.map((c) => c.processes)).toEqual([WORKERS, WORKERS]);
    expect(blob!.pageCache).toBeGreaterThan(0);
    expect(sum(mem.blobs.map((b) => b.pageCache!))).toBeLessThanOrEqual(1.05 * blobSize);

    // The CLI sees the same from the host: both containers by id, one blob file shared by both.
    const cliRun = run(process.execPath, [cli, 'mem', '--json', ...pods.flatMap((p) => ['--cgroup', p.id.slice(0, 12)])], { env: cleanEnv() });
    expect(cliRun.status, cliRun.stderr).toBe(0);
    const shown = JSON.parse(cliRun.stdout) as NodeMemory;
    expect(shown.cgroups.map((c) => c.memory.processes.length)).toEqual([WORKERS + 1, WORKERS + 1]);
    expect(shown.blobs.map((b) => [b.file.key, b.byCgroup.map((c) => c.processes)])).toEqual([[blob!.file.key, [WORKERS, WORKERS]]]);

    const pss = sum(workers.map((w) => w.pss));
    const plainPss = sum(plainWorkers.map((w) => w.pss));
    console.log(`containers: 8 workers' PSS ${(pss / MiB).toFixed(1)} MiB with codeblob, ${(plainPss / MiB).toFixed(1)} MiB plain (${(pss / plainPss).toFixed(2)}x); blob ${(blobSize / MiB).toFixed(1)} MiB, ${(blob!.pageCache! / MiB).toFixed(1)} MiB in the page cache`);
    expect(pss / plainPss).toBeLessThanOrEqual(0.6);

    // The same pool on the host, from the image's own files: per-worker USS as in the containers.
    for (const p of pods) await p.stop();
    const host = await startHostPool(process.execPath, join(root, 'app'), {
      ...env, CODEBLOB_FILE: join(root, 'blob/app.blob'), CODEBLOB_ROOT: join(root, 'app'), POOL_STATUS_FILE: join(work, 'host-status.json'),
    });
    try {
      // Node 20's code caches name the file they were made at (FORMAT.md, 7.4): from the image's
      // files under another root it serves sources only. Node 22 and later serve both.
      const cachesNameTheirFile = Number(process.versions.node.split('.')[0]) < 22;
      for (const r of host.ready.workers as WorkerReport[]) {
        expect(r.codeblob).toMatchObject({ enabled: true, backend: 'mmap', cachesUsable: !cachesNameTheirFile });
        // From the blob, as in the containers: the image's files under another root still match.
        expect(r.codeblob!.counters.hits).toBeGreaterThan(1000);
        expect(r.codeblob!.counters.stale + r.codeblob!.counters.cacheRejected + r.codeblob!.counters.corrupt, JSON.stringify(r.codeblob!.counters)).toBe(0);
      }
      const tree = measureTree(host.pid);
      const hostPids = new Set((host.ready.workers as WorkerReport[]).map((w) => w.pid));
      const hostUss = median(tree.processes.filter((p) => hostPids.has(p.pid)).map((p) => p.uss));
      const containerUss = median(workers.map((w) => w.uss));
      console.log(`per-worker USS: ${(containerUss / MiB).toFixed(1)} MiB in containers, ${(hostUss / MiB).toFixed(1)} MiB on the host`);
      // A container adds nothing to a worker's private memory.
      expect(containerUss / hostUss).toBeLessThan(1.15);
      // Where the host has the caches too, it is the same process.
      if (!cachesNameTheirFile) expect(containerUss / hostUss).toBeGreaterThan(0.85);
      expect(containerUss / hostUss).toBeLessThan(1.15);
      const answers = [...plain, ...pods].flatMap((p) => p.ready.workers.map((w) => w.answer)).concat((host.ready.workers as WorkerReport[]).map((w) => w.answer));
      expect(answers).toHaveLength(5 * WORKERS); // plain, codeblob (two containers each), host
      for (const a of answers) expect(a).toEqual(plain[0]!.ready.workers[0]!.answer);
    } finally {
      await host.stop();
    }
  }, 600_000);

  it('the blob on a read-only volume shared by two different images: one file, its PSS split between the containers, nothing stale', async () => {
    const shared = join(work, 'shared');
    const dir = mkdtempSync(shared);
    chmodSync(dir, 0o755);
    copyFileSync(join(root, 'blob/app.blob'), join(dir, 'app.blob'));
    chmodSync(join(dir, 'app.blob'), 0o644);
    // Keep the blob's pages mapped in every worker, so that PSS shows how they are split.
    const env = { ...manifestEnv('shared-blob.yaml'), CODEBLOB_SHA256: digest, CODEBLOB_KEEP_PAGES: '1', GC_AFTER_LOAD: '1' };
    const volumes = [`${dir}:/blob:ro`];
    const pods = [await start('volume-a', env, { image, volumes }), await start('volume-b', env, { image: imageNoBlob, volumes })];
    for (const r of pods.flatMap((p) => p.ready.workers)) {
      expect(r.codeblob).toMatchObject({ enabled: true, backend: 'mmap' });
      expect(r.codeblob!.counters.hits).toBeGreaterThan(1000);
      expect(r.codeblob!.counters.stale + r.codeblob!.counters.cacheRejected).toBe(0);
    }
    const mem = measureCgroups(pods.map((p) => p.id));
    expect(mem.blobs).toHaveLength(1);
    const [blob] = mem.blobs;
    expect(blob!.file.via).toBe('mount');
    expect(blob!.byCgroup.map((c) => c.processes)).toEqual([WORKERS, WORKERS]);
    expect(blob!.pageCache!).toBeLessThanOrEqual(1.05 * blobSize);
    // Every worker has the blob resident; PSS divides each page among its mappers.
    for (const w of pods.flatMap((p) => workersOf(mem, p))) expect(w.blobs[0]!.rss).toBeGreaterThan(0);
    expect(blob!.rss).toBeGreaterThan(4 * blob!.pss);
    expect(blob!.pss).toBeLessThanOrEqual(1.05 * blobSize);
    const share = blob!.byCgroup[0]!.pss / blob!.pss;
    console.log(`shared volume: blob PSS ${(blob!.pss / MiB).toFixed(1)} MiB over 8 workers (RSS summed ${(blob!.rss / MiB).toFixed(1)} MiB), first container's share ${share.toFixed(2)}`);
    expect(share).toBeGreaterThan(0.35);
    expect(share).toBeLessThan(0.65);
    for (const a of pods.flatMap((p) => p.ready.workers.map((w) => w.answer))) expect(a).toEqual(pods[0]!.ready.workers[0]!.answer);
  }, 300_000);

  it('the startup probe of the manifest passes when every worker loads from the blob, and fails when codeblob is off although asked for', async () => {
    const probe = manifestProbe('deployment.yaml');
    const env = { ...manifestEnv('deployment.yaml'), CODEBLOB_SHA256: digest, WORKERS: '1' };
    const on = await start('probe-on', env);
    expect(exec(on.name, probe)).toMatchObject({ status: 0 });
    // Not a blob: every worker runs, from disk, with codeblob off.
    const off = await start('probe-off', { ...env, CODEBLOB_FILE: '/app/app.cjs', CODEBLOB_SHA256: '' });
    expect(off.ready.workers[0]!.codeblob).toMatchObject({ enabled: false });
    const r = exec(off.name, probe);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/codeblob is off/);
  }, 300_000);

  it('a pod whose blob is not the generation its spec pins refuses to start', async () => {
    const env = manifestEnv('deployment.yaml'); // the placeholder digest, as shipped
    await expect(start('pinned', env)).rejects.toThrow(new RegExp(`refused to start: blob /blob/app.blob has SHA-256 ${digest}, the pod spec pins 0{64}`));
  }, 120_000);
});
