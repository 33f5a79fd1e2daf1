/**
 * Staleness is loud: when a large share of what the blob holds no longer matches the files
 * (more than STALE_SHARE of the modules the traced run loaded changed, or were served only after
 * a content check because their times changed), one line on stderr says so, with the likely
 * cause and the fix. The modules still load correctly (from disk, or from the blob once their
 * content matched); the line is about the time and memory lost.
 *
 * One line per process tree, not one per worker: cluster workers, pm2's and child_process's
 * children, and worker threads share their parent's process group, so the first thread of the
 * group to see the blob stale creates an exclusive marker file named by the user, the process
 * group (with its leader's start time, in case the group id is reused), and the blob's inode
 * (O_EXCL: exactly one creator). The others find it and stay quiet. Markers of groups that are
 * gone are removed whenever a new one is created. Where no marker can be made (no writable
 * temp dir), every process tree member prints its line: loud beats silent.
 *
 * The check runs when a loading burst goes idle (burst.ts), so a startup is judged as a whole
 * (and at exit, for a process that ends first), and costs nothing while nothing is stale (two
 * counters read).
 */
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { sha256, type EntryTable } from '../format/index.js';
import type { ServeContext } from './serve.js';

/** More than this share stale prints the line. */
export const STALE_SHARE = 0.1;

const PREFIX = 'codeblob-stale-';

/** The line to print, or undefined when the blob is fresh enough. */
export function stalenessLine(ctx: ServeContext, traced: () => number): string | undefined {
  const c = ctx.state.counters;
  if (c.stale === 0 && c.timeOnly === 0) return undefined;
  const blob = displayPath(ctx.store.path);
  const modules = traced();
  const check = `\`codeblob verify ${blob} --files\` lists them; NODE_DEBUG=codeblob names each at run time`;
  const asked = c.resolveHits + c.resolveStale;
  if (c.stale > STALE_SHARE * modules) {
    const resolutions = c.resolveStale > 0 ? `, and ${c.resolveStale} of the ${asked} resolutions asked of the blob no longer hold` : '';
    return (
      `codeblob: ${c.stale} of the ${modules} modules packed in ${blob} changed on disk since packing${resolutions}: ` +
      `they load from disk and compile from scratch. Likely cause: the app was built, edited or installed again after ` +
      `it was packed. Fix: pack as the last build step, after everything that writes the app's files (${check}).`
    );
  }
  if (c.timeOnly > STALE_SHARE * modules) {
    const resolutions = c.resolveTimeOnly > 0 ? ` (and ${c.resolveTimeOnly} of the ${asked} resolutions asked of the blob were rechecked)` : '';
    return (
      `codeblob: ${c.timeOnly} of the ${modules} modules packed in ${blob}${resolutions} have new modification times ` +
      `but the content they were packed with: each file is read and hashed before the blob serves it. Likely cause: ` +
      `the app was copied after packing without keeping times (cp -r, an artifact upload, rsync without -t). To serve ` +
      `them unread: pack after the last copy, or copy with cp -p or rsync -t (${check}).`
    );
  }
  return undefined;
}

/** The blob's own path: a worker of preloadPrimary maps the primary's descriptor, /proc/<pid>/fd/<n>. */
function displayPath(path: string): string {
  if (!path.startsWith('/proc/')) return path;
  try {
    return readlinkSync(path);
  } catch {
    return path;
  }
}

/**
 * Checks at the end of each loading burst, and at exit for a process that ends before its
 * loading went idle (a short script), and prints the line once per process tree.
 */
export function reportStalenessWhenIdle(ctx: ServeContext): void {
  let done = false;
  let traced: number | undefined;
  const count = () => (traced ??= tracedCount(ctx.store.table));
  const check = () => {
    if (done || ctx.store.closed) return;
    const line = stalenessLine(ctx, count);
    if (line === undefined) return;
    done = true;
    if (firstInProcessTree(ctx)) process.stderr.write(line + '\n');
    else ctx.debug('stale: another process of this process group has said so on stderr');
  };
  ctx.burst.on('idle', check);
  process.once('exit', check);
}

/** This process's group and the start time of its leader (/proc/<pid>/stat, fields 5 and 22). */
function processGroup(): { pgid: number; leaderStart: string } | undefined {
  try {
    const pgid = Number(statFields('self')[2]);
    if (!Number.isInteger(pgid) || pgid <= 0) return undefined;
    return { pgid, leaderStart: leaderStart(pgid) };
  } catch {
    return undefined;
  }
}

/** The fields of /proc/<pid>/stat after the command name, from field 3 (state) on. */
function statFields(pid: string): string[] {
  const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** The group leader's start time (clock ticks since boot), or '-' when it has exited. */
function leaderStart(pgid: number): string {
  try {
    return statFields(String(pgid))[19] ?? '-';
  } catch {
    return '-';
  }
}

/** Creates this group's marker for the blob; false when another member of the group made it. */
function firstInProcessTree(ctx: ServeContext): boolean {
  const group = processGroup();
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  if (!group) return true;
  const { dev, ino } = ctx.store.file;
  const blob = sha256(Buffer.from(`${ctx.store.path}\0${dev}:${ino}`)).toString('hex').slice(0, 16);
  // node:os only here, on the stale path: imported at the top it would be compiled in every worker.
  const dir = (createRequire(import.meta.url)('node:os') as typeof import('node:os')).tmpdir();
  const name = `${PREFIX}${uid}-${group.pgid}-${group.leaderStart}-${blob}`;
  try {
    closeSync(openSync(join(dir, name), 'wx', 0o600));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    ctx.debug(`no marker for the staleness line (${(error as Error).message}): every process prints it`);
    return true;
  }
  sweep(dir, `${PREFIX}${uid}-`, name);
  return true;
}

/** Removes the markers of process groups that are gone (or whose id now has another leader). */
function sweep(dir: string, prefix: string, mine: string): void {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.startsWith(prefix) && n !== mine);
  } catch {
    return;
  }
  for (const n of names) {
    const [pgid, start] = n.slice(prefix.length).split('-');
    const id = Number(pgid);
    if (!Number.isInteger(id) || id <= 0) continue;
    let gone = false;
    try {
      process.kill(-id, 0);
      const now = leaderStart(id);
      gone = now !== '-' && start !== '-' && now !== start; // the id was reused by another group
    } catch (error) {
      gone = (error as NodeJS.ErrnoException).code === 'ESRCH';
    }
    if (!gone) continue;
    try {
      unlinkSync(join(dir, n));
    } catch {
      // someone else swept it
    }
  }
}

/** Entries the traced run loaded (the rest were added with `include`). */
function tracedCount(table: EntryTable): number {
  let n = 0;
  for (let i = 0; i < table.length; i++) if (table.order(i) >= 0) n++;
  return n;
}
