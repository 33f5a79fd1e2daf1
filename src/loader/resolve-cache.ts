/**
 * Answers `require()` and `require.resolve()` from the blob's resolution table (see
 * pack/resolutions.ts), in front of Node's `Module._resolveFilename`, so a worker skips the stat
 * calls and package.json reads Node makes for every first `require` of a module.
 *
 * The table is used only when it can give Node's answer: the same resolution environment
 * (resolve-env.ts), a plain call (a file module asking, not the main module, no `paths` or
 * `conditions`, lookup paths untouched), a recorded (directory, request) pair, and — unless
 * CODEBLOB_VERIFY=none — every guard of the answer holding: the paths Node probed are still
 * absent, files or directories as they were (inside node_modules, where only package managers
 * write, a directory's mtime stands for its whole listing), the package.json files it read are
 * unchanged (mtime, size), and symlinks point where they pointed. Each guard is checked
 * once per process, as Node itself caches what it found for the life of the process. Anything
 * else (builtins, errors, unrecorded requests) is Node's own resolution, untouched.
 *
 * The decoded table lives only while the app is loading: it is dropped when loading has been
 * quiet for a while (burst.ts) and decoded again if loading starts again.
 */
import { realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { GUARD_ABSENT, GUARD_DIR, GUARD_FILE, GUARD_IS_DIR, GUARD_IS_FILE, GUARD_REAL, decodeResolutions, type DecodedResolutions } from '../format/index.js';
import type { NativeBinding } from '../native/binding.js';
import { KIND_ABSENT, KIND_DIRECTORY, KIND_FILE, StatJob } from '../native/jobs.js';
import { Module } from './node-internals.js';
import { conditionsKey, defaultLookupPaths, isRelativeRequest, plainOptions, resolutionEnvironment, tableImportSpecifier, tableRequest } from './resolve-env.js';
import type { ServeContext } from './serve.js';

interface ParentLike {
  filename?: unknown;
  path?: unknown;
  paths?: unknown;
}

const UNKNOWN = 0;
const HOLDS = 1;
const BROKEN = 2;

/**
 * `dirname(filename) === dir`, without making the string, for the normalised directories the
 * table holds (no trailing separator): `filename` is `dir`, one separator and a name.
 */
function isDirectoryOf(dir: string, filename: string): boolean {
  if (sep !== '/') return dirname(filename) === dir;
  const n = dir.length;
  return filename.length > n + 1 && filename.charCodeAt(n) === 47 && filename.startsWith(dir) && filename.indexOf('/', n + 1) === -1;
}

/** A decoded table with its lookups and guard checks (exported for the fuzzer). */
export class LoadedTable {
  readonly #t: DecodedResolutions;
  readonly #root: string;
  readonly #rootPrefix: string;
  /** directory → request → answer: plain strings as keys, no concatenation per lookup. */
  readonly #byDir = new Map<string, Map<string, number>>();
  /** The same for `import` answers. */
  readonly #importsByDir = new Map<string, Map<string, number>>();
  /** The file URL of each `import` answer, made once. */
  readonly #urls = new Map<number, string>();
  readonly #abs: (string | undefined)[];
  readonly #guardState: Uint8Array;
  /** Per guard, its row in the stats made ahead (-1: checked on its own, in JS). */
  #row: Int32Array | undefined;
  #stats: StatJob | undefined;

  /** `binding`: the addon to stat guards ahead with; undefined checks each in JS when needed. */
  constructor(table: DecodedResolutions, root: string, checkGuards: boolean, binding: NativeBinding | undefined) {
    this.#t = table;
    this.#root = root;
    this.#rootPrefix = root.endsWith(sep) ? root : root + sep;
    this.#abs = new Array(table.paths.length);
    this.#guardState = new Uint8Array(table.guards.length / 4);
    if (checkGuards && binding) this.#statAhead(binding);
    this.#index(0, table.esmFrom, this.#byDir);
    this.#index(table.esmFrom, table.requests.length, this.#importsByDir);
  }

  /** Indexes answers [from, to) by directory and request (they come grouped by directory). */
  #index(from: number, to: number, byDir: Map<string, Map<string, number>>): void {
    const { answers, requests } = this.#t;
    let dirIndex = -1;
    let byRequest: Map<string, number> | undefined;
    for (let i = from; i < to; i++) {
      if (answers[i * 4] !== dirIndex || byRequest === undefined) {
        dirIndex = answers[i * 4]!;
        const dir = this.path(dirIndex);
        byRequest = undefined;
        if (dir === undefined) continue;
        byRequest = byDir.get(dir);
        if (byRequest === undefined) byDir.set(dir, (byRequest = new Map()));
      }
      byRequest.set(requests[i]!, i);
    }
  }

  /** The conditions the `import` answers hold for (comma-joined; '' when there are none). */
  get importConditions(): string {
    return this.#t.esmConditions;
  }

  /** The recorded `import` answer, or -1. */
  findImport(dir: string, specifier: string): number {
    return this.#importsByDir.get(dir)?.get(specifier) ?? -1;
  }

  /** The file URL of answer i (undefined when out of range). */
  url(i: number): string | undefined {
    let url = this.#urls.get(i);
    if (url === undefined) {
      const file = this.file(i);
      if (file === undefined) return undefined;
      url = pathToFileURL(file).href;
      this.#urls.set(i, url);
    }
    return url;
  }

  /** Absolute path of path index i (undefined when out of range). */
  path(i: number): string | undefined {
    let abs = this.#abs[i];
    if (abs === undefined) {
      const rel = this.#t.paths[i];
      if (rel === undefined) return undefined;
      // Recorded paths are normalised: below the root a concatenation is the absolute path.
      abs = rel === '' ? this.#root : rel.startsWith('../') || rel === '..' ? resolve(this.#root, rel) : this.#rootPrefix + rel;
      this.#abs[i] = abs;
    }
    return abs;
  }

  /** The recorded answer, or -1 when the table has none. */
  find(dir: string, request: string): number {
    return this.#byDir.get(dir)?.get(request) ?? -1;
  }

  file(i: number): string | undefined {
    return this.path(this.#t.answers[i * 4 + 1]!);
  }

  /** Do all guards of answer i still hold? Each guard is checked once per table. */
  holds(i: number): boolean {
    const { answers, guardLists } = this.#t;
    const first = answers[i * 4 + 2]!;
    const end = first + answers[i * 4 + 3]!;
    if (end > guardLists.length) return false;
    for (let k = first; k < end; k++) {
      const g = guardLists[k]!;
      let state = this.#guardState[g];
      if (state === undefined) return false;
      if (state === UNKNOWN) {
        state = this.#check(g) ? HOLDS : BROKEN;
        this.#guardState[g] = state;
      }
      if (state === BROKEN) return false;
    }
    return true;
  }

  /** Stops the background stat thread, if it still runs (the table is being dropped). */
  dispose(): void {
    this.#stats?.stop();
  }

  /**
   * With the addon, stat every path guard on a thread of its own, in guard order (the packer
   * numbers guards in the order the traced run first needed them), while this thread goes on
   * loading: a guard is then judged from the thread's result, or, when the thread has not
   * reached it yet, statted here (the thread skips it). Realpath guards stay lazy, in JS.
   */
  #statAhead(binding: NativeBinding): void {
    const guards = this.#t.guards;
    const count = this.#guardState.length;
    const row = new Int32Array(count).fill(-1);
    const paths: string[] = [];
    for (let g = 0; g < count; g++) {
      if (guards[g * 4 + 1] === GUARD_REAL) continue;
      const p = this.path(guards[g * 4]!);
      if (p === undefined || p.includes('\0')) {
        this.#guardState[g] = BROKEN;
        continue;
      }
      row[g] = paths.length;
      paths.push(p);
    }
    // No thread (no memory for it): each guard is checked when first needed, as without this.
    this.#stats = StatJob.start(binding, paths);
    if (this.#stats) this.#row = row;
  }

  #check(g: number): boolean {
    const guards = this.#t.guards;
    const kind = guards[g * 4 + 1];
    const r = this.#row?.[g] ?? -1;
    if (r >= 0) {
      // The thread's stat, or one made now when it has not got there (it then skips it).
      const rows = this.#stats!.row(r);
      const at = r * 3;
      const found = rows[at];
      if (kind === GUARD_ABSENT) return found === KIND_ABSENT;
      if (kind === GUARD_IS_FILE) return found === KIND_FILE;
      if (kind === GUARD_IS_DIR) return found === KIND_DIRECTORY;
      if (kind === GUARD_DIR) return found === KIND_DIRECTORY && rows[at + 1] === guards[g * 4 + 2];
      if (kind === GUARD_FILE) return found === KIND_FILE && rows[at + 1] === guards[g * 4 + 2] && rows[at + 2] === guards[g * 4 + 3];
      return false;
    }
    const p = this.path(guards[g * 4]!);
    const mtimeMs = guards[g * 4 + 2];
    const size = guards[g * 4 + 3]!;
    if (p === undefined) return false;
    try {
      if (kind === GUARD_ABSENT) return statSync(p, { throwIfNoEntry: false }) === undefined;
      if (kind === GUARD_IS_FILE) return statSync(p, { throwIfNoEntry: false })?.isFile() === true;
      if (kind === GUARD_IS_DIR) return statSync(p, { throwIfNoEntry: false })?.isDirectory() === true;
      if (kind === GUARD_DIR || kind === GUARD_FILE) {
        const st = statSync(p, { throwIfNoEntry: false });
        if (!st || st.mtimeMs !== mtimeMs) return false;
        return kind === GUARD_DIR ? st.isDirectory() : st.isFile() && st.size === size;
      }
      if (kind !== GUARD_REAL) return false;
      const real = this.path(size);
      return real !== undefined && realpathSync.native(p) === real;
    } catch {
      return false;
    }
  }
}

