/** File-system helpers for the staleness tests (issue 19): touching a tree, the staleness line. */
import { execFileSync } from 'node:child_process';
import { lstatSync, readdirSync, utimesSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Sets the mtime (and atime) of every file and folder under `dir`, `dir` included, to `when`,
 * as a copy that does not keep times leaves them: content unchanged. Symlinks are left alone
 * (their targets are touched where they lie inside `dir`). Returns how many were touched.
 */
export function touchTree(dir: string, when = new Date('2021-03-04T05:06:07.891Z')): number {
  let n = 0;
  const walk = (p: string) => {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return;
    if (st.isDirectory()) for (const name of readdirSync(p)) walk(join(p, name));
    utimesSync(p, when, when);
    n++;
  };
  walk(dir);
  return n;
}

/** The one line codeblob prints on stderr when a large share of the blob is stale (staleness.ts). */
export const STALENESS_LINE = /^codeblob: \d+ of the \d+ modules packed in .*$/gm;

/** stderr without the staleness line(s), for comparing a run from the blob with a plain run. */
export function withoutStalenessLine(stderr: string): string {
  return stderr.replace(new RegExp(`${STALENESS_LINE.source}\\n`, 'gm'), '');
}

/** Sets a file's mtime to the nanosecond, as `touch -d` does (utimes takes milliseconds only here). */
export function setMtimeNs(path: string, mtimeNs: bigint): void {
  const sec = mtimeNs / 1_000_000_000n;
  const nsec = (mtimeNs % 1_000_000_000n).toString().padStart(9, '0');
  execFileSync('touch', ['-m', '-d', `@${sec}.${nsec}`, path]);
}
