/**
 * A blob is code that every worker runs. Whoever can write it, or replace it in its directory,
 * can run code in the server: so the loader refuses a blob (and loads from disk) when someone
 * other than the process's user or root could do either, unless the operator opts in with
 * CODEBLOB_ALLOW_UNSAFE=1 (config.ts reads it; `allowUnsafe` here).
 */
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { FileFacts } from '../store/backend.js';

const S_ISVTX = 0o1000;

function whoCanWrite(mode: number, uid: number, what: string, me: number): string | undefined {
  if ((mode & 0o022) !== 0) return `${what} is writable by ${mode & 0o020 ? 'its group' : 'others'} (mode ${(mode & 0o7777).toString(8)})`;
  if (uid !== me && uid !== 0) return `${what} is owned by uid ${uid}, not by this process's user (${me}) or root`;
  return undefined;
}

/**
 * Why the blob must not be trusted, or undefined when it is safe: the file itself (as opened)
 * and the directory of `path` (a directory others can write to may hold a swapped file, unless
 * it is sticky like /tmp).
 */
export function unsafeReason(path: string, file: FileFacts, allowUnsafe: boolean): string | undefined {
  if (allowUnsafe || typeof process.getuid !== 'function') return undefined;
  const me = process.getuid();
  const fileProblem = whoCanWrite(file.mode, file.uid, 'the blob', me);
  if (fileProblem) return fileProblem;
  const dir = dirname(path);
  if (dir.startsWith('/proc/')) return undefined; // a descriptor held by a primary that checked
  const st = statSync(dir);
  if ((st.mode & S_ISVTX) !== 0 && (st.uid === me || st.uid === 0)) return undefined;
  return whoCanWrite(st.mode, st.uid, `its directory ${dir}`, me);
}
