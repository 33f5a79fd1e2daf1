/**
 * The one file behind a mapping, seen from the host. Containers started from one image map a
 * layer file through their own overlay mounts: /proc/<pid>/maps then shows a different device per
 * container for the same inode, so the device cannot say whether two containers share pages.
 * The container's mount table can: the overlay's upper and lower directories (host paths) hold
 * the file that backs the mapping, and its device and inode identify it on the node. How much of
 * it sits in the page cache (once, for every process on the node) is asked of the kernel with
 * mincore(2) on a fresh mapping of that file.
 */
import { lstatSync, readFileSync, statSync } from 'node:fs';
import { native } from '../native/binding.js';
import type { MappingFigures } from './smaps.js';

export interface BackingFile {
  /** `<device>:<inode>` of the file on the node: equal for every process that maps the same file. */
  key: string;
  /** A path to the file from here: an overlay layer's directory, or through /proc/<pid>/root. */
  hostPath: string;
  /** `overlay-upper`, `overlay-lower` (an image layer), or `mount` (a bind mount, a volume, the host). */
  via: 'overlay-upper' | 'overlay-lower' | 'mount';
  size: number;
}

interface Mount {
  mountPoint: string;
  root: string;
  fsType: string;
  superOptions: string;
}

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

function mounts(pid: number): Mount[] {
  const out: Mount[] = [];
  for (const line of readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const f = left.split(' ');
    const r = right.split(' ');
    out.push({ root: unescape(f[3]!), mountPoint: unescape(f[4]!), fsType: r[0]!, superOptions: r.slice(2).join(' ') });
  }
  return out;
}

/** The mount a path is on: the longest mount point above it, the last one mounted there. */
function mountOf(list: Mount[], path: string): Mount | undefined {
  let best: Mount | undefined;
  for (const m of list) {
    const above = m.mountPoint === '/' || path === m.mountPoint || path.startsWith(m.mountPoint + '/');
    if (above && (!best || m.mountPoint.length >= best.mountPoint.length)) best = m;
  }
  return best;
}

/** upperdir and lowerdir (colon-separated, `\:` escaped) from overlay's mount options. */
function overlayLayers(superOptions: string): { upper?: string; lowers: string[] } {
  const options = superOptions.split(',');
  const get = (k: string) => options.find((o) => o.startsWith(`${k}=`))?.slice(k.length + 1);
  const lowers = (get('lowerdir') ?? '').split(/(?<!\\):/).filter(Boolean).map((p) => p.replace(/\\:/g, ':'));
  return { upper: get('upperdir'), lowers };
}

/**
 * The file that backs a mapping of process `pid`, seen from here; undefined when it cannot be
 * found (the process exited, or this process may not read its mount table).
 */
export function backingFile(pid: number, mapping: Pick<MappingFigures, 'path' | 'inode' | 'openPath'>): BackingFile | undefined {
  const path = mapping.path.endsWith(' (deleted)') ? mapping.path.slice(0, -' (deleted)'.length) : mapping.path;
  let list: Mount[];
  try {
    list = mounts(pid);
  } catch {
    return undefined;
  }
  const m = mountOf(list, path);
  if (m?.fsType === 'overlay') {
    const rel = (m.root === '/' ? '' : m.root) + (m.mountPoint === '/' ? path : path.slice(m.mountPoint.length));
    const { upper, lowers } = overlayLayers(m.superOptions);
    const layers: Array<[string, BackingFile['via']]> = [...(upper ? [[upper, 'overlay-upper'] as [string, BackingFile['via']]] : []), ...lowers.map((l) => [l, 'overlay-lower'] as [string, BackingFile['via']])];
    for (const [dir, via] of layers) {
      const candidate = dir + rel;
      let st;
      try {
        st = lstatSync(candidate);
      } catch {
        continue;
      }
      // A whiteout (0:0 character device) hides the lower layers' file: nothing backs the path.
      if (st.isCharacterDevice() && st.rdev === 0) return undefined;
      // overlayfs without xino reports the layer file's inode: the same one, or not this file.
      if (!st.isFile() || st.ino !== mapping.inode) continue;
      const real = statSync(candidate);
      return { key: `${real.dev}:${real.ino}`, hostPath: candidate, via, size: real.size };
    }
  }
  try {
    // A bind mount or a volume: the device and inode seen through the process's view are real.
    const st = statSync(mapping.openPath);
    return { key: `${st.dev}:${st.ino}`, hostPath: mapping.openPath, via: 'mount', size: st.size };
  } catch {
    return undefined;
  }
}

/**
 * Bytes of a file held in the page cache, once for the whole node, from mincore(2) on a fresh
 * read-only mapping. Undefined without the native addon, or when the kernel would report only
 * this process's own page tables: since Linux 5.0 mincore shows the page cache of a file only to
 * its owner, a writer, or a process with CAP_FOWNER (run as root or as the file's owner).
 */
export function pageCacheBytes(path: string): number | undefined {
  const n = native();
  if (!n) return undefined;
  const st = statSync(path);
  if (st.size === 0) return 0;
  const uid = process.getuid?.();
  if (uid !== 0 && uid !== st.uid) return undefined;
  const m = n.map(path);
  try {
    return Math.min(m.size, n.residentPages(m.buffer, 0, m.size) * n.pageSize);
  } finally {
    n.release(m.buffer);
  }
}
