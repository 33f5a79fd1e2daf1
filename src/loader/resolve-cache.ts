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
import { readdirSync, readFileSync, realpathSync, statSync, type Dirent } from 'node:fs';
import { dirname, isAbsolute, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  ENTRY_HASH_BYTES, FACT_ABSENT, FACT_FILE, FACT_UNRECORDED, GUARD_ABSENT, ROOT_REQUEST, GUARD_DIR, GUARD_FILE, GUARD_IS_DIR, GUARD_IS_FILE, GUARD_REAL, SUFFIXES,
  decodeResolutions, entryHash, recheckOf, type DecodedRecheck, type DecodedResolutions,
} from '../format/index.js';
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
/** Holds, though its time changed: its listing or content did not. */
const RECHECKED = 3;

/**
 * `dirname(filename) === dir`, without making the string, for the normalised directories the
 * table holds (no trailing separator): `filename` is `dir`, one separator and a name.
 */
function isDirectoryOf(dir: string, filename: string): boolean {
  if (sep !== '/') return dirname(filename) === dir;
  const n = dir.length;
  return filename.length > n + 1 && filename.charCodeAt(n) === 47 && filename.startsWith(dir) && filename.indexOf('/', n + 1) === -1;
}

/** What an answer's guards say (LoadedTable.verdict). */
export const ANSWER_STALE = 0;
export const ANSWER_HOLDS = 1;
/** It holds, though a file's or folder's time changed: its content or listing facts did not. */
export const ANSWER_RECHECKED = 2;
export type AnswerVerdict = typeof ANSWER_STALE | typeof ANSWER_HOLDS | typeof ANSWER_RECHECKED;

export interface TableOptions {
  /** The encoded table again (the same bytes it was decoded from), for its recheck section. */
  reread?: () => Uint8Array | undefined;
  /** CODEBLOB_VERIFY=hash: a package.json is always checked by its content, never by its time alone. */
  contentOnly?: boolean;
  /** Keep why each broken guard broke (NODE_DEBUG=codeblob, `codeblob verify --files`). */
  explain?: boolean;
}

/** The recheck section with its lookups, decoded when a guard's time first changed. */
interface Recheck {
  data: DecodedRecheck;
  listingOf: Map<number, number>;
  contentOf: Map<number, number>;
  realOf: Map<number, number>;
}

