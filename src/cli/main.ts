#!/usr/bin/env node
/** `codeblob` command line. Errors are one clear line (and a code), not a stack trace. */
import { isCodeblobError } from '../errors.js';
import { VERSION } from '../version.js';
import { UsageError, inspectCommand, packCommand, verifyCommand } from './commands.js';
import { memCommand } from './mem.js';
import { runCommand } from './run.js';

const HELP = `codeblob ${VERSION} — one shared, memory-mapped file of sources and V8 code caches for worker pools

Usage:
  codeblob pack <entry...> -o <app.blob> [options] [-- entry args]
      Run the entries in a child process, record every module they load, and write their
      sources and (late) code caches to one blob, atomically.
        -o, --output <file>     blob to write
        --root <dir>            directory keys are relative to (default: common ancestor)
        --node-arg <arg>        pass a flag to the tracing Node (repeat; use the workers' V8 flags)
        --node <path>           Node binary to trace with (default: this one)
        --train <script>        run a workload after the entry settles, for warmer caches
        --settle-ms <ms>        stop an entry that keeps running (a server) after this long
        --include <glob>        also pack these files, compiled without running (repeat)
        --page-size <n>         4096 (default), 16384 or 65536
        --align dense|page      sections 8-byte aligned (default) or on page boundaries
        --timeout <ms>          give up on a trace after this long (default 120000)
        --no-deterministic      do not trace with --predictable (caches then differ run to run)
        --allow-failure         accept an entry that exits non-zero (a CLI run that reports errors)
        --no-resolutions        do not record the run's module resolutions (workers resolve from disk)
        --json                  machine-readable summary
  codeblob inspect <app.blob> [--entries] [--root <dir>] [--json]
      Header, compatibility with this Node, entries and sizes. Never writes.
  codeblob verify <app.blob> [--root <dir>] [--json]
      Check every hash; exit status 1 if anything is corrupt. Never writes.
  codeblob run <app.blob> [node flags] -- <script> [args]
      Run a script with loading from the blob switched on (same as
      CODEBLOB_FILE=app.blob node --require codeblob/register script).
  codeblob mem <pid...> | --tree <pid> | --cgroup <id|path|pid:n>... [--json] [--watch <seconds>]
      USS, PSS, anonymous memory per process and how much of each blob is shared, from
      /proc/<pid>/smaps (Linux). RSS is shown too, but it counts shared pages in every process.
        --cgroup <c>            every process of a container or pod (repeat): a container id,
                                a cgroup path, or pid:<n> for the cgroup of a process; adds
                                what the cgroup is charged (page cache, kubelet working set) and
                                each blob matched across containers by the file on the node,
                                with its page-cache size (needs root)
  codeblob --version | --help
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'pack':
      return packCommand(rest);
    case 'inspect':
      return inspectCommand(rest);
    case 'verify':
      return verifyCommand(rest);
    case 'run':
      return runCommand(rest);
    case 'mem':
      return memCommand(rest);
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
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`codeblob: ${error.message}\nRun \`codeblob --help\` for usage.\n`);
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
