/**
 * Control groups, read from /sys/fs/cgroup: which cgroup a container (or a process) runs in,
 * which processes it holds, and what the kernel charges it for memory. cgroup v2 and the v1
 * memory hierarchy (hybrid hosts) are both read; where both exist, v1's memory controller is the
 * one that accounts.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { codeblobError } from '../errors.js';

export interface Cgroup {
  /** What was asked for: a container id, a cgroup path, or `pid <n>`. */
  spec: string;
  /** The cgroup's path inside its hierarchy, e.g. `/kubepods/burstable/pod…/cri-containerd-…`. */
  name: string;
  /** Its directory, e.g. `/sys/fs/cgroup/memory/libpod_parent/libpod-…`. */
  dir: string;
  version: 1 | 2;
}

/**
 * What the kernel charges the cgroup (its own and its children's), in bytes. A page-cache page
 * is charged to the cgroup whose process first brought it in, whoever maps it later.
 */
export interface CgroupAccounting {
  /** memory.current (v2) / memory.usage_in_bytes (v1): anonymous memory plus charged page cache. */
  usage: number;
  /** memory.max / memory.limit_in_bytes; undefined when unlimited. */
  limit: number | undefined;
  anon: number;
  /** Page cache charged here (v1: `cache`). */
  file: number;
  /** Charged page cache that is mapped by some process. */
  fileMapped: number;
  activeFile: number;
  inactiveFile: number;
  shmem: number;
  /**
   * usage − inactive file pages: what the kubelet (cAdvisor's
   * `container_memory_working_set_bytes`) compares with the limit and uses for eviction. Active
   * file pages count: page cache this cgroup touched twice, or was charged first, stays in it.
   */
  workingSet: number;
}

interface Hierarchy {
  version: 1 | 2;
  /** Where the hierarchy is mounted in this mount namespace. */
  mount: string;
  /** The mount's root inside the hierarchy ("/" unless this process runs in a cgroup namespace). */
  root: string;
}

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The hierarchy that accounts memory: v1's memory controller where mounted, else v2. */
function memoryHierarchy(): Hierarchy {
  if (process.platform !== 'linux') {
    throw codeblobError('ERR_CODEBLOB_INCOMPATIBLE', `cgroups are Linux-only (this is ${process.platform})`);
  }
  let v2: Hierarchy | undefined;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const f = left.split(' ');
    const [fsType, , superOptions = ''] = right.split(' ');
    if (fsType === 'cgroup' && superOptions.split(',').includes('memory')) return { version: 1, mount: unescape(f[4]!), root: unescape(f[3]!) };
    if (fsType === 'cgroup2' && !v2) v2 = { version: 2, mount: unescape(f[4]!), root: unescape(f[3]!) };
  }
  if (!v2) throw codeblobError('ERR_CODEBLOB_INCOMPATIBLE', 'no cgroup hierarchy with the memory controller is mounted (see /proc/self/mountinfo)');
  return v2;
}

function dirOf(h: Hierarchy, name: string): string {
  const inside = h.root !== '/' && name.startsWith(h.root) ? name.slice(h.root.length) : name;
  return join(h.mount, inside);
}

/** The memory cgroup a process runs in. */
export function cgroupOfPid(pid: number): Cgroup {
  const h = memoryHierarchy();
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    throw Object.assign(new Error(`no such process: ${pid}`), { code: 'ESRCH', syscall: 'open', path: `/proc/${pid}/cgroup` });
  }
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    const matches = h.version === 1 ? m[2]!.split(',').includes('memory') : m[1] === '0' && m[2] === '';
    if (matches) return { spec: `pid ${pid}`, name: m[3]!, dir: dirOf(h, m[3]!), version: h.version };
  }
  throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', `process ${pid} is in no memory cgroup (/proc/${pid}/cgroup)`);
}

/** Child cgroups of a directory (each is a directory holding cgroup.procs). */
function children(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => join(dir, d.name));
  } catch {
    return [];
  }
}

/**
 * A cgroup by its path (`/sys/fs/cgroup/…`, or a path inside the hierarchy such as
 * `/kubepods/burstable/pod…`) or by a container id (docker, podman, containerd, CRI-O: full or
 * at least 12 hex digits), searched in the memory hierarchy; the runtime's own monitor cgroups
 * (conmon) are left out.
 */
