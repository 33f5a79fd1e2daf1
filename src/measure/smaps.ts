/**
 * Honest memory figures for a process, from /proc/<pid>/smaps_rollup and /proc/<pid>/smaps:
 * RSS counts every shared page in every process that maps it; PSS divides shared pages among
 * their sharers; USS (private clean + private dirty) is what the process alone costs.
 */
import { accessSync, closeSync, constants, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { codeblobError } from '../errors.js';
import { MAGIC } from '../format/header.js';

export interface MappingFigures {
  /** Path of the mapped file, as the process sees it (inside its container, if it runs in one). */
  path: string;
  /**
   * Device (`major:minor`, hex, as /proc/<pid>/maps prints it) and inode of the mapping. On
   * overlayfs the device is the container's overlay mount and the inode the layer file's: the
   * same blob in two containers shows two devices; `backingFile()` (shared-files.ts) finds the
   * one file behind them.
   */
  device: string;
  inode: number;
  /**
   * A path through which this process's file can be opened from here: the mapping itself
   * (`/proc/<pid>/map_files/...`) or the process's root (`/proc/<pid>/root/...`), else `path`.
   */
  openPath: string;
  /** Size of the mapping (virtual). */
  size: number;
  rss: number;
  pss: number;
  /** Resident pages of this mapping that other processes map too. */
  shared: number;
  /** Resident pages only this process maps. */
  private: number;
}

export interface ProcessMemory {
  pid: number;
  /** Command name (comm). */
  name: string;
  rss: number;
  pss: number;
  /** Unique set size: private clean + private dirty. */
  uss: number;
  sharedClean: number;
  sharedDirty: number;
  privateClean: number;
  privateDirty: number;
  /** Anonymous memory (heaps, stacks): never shared between Node processes. */
  anonymous: number;
  swap: number;
  /** Every codeblob blob mapped by the process. */
  blobs: MappingFigures[];
}

const KB = 1024;

function fields(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_]+):\s+(\d+) kB$/.exec(line);
    if (m) out.set(m[1]!, (out.get(m[1]!) ?? 0) + Number(m[2]) * KB);
  }
  return out;
}

function readProc(pid: number, file: string): string {
  if (process.platform !== 'linux') {
    throw codeblobError('ERR_CODEBLOB_INCOMPATIBLE', `memory measurement reads /proc and needs Linux (this is ${process.platform})`);
  }
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' || e.code === 'ESRCH') {
      throw Object.assign(new Error(`no such process: ${pid}`), { code: 'ESRCH', syscall: 'open', path: `/proc/${pid}/${file}` });
    }
    if (e.code === 'EACCES' || e.code === 'EPERM') {
      throw Object.assign(new Error(`no permission to read the memory map of process ${pid} (run as its user or root)`), {
        code: e.code,
        syscall: 'open',
        path: `/proc/${pid}/${file}`,
      });
    }
    throw error;
  }
}

const blobCache = new Map<string, boolean>();

function hasMagic(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(MAGIC.length);
    return readSync(fd, b, 0, b.length, 0) === b.length && b.toString('latin1') === MAGIC;
  } finally {
    closeSync(fd);
  }
}

/**
 * The paths through which a mapped file can be read from this process, best first: the
 * mapping itself (works for deleted files and across mount namespaces, needs root), the
 * process's root (a path inside a container), and the path as printed.
 */
function openPaths(pid: number, range: string, path: string): string[] {
  const clean = path.endsWith(' (deleted)') ? path.slice(0, -' (deleted)'.length) : path;
  const [start, end] = range.split('-').map((h) => BigInt(`0x${h}`).toString(16));
  return [`/proc/${pid}/map_files/${start}-${end}`, `/proc/${pid}/root${clean}`, clean];
}

/**
 * Is the mapped file a codeblob blob (its first bytes are the magic)? Returns the path that
 * opened it, or undefined. Cached per device and inode: two containers that map one layer file
 * show two overlay devices, and each is read once.
 */
function blobPath(pid: number, range: string, path: string, device: string, inode: number): string | undefined {
  const key = `${device}:${inode}:${path}`;
  const known = blobCache.get(key);
  if (known === false) return undefined;
  for (const candidate of openPaths(pid, range, path)) {
    try {
      if (known === undefined) {
        const blob = hasMagic(candidate);
        blobCache.set(key, blob);
        if (!blob) return undefined;
      } else {
        accessSync(candidate, constants.R_OK);
      }
      return candidate;
    } catch {
      // Not readable this way (no permission, another namespace, deleted): try the next.
    }
  }
  if (known === undefined) blobCache.set(key, false);
  return undefined;
}

