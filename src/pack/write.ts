/**
 * Atomic replacement of a blob: write a temp file in the same directory, fsync it, rename it
 * over the target, fsync the directory. A blob is never modified in place (processes that
 * mapped the old file keep its inode; truncating it would SIGBUS them).
 */
import { closeSync, fsyncSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

const tempPrefix = (target: string) => `.${basename(target)}.tmp-`;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes temp files that earlier packs of `target` left behind (their process is gone). */
export function cleanStaleTemps(target: string): string[] {
  const dir = dirname(target);
  const prefix = tempPrefix(target);
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) continue;
    if (pid === process.pid) continue;
    rmSync(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

export function writeAtomically(target: string, chunks: readonly Uint8Array[]): void {
  const dir = dirname(target);
  const temp = join(dir, `${tempPrefix(target)}${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
  const fd = openSync(temp, 'wx', 0o644);
  try {
    for (const chunk of chunks) {
      for (let done = 0; done < chunk.byteLength; ) done += writeSync(fd, chunk, done);
    }
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    rmSync(temp, { force: true });
    throw error;
  }
  closeSync(fd);
  try {
    renameSync(temp, target);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