const KIND_OTHER = 3;
const FACT_WORDS = ['absent', 'a file', 'a directory'];
const kindWord = (kind: number) => (kind === KIND_ABSENT ? 'absent' : kind === KIND_FILE ? 'a file' : kind === KIND_DIRECTORY ? 'a directory' : 'neither file nor directory');

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
  readonly #binding: NativeBinding | undefined;
  readonly #options: TableOptions;
  /** undefined: not decoded yet; null: none (a version-2 table) or unusable. */
  #recheck: Recheck | null | undefined;
  #why: Map<number, string> | undefined;

  /** `binding`: the addon to stat guards ahead with; undefined checks each in JS when needed. */
  constructor(table: DecodedResolutions, root: string, checkGuards: boolean, binding: NativeBinding | undefined, options: TableOptions = {}) {
    this.#t = table;
    this.#root = root;
    this.#rootPrefix = root.endsWith(sep) ? root : root + sep;
    this.#abs = new Array(table.paths.length);
    this.#guardState = new Uint8Array(table.guards.length / 4);
    this.#binding = binding;
    this.#options = options;
    if (options.explain) this.#why = new Map();
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
      abs = this.#absolute(rel);
      this.#abs[i] = abs;
    }
    return abs;
  }

  #absolute(rel: string): string {
    // Recorded paths are normalised: below the root a concatenation is the absolute path.
    return rel === '' ? this.#root : rel.startsWith('../') || rel === '..' ? resolve(this.#root, rel) : this.#rootPrefix + rel;
  }

  /** Number of recorded answers. */
  get answers(): number {
    return this.#t.requests.length;
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
    return this.verdict(i) !== ANSWER_STALE;
  }

  /** What answer i's guards say: stale, holding, or holding after a recheck (a time changed). */
  verdict(i: number): AnswerVerdict {
    const { answers, guardLists } = this.#t;
    const first = answers[i * 4 + 2]!;
    const end = first + answers[i * 4 + 3]!;
    if (end > guardLists.length) return ANSWER_STALE;
    let verdict: AnswerVerdict = ANSWER_HOLDS;
    for (let k = first; k < end; k++) {
      const g = guardLists[k]!;
      let state = this.#guardState[g];
      if (state === undefined) return ANSWER_STALE;
      if (state === UNKNOWN) {
        state = this.#check(g);
        this.#guardState[g] = state;
      }
      if (state === BROKEN) return ANSWER_STALE;
      if (state === RECHECKED) verdict = ANSWER_RECHECKED;
    }
    return verdict;
  }

  /** Why answer i is stale (with `explain`, after `verdict(i)` said so), else undefined. */
  why(i: number): string | undefined {
    const { answers, guardLists } = this.#t;
    const first = answers[i * 4 + 2]!;
    const end = Math.min(first + answers[i * 4 + 3]!, guardLists.length);
    for (let k = first; k < end; k++) {
      const g = guardLists[k]!;
      const state = this.#guardState[g];
      if (state === undefined) return `guard ${g} is out of range`;
      if (state === BROKEN) return this.#why?.get(g) ?? `guard ${g} does not hold`;
    }
    return first + answers[i * 4 + 3]! > guardLists.length ? 'its guard list is out of range' : undefined;
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

  #broken(g: number, why: () => string): number {
    this.#why?.set(g, why());
    return BROKEN;
  }

  #fail(g: number, why: () => string): false {
    this.#why?.set(g, why());
    return false;
  }

  #check(g: number): number {
    const guards = this.#t.guards;
    const kind = guards[g * 4 + 1];
    const p = this.path(guards[g * 4]!);
    if (p === undefined) return this.#broken(g, () => `guard ${g} names a path out of range`);
    if (kind === GUARD_REAL) {
      const want = this.path(guards[g * 4 + 3]!);
      let real: string | undefined;
      try {
        real = realpathSync.native(p);
      } catch {
        // gone, or unreadable
      }
      return real !== undefined && real === want ? HOLDS : this.#broken(g, () => `${p} resolves to ${real ?? 'nothing'}, not ${want}`);
    }
    // The thread's stat, or one made now when it has not got there (it then skips it).
    let found: number;
    let mtimeMs: number;
    let size: number;
    const r = this.#row?.[g] ?? -1;
    if (r >= 0) {
      const rows = this.#stats!.row(r);
      found = rows[r * 3]!;
      mtimeMs = rows[r * 3 + 1]!;
      size = rows[r * 3 + 2]!;
    } else {
      let st;
      try {
        st = statSync(p, { throwIfNoEntry: false });
      } catch {
        st = undefined;
      }
      found = !st ? KIND_ABSENT : st.isFile() ? KIND_FILE : st.isDirectory() ? KIND_DIRECTORY : KIND_OTHER;
      mtimeMs = st?.mtimeMs ?? 0;
      size = st?.size ?? 0;
    }
    const expected = kind === GUARD_ABSENT ? KIND_ABSENT : kind === GUARD_FILE || kind === GUARD_IS_FILE ? KIND_FILE : kind === GUARD_DIR || kind === GUARD_IS_DIR ? KIND_DIRECTORY : -1;
    if (found !== expected) return this.#broken(g, () => `${p} is ${kindWord(found)}, was ${expected === -1 ? `an unknown guard kind ${kind}` : kindWord(expected)}`);
    if (kind !== GUARD_DIR && kind !== GUARD_FILE) return HOLDS;
    if (kind === GUARD_FILE && size !== guards[g * 4 + 3]) return this.#broken(g, () => `${p} changed: ${size} bytes, was ${guards[g * 4 + 3]}`);
    const timeChanged = mtimeMs !== guards[g * 4 + 2];
    // contentOnly checks a package.json by its content even when its time is as recorded; a
    // folder's listing only when its time changed (checking every listing costs ~100 ms on an
    // app of 1,500 modules, and a listing cannot change without its folder's mtime unless the
    // mtime is set back on purpose).
    if (!timeChanged && !(this.#options.contentOnly && kind === GUARD_FILE)) return HOLDS;
    // The time says nothing, or says it changed: what it stood for decides.
    const rc = this.#loadRecheck();
    if (!rc) return timeChanged ? this.#broken(g, () => `${p} changed (its mtime; the blob records nothing else to check)`) : HOLDS;
    const held = kind === GUARD_DIR ? this.#listingHolds(rc, g, p) : this.#contentHolds(rc, g, p);
    if (!held) return BROKEN;
    return timeChanged ? RECHECKED : HOLDS;
  }

  #loadRecheck(): Recheck | null {
    if (this.#recheck !== undefined) return this.#recheck;
    this.#recheck = null;
    try {
      // A version-2 table has none; else it is read again from the blob, only now.
      const bytes = this.#t.recheckCopy ?? (this.#t.recheckAt ? this.#options.reread?.() : undefined);
      const data = bytes && recheckOf(this.#t, bytes);
      if (!data) return null;
      const listingOf = new Map<number, number>();
      for (let l = 0; l < data.listings.length / 3; l++) listingOf.set(data.listings[l * 3]!, l);
      const contentOf = new Map<number, number>();
      data.contentGuards.forEach((g, k) => contentOf.set(g, k));
      const realOf = new Map<number, number>();
      for (let k = 0; k < data.reals.length / 2; k++) realOf.set(data.reals[k * 2]!, data.reals[k * 2 + 1]!);
      this.#recheck = { data, listingOf, contentOf, realOf };
    } catch {
      // A malformed section: guards whose time changed stay broken, as without one.
    }
    return this.#recheck;
  }

  /** A path index of the table or, past its end, of the recheck section. */
  #anyPath(rc: Recheck, i: number): string | undefined {
    const n = this.#t.paths.length;
    if (i < n) return this.path(i);
    const rel = rc.data.paths[i - n];
    return rel === undefined ? undefined : this.#absolute(rel);
  }

  /**
   * Every name the folder's mtime stood for is still what it was: absent, or a file or directory
   * with the same realpath. One readdir of the folder answers most (a name's presence and its
   * type); only symlinks are statted and resolved. A name the listing lacks but holds in another
   * case (a case-insensitive folder) is statted, as Node would find it.
   */
  #listingHolds(rc: Recheck, g: number, dir: string): boolean {
    const { listings, names, masks } = rc.data;
    const l = rc.listingOf.get(g);
    if (l === undefined) return this.#fail(g, () => `${dir} changed (its mtime; the blob does not list what it stood for)`);
    const first = listings[l * 3 + 1]!;
    const end = first + listings[l * 3 + 2]!;
    if (end > names.length) return this.#fail(g, () => `${dir}: its listing is out of range`);
    let entries: Map<string, Dirent>;
    try {
      entries = new Map(readdirSync(dir, { withFileTypes: true }).map((d) => [d.name, d]));
    } catch (error) {
      return this.#fail(g, () => `${dir} cannot be listed (${(error as NodeJS.ErrnoException).code})`);
    }
    let caseless: boolean | undefined;
    for (let n = first; n < end; n++) {
      const name = names[n]!;
      if (name === '' || name.includes('/') || name.includes('\0')) return this.#fail(g, () => `${dir}: a listed name is malformed`);
      for (let k = 0; k < SUFFIXES.length; k++) {
        const state = (masks[n]! >> (2 * k)) & 3;
        if (state === FACT_UNRECORDED) continue;
        const child = name + SUFFIXES[k];
        const p = dir + sep + child;
        const want = state === FACT_ABSENT ? KIND_ABSENT : state === FACT_FILE ? KIND_FILE : KIND_DIRECTORY;
        const d = entries.get(child);
        let found: number;
        let link = false;
        if (d === undefined) {
          caseless ??= this.#caseless(dir, entries);
          found = caseless ? this.#statAll([p])[0]! : KIND_ABSENT;
        } else if (d.isSymbolicLink()) {
          link = true;
          found = this.#statAll([p])[0]!;
        } else {
          found = d.isFile() ? KIND_FILE : d.isDirectory() ? KIND_DIRECTORY : KIND_OTHER;
        }
        if (found !== want) return this.#fail(g, () => `${dir} changed: ${p} is ${kindWord(found)}, was ${FACT_WORDS[[KIND_ABSENT, KIND_FILE, KIND_DIRECTORY].indexOf(want)]}`);
        if (found === KIND_ABSENT) continue;
        const r = rc.realOf.get(n * 4 + k);
        // Its realpath was itself: it must still be no symlink (its folder's own realpath is guarded apart).
        if (r === undefined && !link) continue;
        const expected = r === undefined ? p : this.#anyPath(rc, r);
        let real: string | undefined;
        try {
          real = realpathSync.native(p);
        } catch {
          // gone since
        }
        if (real === undefined || real !== expected) return this.#fail(g, () => `${dir} changed: ${p} resolves to ${real ?? 'nothing'}, not ${expected}`);
      }
    }
    return true;
  }

  /** Does the folder find names in another case (a case-insensitive file system)? One stat of a listed name, its case swapped. */
  #caseless(dir: string, entries: Map<string, Dirent>): boolean {
    for (const name of entries.keys()) {
      const swapped = name.toUpperCase() === name ? name.toLowerCase() : name.toUpperCase();
      if (swapped !== name && !entries.has(swapped)) return this.#statAll([dir + sep + swapped])[0] !== KIND_ABSENT;
    }
    return false;
  }

  /** The file's bytes still hash to what was packed (its size was checked already). */
  #contentHolds(rc: Recheck, g: number, file: string): boolean {
    const k = rc.contentOf.get(g);
    if (k === undefined || (k + 1) * ENTRY_HASH_BYTES > rc.data.contentHashes.length) {
      return this.#fail(g, () => `${file} changed (its mtime; the blob records no content hash for it)`);
    }
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (error) {
      return this.#fail(g, () => `${file} cannot be read (${(error as NodeJS.ErrnoException).code})`);
    }
    const expected = rc.data.contentHashes.subarray(k * ENTRY_HASH_BYTES, (k + 1) * ENTRY_HASH_BYTES);
    if (bytes.length === this.#t.guards[g * 4 + 3] && entryHash(bytes).equals(expected)) return true;
    return this.#fail(g, () => `${file} changed (its content)`);
  }

  /** stat rows (kind, mtimeMs, size) of paths, in one call to the addon when there is one. */
  #statAll(paths: string[]): Float64Array {
    if (this.#binding && !paths.some((p) => p.includes('\0'))) return this.#binding.statMany(paths.join('\0'));
    const rows = new Float64Array(paths.length * 3);
    paths.forEach((p, j) => {
      let st;
      try {
        st = statSync(p, { throwIfNoEntry: false });
      } catch {
        st = undefined;
      }
      rows[j * 3] = !st ? KIND_ABSENT : st.isFile() ? KIND_FILE : st.isDirectory() ? KIND_DIRECTORY : KIND_OTHER;
    });
    return rows;
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
  // NODE_DEBUG=codeblob: every request the table does not answer is named, with why.
  const verbose = (debug as { enabled?: boolean }).enabled === true;
  const fromNode = (why: string, request: unknown, dir: unknown) => {
    if (verbose && tableRequest(request)) debug(`resolution from Node (${why}): ${request}${typeof dir === 'string' ? ` from ${dir}` : ''}`);
  };
  const root = store.root;
  const rootPrefix = root.endsWith(sep) ? root : root + sep;
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
        table = new LoadedTable(decoded, root, !trust, ctx.native, {
          reread: () => store.resolutionTable(),
          contentOnly: ctx.config.freshness === 'hash',
          explain: verbose,
        });
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
  /** Answer i of `t` if its guards hold or were settled by a recheck (counted), else undefined. */
  function holding(t: LoadedTable, i: number, request: string, dir: string): string | undefined {
    const verdict = trust ? ANSWER_HOLDS : t.verdict(i);
    if (verdict === ANSWER_STALE) {
      c.resolveStale++;
      if (verbose) debug(`resolution stale (${t.why(i)}), asking Node: ${request} from ${dir}`);
      return undefined;
    }
    const file = t.file(i);
    if (file === undefined) {
      c.resolveMisses++;
      fromNode('the recorded answer is out of range', request, dir);
      return undefined;
    }
    c.resolveHits++;
    if (verdict === ANSWER_RECHECKED) c.resolveTimeOnly++;
    return file;
  }

  function answer(request: string, parent: ParentLike): string | undefined {
    const dir = parent.path;
    const filename = parent.filename;
    if (typeof dir !== 'string' || typeof filename !== 'string' || !isDirectoryOf(dir, filename)) {
      fromNode('the requiring module is not a file module', request, dir);
      return undefined;
    }
    // The table is decoded for the first request it could answer, not for a builtin.
    const t = table ?? (tableRequest(request) ? loaded() : undefined);
    if (!t) {
      fromNode('no table', request, dir);
      return undefined;
    }
    // A request the table holds is no builtin (it was recorded under this very Node and flags):
    // builtins are told apart only when the table has nothing.
    let i = t.find(dir, request);
    // An absolute path below the root is recorded relative to it (the app may have moved).
    if (i === -1 && request.charCodeAt(0) === 47 && request.startsWith(rootPrefix)) i = t.find(dir, ROOT_REQUEST + request.slice(rootPrefix.length));
    if (i === -1 || (!isRelativeRequest(request) && !isAbsolute(request) && !defaultLookupPaths(dir, parent.paths))) {
      if (tableRequest(request)) c.resolveMisses++;
      fromNode(i === -1 ? 'not in the table' : 'module.paths was changed', request, dir);
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
    } else if (verbose && !store.closed) {
      fromNode(isMain ? 'the main module' : 'options Node must see (paths, conditions)', request, (parent as ParentLike | null | undefined)?.path);
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
