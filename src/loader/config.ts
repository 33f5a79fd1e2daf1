/**
 * The loader's configuration: every CODEBLOB_* variable `codeblob/register` reads, read once,
 * validated, and reported whole in `status().config`. The one list of the variables (with
 * their defaults and meaning) is `VARIABLES` below; the README's table is checked against it.
 */
import type { BlobPin } from '../store/store.js';

/** How the loader decides a module's file is still the one packed (CODEBLOB_VERIFY). */
export type FreshnessMode = 'stat' | 'hash' | 'none';

export interface LoaderConfig {
  /** The blob (CODEBLOB_FILE); without it the loader stays off. */
  file: string | undefined;
  /** Staleness of each module's file, not the blob's own integrity (CODEBLOB_VERIFY). */
  freshness: FreshnessMode;
  /** CODEBLOB_BACKEND. */
  backend: 'auto' | 'mmap' | 'read';
  /** Directory the blob's keys are relative to (CODEBLOB_ROOT). */
  root: string | undefined;
  /** The generation a primary verified (CODEBLOB_PIN, set by preloadPrimary). */
  pin: BlobPin | undefined;
  /** Answer require() from the blob's resolution table (CODEBLOB_RESOLVE). */
  resolve: boolean;
  /** Hash the startup range and stat its files on background threads (CODEBLOB_VERIFY_AHEAD). */
  checkAhead: boolean;
  /** Keep the blob's pages mapped after loading (CODEBLOB_KEEP_PAGES). */
  keepPages: boolean;
  /** One status line on stderr at exit (CODEBLOB_STATUS). */
  statusLine: boolean;
  /** status() as JSON at exit, %p and %t replaced (CODEBLOB_STATUS_FILE). */
  statusFile: string | undefined;
  /** Accept a blob others could write or swap (CODEBLOB_ALLOW_UNSAFE). */
  allowUnsafe: boolean;
}

export const VARIABLES = [
  ['CODEBLOB_FILE', '—', 'the blob; without it `register` does nothing'],
  ['CODEBLOB_VERIFY', '`stat`', '`stat`, `hash` or `none`: how a module\'s file is checked for changes since packing'],
  ['CODEBLOB_BACKEND', '`auto`', '`mmap`, `read` (private copy), or `auto`'],
  ['CODEBLOB_ROOT', 'recorded in the blob', 'directory the blob\'s keys are relative to'],
  ['CODEBLOB_KEEP_PAGES', 'unset', '`1`: do not drop the blob\'s pages after loading'],
  ['CODEBLOB_RESOLVE', 'on', '`0`: resolve every `require` with Node, not from the blob\'s table'],
  ['CODEBLOB_VERIFY_AHEAD', 'on', '`0`: no checks ahead: hash each section and stat each module\'s file on the loading thread when it loads, instead of on background threads'],
  ['CODEBLOB_STATUS', 'unset', '`1`: one status line on stderr at exit (and when a signal stops the process)'],
  ['CODEBLOB_STATUS_FILE', 'unset', 'write `status()` as JSON there at exit (`%p`: pid, `%t`: thread id)'],
  ['CODEBLOB_PIN', 'set by `preloadPrimary`', 'the generation the primary verified'],
  ['CODEBLOB_ALLOW_UNSAFE', 'unset', '`1`: accept a blob others could write or swap'],
] as const;

/** A switch that is on unless set to 0/off/false (or the reverse for `offByDefault`). */
function flag(env: NodeJS.ProcessEnv, name: string, offByDefault: boolean, problems: string[]): boolean {
  const value = env[name];
  if (value === undefined || value === '') return !offByDefault;
  if (value === '1' || value === 'on' || value === 'true') return true;
  if (value === '0' || value === 'off' || value === 'false') return false;
  problems.push(`${name}=${value} is not one of 1, on, true, 0, off, false`);
  return !offByDefault;
}

function oneOf<T extends string>(env: NodeJS.ProcessEnv, name: string, allowed: readonly T[], fallback: T, problems: string[]): T {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  problems.push(`${name}=${value} is not one of ${allowed.join(', ')}`);
  return fallback;
}

/** CODEBLOB_PIN is `dev:ino:size:ctimeNs:sha256`. */
function parsePin(text: string | undefined, problems: string[]): BlobPin | undefined {
  if (!text) return undefined;
  const [dev, ino, size, ctimeNs, digest] = text.split(':');
  if (!dev || !ino || !size || !ctimeNs || !digest || !/^[0-9a-f]{64}$/.test(digest)) {
    problems.push(`CODEBLOB_PIN is malformed: ${text}`);
    return undefined;
  }
  return { dev: Number(dev), ino: Number(ino), size: Number(size), ctimeNs, digest };
}

/** Reads and checks every variable; `problems` is empty when all are valid. */
export function readLoaderConfig(env: NodeJS.ProcessEnv = process.env): { config: LoaderConfig; problems: string[] } {
  const problems: string[] = [];
  const config: LoaderConfig = {
    file: env.CODEBLOB_FILE || undefined,
    freshness: oneOf(env, 'CODEBLOB_VERIFY', ['stat', 'hash', 'none'], 'stat', problems),
    backend: oneOf(env, 'CODEBLOB_BACKEND', ['auto', 'mmap', 'read'], 'auto', problems),
    root: env.CODEBLOB_ROOT || undefined,
    pin: parsePin(env.CODEBLOB_PIN, problems),
    resolve: flag(env, 'CODEBLOB_RESOLVE', false, problems),
    checkAhead: flag(env, 'CODEBLOB_VERIFY_AHEAD', false, problems),
    keepPages: flag(env, 'CODEBLOB_KEEP_PAGES', true, problems),
    statusLine: flag(env, 'CODEBLOB_STATUS', true, problems),
    statusFile: env.CODEBLOB_STATUS_FILE || undefined,
    allowUnsafe: flag(env, 'CODEBLOB_ALLOW_UNSAFE', true, problems),
  };
  return { config, problems };
}