/** Per-mapping figures of every codeblob blob the process maps (one row per file). */
function blobMappings(pid: number): MappingFigures[] {
  const text = readProc(pid, 'smaps');
  const out = new Map<string, MappingFigures>();
  let current: { range: string; path: string; device: string; inode: number; lines: string[] } | undefined;
  const flush = () => {
    if (!current || !current.path.startsWith('/') || current.inode === 0) return;
    const key = `${current.device}:${current.inode}:${current.path}`;
    let m = out.get(key);
    if (!m) {
      const openPath = blobPath(pid, current.range, current.path, current.device, current.inode);
      if (openPath === undefined) return;
      m = { path: current.path, device: current.device, inode: current.inode, openPath, size: 0, rss: 0, pss: 0, shared: 0, private: 0 };
      out.set(key, m);
    }
    const f = fields(current.lines.join('\n'));
    m.size += f.get('Size') ?? 0;
    m.rss += f.get('Rss') ?? 0;
    m.pss += f.get('Pss') ?? 0;
    m.shared += (f.get('Shared_Clean') ?? 0) + (f.get('Shared_Dirty') ?? 0);
    m.private += (f.get('Private_Clean') ?? 0) + (f.get('Private_Dirty') ?? 0);
  };
  for (const line of text.split('\n')) {
    // start-end perms offset major:minor inode path
    const header = /^([0-9a-f]+-[0-9a-f]+) \S+ \S+ ([0-9a-f]+:[0-9a-f]+) (\d+)\s*(.*)$/.exec(line);
    if (header) {
      flush();
      current = { range: header[1]!, device: header[2]!, inode: Number(header[3]), path: header[4]!, lines: [] };
    } else if (current) {
      current.lines.push(line);
    }
  }
  flush();
  return [...out.values()];
}

/** Memory of one process. Throws (code ESRCH / EACCES) for a missing or foreign process. */
export function measure(pid: number): ProcessMemory {
  if (!Number.isInteger(pid) || pid <= 0) throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', `pid must be a positive integer, got ${pid}`);
  const f = fields(readProc(pid, 'smaps_rollup'));
  const get = (k: string) => f.get(k) ?? 0;
  let name = '';
  try {
    name = readProc(pid, 'comm').trim();
  } catch {
    // The process may have exited between the two reads; its figures stand.
  }
  return {
    pid,
    name,
    rss: get('Rss'),
    pss: get('Pss'),
    uss: get('Private_Clean') + get('Private_Dirty'),
    sharedClean: get('Shared_Clean'),
    sharedDirty: get('Shared_Dirty'),
    privateClean: get('Private_Clean'),
    privateDirty: get('Private_Dirty'),
    anonymous: get('Anonymous'),
    swap: get('Swap'),
    blobs: blobMappings(pid),
  };
}

/** The pids of a process's descendants (children, grandchildren, ...), from /proc. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    // The command name may contain spaces and parentheses: ppid follows the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const stack = [...(children.get(pid) ?? [])];
  while (stack.length > 0) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out.sort((a, b) => a - b);
}

export interface TreeMemory {
  processes: ProcessMemory[];
  total: { rss: number; pss: number; uss: number; anonymous: number; swap: number };
  /** Per blob path: how many processes map it, and its bytes summed over them. */
  blobs: Array<{ path: string; processes: number; rss: number; pss: number; shared: number }>;
}

/** A process and all its descendants, with totals (processes that exit meanwhile are skipped). */
export function measureTree(pid: number): TreeMemory {
  const processes = [measure(pid)];
  for (const p of descendants(pid)) {
    try {
      processes.push(measure(p));
    } catch {
      // Exited between listing and reading.
    }
  }
  return summarize(processes);
}

export function summarize(processes: ProcessMemory[]): TreeMemory {
  const total = { rss: 0, pss: 0, uss: 0, anonymous: 0, swap: 0 };
  const blobs = new Map<string, { path: string; processes: number; rss: number; pss: number; shared: number }>();
  for (const p of processes) {
    total.rss += p.rss;
    total.pss += p.pss;
    total.uss += p.uss;
    total.anonymous += p.anonymous;
    total.swap += p.swap;
    for (const b of p.blobs) {
      const t = blobs.get(b.path) ?? { path: b.path, processes: 0, rss: 0, pss: 0, shared: 0 };
      t.processes++;
      t.rss += b.rss;
      t.pss += b.pss;
      t.shared += b.shared;
      blobs.set(b.path, t);
    }
  }
  return { processes, total, blobs: [...blobs.values()] };
}
