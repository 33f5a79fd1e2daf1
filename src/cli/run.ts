/** `codeblob run app.blob -- server.js [args]`: start Node with the loader on, nothing else. */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { registerPath } from '../pool/index.js';
import { UsageError } from './commands.js';

export function runCommand(argv: string[]): Promise<number> {
  const dashdash = argv.indexOf('--');
  const before = dashdash === -1 ? argv : argv.slice(0, dashdash);
  const after = dashdash === -1 ? [] : argv.slice(dashdash + 1);
  const [blob, ...nodeArgs] = before;
  if (!blob || after.length === 0) throw new UsageError('run needs a blob and a script: codeblob run app.blob -- server.js [args]');
  const env = { ...process.env, CODEBLOB_FILE: resolve(blob) };
  const child = spawn(process.execPath, [...nodeArgs, '--require', registerPath, ...after], { stdio: 'inherit', env });
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, forward(s));
  return new Promise((done, fail) => {
    child.on('error', fail);
    child.on('exit', (code, signal) => {
      if (signal) {
        process.removeAllListeners(signal);
        process.kill(process.pid, signal);
      }
      done(code ?? 1);
    });
  });
}
