import { codeblobError } from '../errors.js';
import type { BackendChoice } from './backend.js';

/** How much of the blob is hash-checked, and when. */
export type VerifyMode = 'lazy' | 'full' | 'none';

export interface OpenOptions {
  /**
   * Directory that entry keys are relative to.
   * @default the root recorded at pack time, resolved against the blob's directory
   */
  root?: string;
  /**
   * `mmap` shares pages between processes and threads; `read` reads the file into private
   * memory; `auto` uses `mmap` when the native addon is usable. `CODEBLOB_BACKEND` overrides
   * `auto`.
   * @default 'auto'
   */
  backend?: BackendChoice;
  /**
   * `lazy`: each entry's section hash is checked the first time it is handed out (the default:
   * nothing corrupt ever reaches V8, and untouched entries cost nothing). `full`: every section
   * at open. `none`: trust the file (only for blobs whose digest was checked by other means).
   * @default 'lazy'
   */
  verify?: VerifyMode;
  /**
   * Throw ERR_CODEBLOB_INCOMPATIBLE when the caches were built for another V8/arch, instead of
   * opening with caches marked unusable.
   * @default false
   */
  requireCompatible?: boolean;
}

export interface ResolvedOpenOptions {
  root: string | undefined;
  backend: BackendChoice;
  verify: VerifyMode;
  requireCompatible: boolean;
}

const KNOWN = ['root', 'backend', 'verify', 'requireCompatible'] as const;

function oneOf<T extends string>(value: unknown, name: string, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', `options.${name} must be one of ${allowed.map((a) => `"${a}"`).join(', ')}; got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/** Validate → interpret with defaults. */
export function resolveOpenOptions(options: OpenOptions | undefined): ResolvedOpenOptions {
  if (options === undefined) options = {};
  if (typeof options !== 'object' || options === null) {
    throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', 'options must be an object');
  }
  for (const key of Object.keys(options)) {
    if (!(KNOWN as readonly string[]).includes(key)) {
      throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', `options.${key} is not an option of open(); known options: ${KNOWN.join(', ')}`);
    }
  }
  if (options.root !== undefined && (typeof options.root !== 'string' || options.root === '')) {
    throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', 'options.root must be a non-empty string');
  }
  if (options.requireCompatible !== undefined && typeof options.requireCompatible !== 'boolean') {
    throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', 'options.requireCompatible must be a boolean');
  }
  return {
    root: options.root,
    backend: oneOf(options.backend, 'backend', ['auto', 'mmap', 'read'], 'auto'),
    verify: oneOf(options.verify, 'verify', ['lazy', 'full', 'none'], 'lazy'),
    requireCompatible: options.requireCompatible ?? false,
  };
}