export function findCgroup(spec: string): Cgroup {
  const h = memoryHierarchy();
  if (spec.startsWith('/')) {
    const dir = spec.startsWith(h.mount + '/') || spec === h.mount ? spec : dirOf(h, spec);
    if (!existsSync(join(dir, 'cgroup.procs'))) {
      throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', `${spec} is not a cgroup (no ${join(dir, 'cgroup.procs')})`);
    }
    const inside = dir.slice(h.mount.length) || '/';
    return { spec, name: h.root === '/' ? inside : join(h.root, inside), dir, version: h.version };
  }
  if (!/^[0-9a-f]{12,64}$/.test(spec)) {
    throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', `--cgroup takes a cgroup path (starting with /) or a container id (12 to 64 hex digits), got ${JSON.stringify(spec)}`);
  }
  // libpod-<id>, docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope, /docker/<id>
  const pattern = new RegExp(`(^|[-_])${spec}[0-9a-f]*(\\.scope)?$`);
  const found: string[] = [];
  let level = [h.mount];
  for (let depth = 0; depth < 8 && level.length > 0; depth++) {
    const next: string[] = [];
    for (const dir of level) {
      for (const child of children(dir)) {
        const base = child.slice(child.lastIndexOf('/') + 1);
        if (pattern.test(base) && !base.includes('conmon')) found.push(child);
        else next.push(child);
      }
    }
    level = next;
  }
  if (found.length === 0) throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', `no cgroup for container ${spec} under ${h.mount}`);
  if (found.length > 1) throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', `container id ${spec} is ambiguous: ${found.join(', ')}`);
  const dir = found[0]!;
  const inside = dir.slice(h.mount.length);
  return { spec, name: h.root === '/' ? inside : join(h.root, inside), dir, version: h.version };
}

/** Every process in the cgroup and its descendant cgroups (a pod: all its containers). */
export function cgroupPids(cgroup: Cgroup): number[] {
  const pids = new Set<number>();
  const stack = [cgroup.dir];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    try {
      for (const line of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (line) pids.add(Number(line));
    } catch {
      // Removed meanwhile.
    }
    stack.push(...children(dir));
  }
  return [...pids].sort((a, b) => a - b);
}

function statFile(dir: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of readFileSync(join(dir, 'memory.stat'), 'utf8').split('\n')) {
    const [k, v] = line.split(' ');
    if (k && v !== undefined) out.set(k, Number(v));
  }
  return out;
}

function number(dir: string, file: string): number | undefined {
  try {
    const text = readFileSync(join(dir, file), 'utf8').trim();
    return text === 'max' ? undefined : Number(text);
  } catch {
    return undefined;
  }
}

/** What the kernel charges the cgroup for memory (including its descendant cgroups). */
export function cgroupAccounting(cgroup: Cgroup): CgroupAccounting {
  statSync(cgroup.dir);
  const s = statFile(cgroup.dir);
  const get = (k: string) => s.get(k) ?? 0;
  if (cgroup.version === 1) {
    const usage = number(cgroup.dir, 'memory.usage_in_bytes') ?? 0;
    const limit = number(cgroup.dir, 'memory.limit_in_bytes');
    // v1 prints an "unlimited" limit as the largest page-aligned value.
    const unlimited = limit === undefined || limit >= 2 ** 62;
    return {
      usage,
      limit: unlimited ? undefined : limit,
      anon: get('total_rss'),
      file: get('total_cache'),
      fileMapped: get('total_mapped_file'),
      activeFile: get('total_active_file'),
      inactiveFile: get('total_inactive_file'),
      shmem: get('total_shmem'),
      workingSet: Math.max(0, usage - get('total_inactive_file')),
    };
  }
  const usage = number(cgroup.dir, 'memory.current') ?? 0;
  return {
    usage,
    limit: number(cgroup.dir, 'memory.max'),
    anon: get('anon'),
    file: get('file'),
    fileMapped: get('file_mapped'),
    activeFile: get('active_file'),
    inactiveFile: get('inactive_file'),
    shmem: get('shmem'),
    workingSet: Math.max(0, usage - get('inactive_file')),
  };
}
