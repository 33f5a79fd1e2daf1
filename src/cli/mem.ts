/** `codeblob mem <pid...> | --tree <pid>`: per-process USS/PSS and how the blob is shared. */
import { measure, measureTree, summarize, type TreeMemory } from '../measure/smaps.js';
import { UsageError, parse } from './commands.js';
import { bytes, table } from './format.js';

function render(t: TreeMemory): string {
  const rows = [['pid', 'name', 'USS', 'PSS', 'anonymous', 'RSS (counts shared pages everywhere)', 'blob resident', 'blob shared']];
  for (const p of t.processes) {
    const b = p.blobs.reduce((s, x) => ({ rss: s.rss + x.rss, shared: s.shared + x.shared }), { rss: 0, shared: 0 });
    rows.push([String(p.pid), p.name, bytes(p.uss), bytes(p.pss), bytes(p.anonymous), bytes(p.rss), bytes(b.rss), bytes(b.shared)]);
  }
  rows.push(['total', `${t.processes.length} processes`, bytes(t.total.uss), bytes(t.total.pss), bytes(t.total.anonymous), bytes(t.total.rss), '', '']);
  const lines = [table(rows)];
  for (const b of t.blobs) {
    lines.push(`blob ${b.path}: mapped by ${b.processes} process(es), ${bytes(b.rss)} resident in total, ${bytes(b.pss)} PSS, ${bytes(b.shared)} shared`);
  }
  if (t.blobs.length === 0) lines.push('no codeblob blob is mapped by these processes');
  return lines.join('\n');
}

function pidOf(text: string): number {
  const pid = Number(text);
  if (!Number.isInteger(pid) || pid <= 0) throw new UsageError(`not a pid: ${text}`);
  return pid;
}

export async function memCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { tree: { type: 'string' }, json: { type: 'boolean' }, watch: { type: 'string' } });
  if (!values.tree && positionals.length === 0) throw new UsageError('mem needs pids or --tree <pid>: codeblob mem 1234 1235');
  const read = (): TreeMemory =>
    values.tree ? measureTree(pidOf(values.tree as string)) : summarize(positionals.map((p) => measure(pidOf(p))));
  const show = () => {
    const t = read();
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
