/**
 * `codeblob mem <pid...> | --tree <pid> | --cgroup <container id|path|pid:n>...`: per-process
 * USS/PSS and how the blob is shared, for a pool on a host or for containers on a node.
 */
import { measureCgroups, type NodeMemory } from '../measure/containers.js';
import { measure, measureTree, summarize, type TreeMemory } from '../measure/smaps.js';
import { UsageError, parse } from './commands.js';
import { bytes, table } from './format.js';

function processRows(t: TreeMemory): string[][] {
  const rows: string[][] = [];
  for (const p of t.processes) {
    const b = p.blobs.reduce((s, x) => ({ rss: s.rss + x.rss, shared: s.shared + x.shared }), { rss: 0, shared: 0 });
    rows.push([String(p.pid), p.name, bytes(p.uss), bytes(p.pss), bytes(p.anonymous), bytes(p.rss), bytes(b.rss), bytes(b.shared)]);
  }
  return rows;
}
const HEAD = ['pid', 'name', 'USS', 'PSS', 'anonymous', 'RSS (counts shared pages everywhere)', 'blob resident', 'blob shared'];

function render(t: TreeMemory): string {
  const rows = [HEAD, ...processRows(t)];
  rows.push(['total', `${t.processes.length} processes`, bytes(t.total.uss), bytes(t.total.pss), bytes(t.total.anonymous), bytes(t.total.rss), '', '']);
  const lines = [table(rows)];
  for (const b of t.blobs) {
    lines.push(`blob ${b.path}: mapped by ${b.processes} process(es), ${bytes(b.rss)} resident in total, ${bytes(b.pss)} PSS, ${bytes(b.shared)} shared`);
  }
  if (t.blobs.length === 0) lines.push('no codeblob blob is mapped by these processes');
  return lines.join('\n');
}

function renderNode(n: NodeMemory): string {
  const lines: string[] = [];
  for (const c of n.cgroups) {
    const a = c.accounting;
    lines.push(
      `cgroup ${c.cgroup.name} (${c.cgroup.spec}; v${c.cgroup.version}): charged ${bytes(a.usage)}${a.limit !== undefined ? ` of ${bytes(a.limit)}` : ''} = ` +
        `${bytes(a.anon)} anonymous + ${bytes(a.file)} page cache (${bytes(a.activeFile)} active, ${bytes(a.inactiveFile)} inactive, ${bytes(a.fileMapped)} mapped); ` +
        `working set ${bytes(a.workingSet)} (what the kubelet reports)`,
    );
    const rows = [HEAD, ...processRows(c.memory)];
    rows.push(['total', `${c.memory.processes.length} processes`, bytes(c.memory.total.uss), bytes(c.memory.total.pss), bytes(c.memory.total.anonymous), bytes(c.memory.total.rss), '', '']);
    lines.push(table(rows), '');
  }
  lines.push(`all ${n.cgroups.length} cgroup(s): ${n.total.processes} processes, USS ${bytes(n.total.uss)}, PSS ${bytes(n.total.pss)} (each shared page counted once)`);
  for (const b of n.blobs) {
    const cache = b.pageCache === undefined ? 'page cache unknown (needs root or the file\'s owner)' : `${bytes(b.pageCache)} in the page cache, once for the node`;
    const split = b.byCgroup.filter((x) => x.processes > 0).map((x) => `${x.cgroup}: ${x.processes} process(es), PSS ${bytes(x.pss)}`).join('; ');
    lines.push(`blob ${b.paths.join(', ')} = ${b.file.hostPath} (${b.file.via}, file ${b.file.key}): ${bytes(b.file.size)}, ${cache}; mapped by ${b.processes} process(es), ${bytes(b.rss)} RSS summed, ${bytes(b.pss)} PSS; ${split}`);
  }
  if (n.blobs.length === 0) lines.push('no codeblob blob is mapped by these processes');
  return lines.join('\n');
}

function pidOf(text: string): number {
  const pid = Number(text);
  if (!Number.isInteger(pid) || pid <= 0) throw new UsageError(`not a pid: ${text}`);
  return pid;
}

export async function memCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { tree: { type: 'string' }, cgroup: { type: 'string', multiple: true }, json: { type: 'boolean' }, watch: { type: 'string' } });
  const cgroups = (values.cgroup as string[] | undefined) ?? [];
  const ways = [values.tree !== undefined, positionals.length > 0, cgroups.length > 0].filter(Boolean).length;
  if (ways === 0) throw new UsageError('mem needs pids, --tree <pid> or --cgroup <container id|path|pid:n>: codeblob mem 1234 1235');
  if (ways > 1) throw new UsageError('mem takes pids, --tree or --cgroup, not several of them');
  for (const spec of cgroups) {
    const pid = /^pid:(.*)$/.exec(spec);
    if (pid) pidOf(pid[1]!);
  }
  const show = () => {
    if (cgroups.length > 0) {
      const n = measureCgroups(cgroups);
      process.stdout.write(values.json ? JSON.stringify(n, null, 2) + '\n' : renderNode(n) + '\n');
      return;
    }
    const t = values.tree ? measureTree(pidOf(values.tree as string)) : summarize(positionals.map((p) => measure(pidOf(p))));
    process.stdout.write(values.json ? JSON.stringify(t, null, 2) + '\n' : render(t) + '\n');
  };
  if (values.watch === undefined) {
    show();
    return 0;
  }
  const seconds = Number(values.watch || 2);
  if (!(seconds > 0)) throw new UsageError('--watch takes a number of seconds');
  for (;;) {
    if (!values.json) process.stdout.write('\x1b[2J\x1b[H' + new Date().toISOString() + '\n');
    show();
    await new Promise((r) => setTimeout(r, seconds * 1000));
  }
}