/**
 * How many frames of the current stack, between here and Module._load, are there only because
 * codeblob registered a resolve hook: its own hook frames, and, when no other hook is in the
 * chain, the hook machinery Node then runs (resolveWithHooks, nextStep, defaultResolve), which
 * it skips without hooks. (Node's frame names; on a Node that names them otherwise this finds
 * fewer, and the error keeps fewer frames of the app, as before.)
 */
function hookFrames(): number {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 64;
  const stack = new Error().stack ?? '';
  Error.stackTraceLimit = limit;
  let ours = 0;
  let machinery = 0;
  let others = 0;
  for (const line of stack.split('\n').slice(2)) {
    if (/[ .]Module\._load /.test(line)) break;
    if (/codeblobResolveFilename/.test(line)) continue; // the +1 above is for this one
    if (/codeblobResolveImport/.test(line) || line.includes(ownBundle)) ours++;
    else if (/ at (nextStep|resolveWithHooks|defaultResolve) \(node:internal\//.test(line)) machinery++;
    else if (!/\(node:internal\/modules\/cjs\/loader/.test(line)) others++;
  }
  if (ours === 0) return 0;
  return others === 0 ? ours + machinery : ours * 2;
}

// This file as it appears in stack frames (the bundle or the module).
const ownBundle = fileURLToPath(import.meta.url);

/** Answers `import` from the table (for the ES module hooks), or undefined to ask Node. */
export type ImportResolver = (specifier: string, parentURL: string, conditions: unknown) => { url: string; file: string } | undefined;

/**
 * Installs the table in front of Node's resolver. Returns why it cannot be used, if so, or the
 * resolver of `import`s for the ES module hooks.
 */
export function installResolveCache(ctx: ServeContext): { reason: string } | { resolveImport: ImportResolver } {
  const { store, state, debug } = ctx;
  if (!ctx.config.resolve) return { reason: 'switched off by CODEBLOB_RESOLVE' };
  if (!store.hasResolutionTable()) return { reason: 'the blob has no resolution table (packed with --no-resolutions or by an older codeblob)' };
  const original = Module._resolveFilename;
  // Another tool's resolver installed before codeblob (path aliases, Yarn PnP) must see every
  // request; one installed after wraps this one and still does.
  if (!String(original).includes('_resolveLookupPaths')) {
    return { reason: 'Module._resolveFilename was replaced before codeblob/register ran (by a tool that maps requests)' };
  }
  const c = state.counters;
  const trust = ctx.config.freshness === 'none';
  const root = store.root;
  let table: LoadedTable | undefined;
  let broken: string | undefined;
  let decoding = false;

  // Loading has been quiet for a while: drop the decoded table (decoded again if loading resumes).
  ctx.burst.on('quiet', () => {
    table?.dispose();
    table = undefined;
  });

  function loaded(): LoadedTable | undefined {
    // Decoding may load the addon (a require of its own): Node answers that one.
    if (table || broken || decoding) return table;
    decoding = true;
    try {
      const decoded = decodeResolutions(store.resolutionTable()!);
      const here = resolutionEnvironment();
      if (decoded.env !== here) {
        broken = `the blob's resolutions were recorded under ${decoded.env}, this process runs under ${here}`;
      } else {
        table = new LoadedTable(decoded, root, !trust, ctx.native);
      }
    } catch (error) {
      broken = (error as Error).message;
    } finally {
      decoding = false;
    }
    if (broken) {
      state.resolve = 'disk';
      state.resolveReason = broken;
      debug(`resolution table not used: ${broken}`);
      return undefined;
    }
    ctx.burst.noteLoad(); // so that the table is dropped once quiet, even if nothing else loads
    return table;
  }
  /** Answer i of `t` if its guards hold (counted), else undefined. */
  function holding(t: LoadedTable, i: number, request: string, dir: string): string | undefined {
    if (!trust && !t.holds(i)) {
      c.resolveStale++;
      debug(`resolution changed since packing, asking Node: ${request} from ${dir}`);
      return undefined;
    }
    const file = t.file(i);
    if (file === undefined) {
      c.resolveMisses++;
      return undefined;
    }
    c.resolveHits++;
    return file;
  }

  function answer(request: string, parent: ParentLike): string | undefined {
    const dir = parent.path;
    const filename = parent.filename;
    if (typeof dir !== 'string' || typeof filename !== 'string' || !isDirectoryOf(dir, filename)) return undefined;
    // The table is decoded for the first request it could answer, not for a builtin.
    const t = table ?? (tableRequest(request) ? loaded() : undefined);
    if (!t) return undefined;
    // A request the table holds is no builtin (it was recorded under this very Node and flags):
    // builtins are told apart only when the table has nothing.
    const i = t.find(dir, request);
    if (i === -1 || (!isRelativeRequest(request) && !isAbsolute(request) && !defaultLookupPaths(dir, parent.paths))) {
      if (tableRequest(request)) c.resolveMisses++;
      return undefined;
    }
    return holding(t, i, request, dir);
  }

  // The directory of each importing module's URL, made once.
  const dirs = new Map<string, string>();
  let knownConditions: unknown;
  const resolveImport: ImportResolver = (specifier, parentURL, conditions) => {
    if (!tableImportSpecifier(specifier) || store.closed) return undefined;
    const t = table ?? loaded();
    if (!t) return undefined;
    // The hooks pass the same conditions array for every import of a thread: compare it once.
    if (conditions !== knownConditions) {
      if (conditionsKey(conditions) !== t.importConditions) return undefined;
      knownConditions = conditions;
    }
    let dir = dirs.get(parentURL);
    if (dir === undefined) {
      try {
        dir = dirname(fileURLToPath(parentURL));
      } catch {
        return undefined;
      }
      dirs.set(parentURL, dir);
    }
    const i = t.findImport(dir, specifier);
    if (i === -1) {
      c.resolveMisses++;
      return undefined;
    }
    const file = holding(t, i, specifier, dir);
    const url = file === undefined ? undefined : t.url(i);
    return url === undefined ? undefined : { url, file: file! };
  };

  Module._resolveFilename = function codeblobResolveFilename(request, parent, isMain, options) {
    if (!isMain && typeof request === 'string' && parent && typeof parent === 'object' && (options === undefined || plainOptions(options)) && !store.closed) {
      const file = answer(request, parent as ParentLike);
      if (file !== undefined) return file;
    }
    // Node's own resolution, one frame deeper than without codeblob: raise the stack trace limit
    // by one for the call, so an error it throws (MODULE_NOT_FOUND ...) loses no frame of the app.
    const limit = Error.stackTraceLimit;
    if (typeof limit !== 'number') return original.call(this, request, parent, isMain, options);
    Error.stackTraceLimit = limit + 1;
    try {
      return original.call(this, request, parent, isMain, options);
    } catch {
      // With codeblob's resolve hook in place (ES module apps), Node runs require() through its
      // hook chain: frames a plain run does not have. Resolve again with room for exactly those,
      // so the error shows as many frames of the app as without codeblob. (Again in any case:
      // an error rethrown here would name this file as where it was thrown.)
      Error.stackTraceLimit = limit + 1 + hookFrames();
      return original.call(this, request, parent, isMain, options);
    } finally {
      Error.stackTraceLimit = limit;
    }
  };
  return { resolveImport };
}
