/**
 * `--include`: files, directories (every file under them) and globs (`*`, `**`, `?`), expanded
 * to real paths, sorted, without duplicates. Symlinked directories are not followed (cycles).
 */
import { readdirSync, realpathSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { codeblobError } from '../errors.js';

const GLOB_CHARS = /[*?[\]{}]/;

function walk(dir: string, out: string[]): void {
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, d.name);
    if (d.isDirectory()) walk(full, out);
    else if (d.isFile() || (d.isSymbolicLink() && statSync(full, { throwIfNoEntry: false })?.isFile())) out.push(full);
  }
}

/** Converts a glob to a regex over `/`-separated relative paths. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      // "**/" matches zero or more whole directories; a trailing "**" matches everything.
      if (glob[i + 2] === '/') {
        re += '(?:[^/]+/)*';
        i += 2;
      } else {
        re += '.*';
        i += 1;
      }
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export function expandIncludes(patterns: readonly string[], cwd: string): string[] {
  const found = new Set<string>();
  for (const pattern of patterns) {
    const abs = resolve(cwd, pattern);
    const files: string[] = [];
    if (!GLOB_CHARS.test(pattern)) {
      const st = statSync(abs, { throwIfNoEntry: false });
      if (!st) throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', `--include ${pattern}: no such file or directory`);
      if (st.isDirectory()) walk(abs, files);
      else files.push(abs);
    } else {
      const segments = abs.split(sep);
      const firstGlob = segments.findIndex((s) => GLOB_CHARS.test(s));
      const base = segments.slice(0, firstGlob).join(sep) || sep;
      const re = globToRegExp(segments.slice(firstGlob).join('/'));
      const all: string[] = [];
      if (statSync(base, { throwIfNoEntry: false })?.isDirectory()) walk(base, all);
      for (const f of all) if (re.test(relative(base, f).split(sep).join('/'))) files.push(f);
      if (files.length === 0) throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', `--include ${pattern}: matched no file`);
    }
    for (const f of files) found.add(realpathSync(f));
  }
  return [...found].sort();
}
