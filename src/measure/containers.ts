/**
 * Memory of containers (or pods) on one node, from the host: each cgroup's processes with their
 * USS and PSS, what the kernel charges the cgroup, and every blob they map, identified by the
 * file behind the mapping so that the same layer file in two containers counts once.
 */
import { cgroupAccounting, cgroupOfPid, cgroupPids, findCgroup, type Cgroup, type CgroupAccounting } from './cgroup.js';
import { backingFile, pageCacheBytes, type BackingFile } from './shared-files.js';
import { measure, summarize, type ProcessMemory, type TreeMemory } from './smaps.js';

export interface CgroupMemory {
  cgroup: Cgroup;
  accounting: CgroupAccounting;
  /** Its processes (those that exit while being read are left out), with totals. */
  memory: TreeMemory;
}

export interface SharedBlob {
  /** The file on the node (`<device>:<inode>`, a path to it, how the containers see it). */
  file: BackingFile;
  /** Paths the processes map it under (inside their containers). */
  paths: string[];
  /** Bytes of the file in the page cache: once for the node, whoever maps it. Undefined when it cannot be read (see pageCacheBytes). */
  pageCache: number | undefined;
  processes: number;
  /** Summed over every process that maps it: RSS counts its pages once per process, PSS once. */
  rss: number;
  pss: number;
  /** Per cgroup (in the order given): how many of its processes map the file, and their share. */
  byCgroup: Array<{ cgroup: string; processes: number; rss: number; pss: number }>;
}

export interface NodeMemory {
  cgroups: CgroupMemory[];
  blobs: SharedBlob[];
  /** Over every process of every cgroup: PSS counts each shared page once in all. */
  total: { processes: number; uss: number; pss: number; anonymous: number };
}

/** A cgroup by container id or path (see findCgroup), or `pid:<n>` for the cgroup of a process. */
export function resolveCgroup(spec: string): Cgroup {
  const pid = /^pid:(\d+)$/.exec(spec);
  return pid ? { ...cgroupOfPid(Number(pid[1])), spec } : findCgroup(spec);
}

function measureAll(pids: number[]): ProcessMemory[] {
  const out: ProcessMemory[] = [];
  for (const pid of pids) {
    try {
      out.push(measure(pid));
    } catch {
      // Exited between listing and reading.
    }
  }
  return out;
}

/**
 * Memory of the processes in each cgroup (a container, or a pod with all its containers), what
 * each cgroup is charged, and the blobs they map, matched across containers by the file on the
 * node. A cgroup given twice, or nested in another one given, is measured in each.
 */
export function measureCgroups(specs: string[]): NodeMemory {
  const cgroups = specs.map(resolveCgroup).map((cgroup) => ({ cgroup, accounting: cgroupAccounting(cgroup), memory: summarize(measureAll(cgroupPids(cgroup))) }));
  const blobs = new Map<string, SharedBlob>();
  for (const c of cgroups) {
    for (const p of c.memory.processes) {
      for (const b of p.blobs) {
        const file = backingFile(p.pid, b);
        if (!file) continue;
        let s = blobs.get(file.key);
        if (!s) {
          let pageCache: number | undefined;
          try {
            pageCache = pageCacheBytes(file.hostPath);
          } catch {
            pageCache = undefined;
          }
          s = { file, paths: [], pageCache, processes: 0, rss: 0, pss: 0, byCgroup: cgroups.map((x) => ({ cgroup: x.cgroup.spec, processes: 0, rss: 0, pss: 0 })) };
          blobs.set(file.key, s);
        }
        if (!s.paths.includes(b.path)) s.paths.push(b.path);
        s.processes++;
        s.rss += b.rss;
        s.pss += b.pss;
        const mine = s.byCgroup[cgroups.indexOf(c)]!;
        mine.processes++;
        mine.rss += b.rss;
        mine.pss += b.pss;
      }
    }
  }
  const total = { processes: 0, uss: 0, pss: 0, anonymous: 0 };
  for (const c of cgroups) {
    total.processes += c.memory.processes.length;
    total.uss += c.memory.total.uss;
    total.pss += c.memory.total.pss;
    total.anonymous += c.memory.total.anonymous;
  }
  return { cgroups, blobs: [...blobs.values()], total };
}
