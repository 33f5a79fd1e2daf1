#!/usr/bin/env node
/** `codeblob` command line. Errors are one clear line (and a code), not a stack trace. */
import { isCodeblobError } from '../errors.js';
import { VERSION } from '../version.js';
import { UsageError, inspectCommand, packCommand, verifyCommand } from './commands.js';
import { memCommand } from './mem.js';
import { runCommand } from './run.js';

interface Command {
  usage: string;
  run(argv: string[]): number | Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  pack: {
    usage: `  codeblob pack <entry...> -o <app.blob> [options] [-- entry args]
      Run the entries in a child process, record every module they load (worker threads
      included), and write their sources and (late) code caches to one blob, atomically.
      The trace runs the real app: give it a free port and scratch storage (--env).
        -o, --output <file>     blob to write
        --root <dir>            directory keys are relative to (default: common ancestor)
        --node-arg <arg>        pass a flag to the tracing Node (repeat; use the workers' V8 flags)
        --node <path>           Node binary to trace with (default: this one)
        --env <NAME=value>      set a variable for the traced run (repeat)
        --settle-ms auto|<ms>   when to stop an entry that keeps running: auto (default) stops a
                                server once it listens and has loaded nothing for a second;
                                <ms> stops it that long after start; 0 waits for it to exit
        --train <script>        run a workload after the entry settles, for warmer caches (its
                                output is shown; if it fails, the pack fails; it is never packed)
        --include <glob>        also pack these files, compiled without running (repeat)
        --page-size <n>         4096 (default), 16384 or 65536
        --align dense|page      sections 8-byte aligned (default) or on page boundaries
        --timeout <ms>          give up on a trace after this long (default 120000)
        --no-deterministic      do not trace with --predictable (caches then differ run to run)
        --allow-failure         accept an entry that exits non-zero (a CLI run that reports errors)
        --no-resolutions        do not record the run's module resolutions (workers resolve from disk)
        --json                  machine-readable summary`,
    run: packCommand,
  },
  inspect: {
    usage: `  codeblob inspect <app.blob> [--entries] [--root <dir>] [--json]
      Header, compatibility with this Node, entries and sizes. Never writes.`,
    run: inspectCommand,
  },
  verify: {
    usage: `  codeblob verify <app.blob> [--root <dir>] [--files [--max-stale <n|p%>]] [--json]
      Check every hash; exit status 1 if anything is corrupt. Never writes.
        --files                 also compare the blob with the files on disk, as a worker would
                                (CODEBLOB_VERIFY=stat): modules served as packed, served after a
                                content check (a new mtime, the same bytes: a copy that reset
                                times), changed or gone; resolutions that hold, hold after a
                                recheck, or are stale, each with why. Run it where the app runs,
                                after the last build or copy step
        --max-stale <n|p%>      with --files: exit status 3 when more modules would load from disk,
                                or more resolutions are stale, than this count or share of each
                                (default 0)
        --root <dir>            directory the keys are relative to (default: recorded in the blob)
        --json                  machine-readable report (with --files: every key, under "files")`,
    run: verifyCommand,
  },
  run: {
    usage: `  codeblob run <app.blob> [node flags] -- <script> [args]
      Run a script with loading from the blob switched on (same as
      CODEBLOB_FILE=app.blob node --require codeblob/register script).`,
    run: runCommand,
  },
  mem: {
    usage: `  codeblob mem <pid...> | --tree <pid> | --cgroup <id|path|pid:n>... [--json] [--watch <seconds>]
      USS, PSS, anonymous memory per process and how much of each blob is shared, from
      /proc/<pid>/smaps (Linux). RSS is shown too, but it counts shared pages in every process.
        --cgroup <c>            every process of a container or pod (repeat): a container id,
                                a cgroup path, or pid:<n> for the cgroup of a process; adds
                                what the cgroup is charged (page cache, kubelet working set) and
                                each blob matched across containers by the file on the node,
                                with its page-cache size (needs root)`,
    run: memCommand,
  },
};

const HELP = `codeblob ${VERSION} — one shared, memory-mapped file of sources and V8 code caches for worker pools

Usage:
${Object.values(COMMANDS).map((c) => c.usage).join('\n')}
  codeblob <command> --help
  codeblob --version | --help
`;

/** `--help` or `-h` among a subcommand's own arguments (not after `--`, where the app's begin). */
function asksForHelp(argv: string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  switch (name) {
    case '--version':
    case '-v':
    case 'version':
      process.stdout.write(`${VERSION}\n`);
      return 0;
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(HELP);
      return 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) throw new UsageError(`unknown command "${name}"`);
  if (asksForHelp(rest)) {
    process.stdout.write(`Usage:\n${command.usage}\n`);
    return 0;
  }
  return command.run(rest);
}

// A reader that stops early (`codeblob inspect app.blob --entries | head`) closes the pipe: that
// ends the command, quietly, as it would end any Unix tool.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`codeblob: ${error.message}\nRun \`codeblob ${Object.hasOwn(COMMANDS, process.argv[2] ?? '') ? `${process.argv[2]} ` : ''}--help\` for usage.\n`);
      process.exitCode = 2;
      return;
    }
    const e = error as NodeJS.ErrnoException;
    if (isCodeblobError(error) || (typeof e?.code === 'string' && typeof e?.syscall === 'string')) {
      process.stderr.write(`codeblob: ${e.message}\n`);
      process.exitCode = 1;
      return;
    }
    process.stderr.write(`codeblob: unexpected error: ${e?.stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
