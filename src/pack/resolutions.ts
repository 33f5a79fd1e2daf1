/**
 * Builds the blob's resolution table from what the traced run resolved (see
 * format/resolution-codec.ts). For each answer it lists the guards a loader checks before
 * trusting it: the file-system facts Node consulted, so that any change that could make Node
 * answer differently (a new file or folder that would shadow the answer, an edited package.json,
 * a retargeted symlink, a deleted target) makes the loader ask Node instead.
 *
 * - Paths Node probes for a request (`x`, `x.js`, `x.json`, `x.node`, `x/package.json`,
 *   `x/index.js`, ...) keep their state: absent, a file, or a directory. Writing anything else
 *   into the app's folders (a blob, logs, uploads) changes nothing.
 * - Inside node_modules, which only package managers write, a folder's mtime stands for its
 *   whole listing: one stat instead of one per probed name.
 * - package.json files Node read keep their mtime and size; symlinked paths keep their realpath.
 *
 * Times are only the quick check. For each folder guarded by its mtime the table also lists the
 * names that mtime stood for (each probed name with the suffixes Node tried, and what each was),
 * and for each package.json its content hash (format/recheck-codec.ts): a copy that resets
 * every mtime, or a symlink re-created in node_modules, changes the times but not those facts,
 * and a loader that finds a time changed checks the facts before it gives up on an answer.
 *
 * The guards are a superset of what Node looked at: a guard that fails without need only costs
 * a fall-back to Node's own resolution.
 */
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import {
  FACT_ABSENT, FACT_DIR, FACT_FILE, FACT_UNRECORDED, GUARD_ABSENT, GUARD_DIR, GUARD_FILE, GUARD_IS_DIR, GUARD_IS_FILE, GUARD_REAL, ROOT_REQUEST, SUFFIXES,
  encodeResolutions, entryHash, type Answer, type FactState, type Guard, type GuardKind, type ListedName, type Recheck,
} from '../format/index.js';
import { Module } from '../loader/node-internals.js';
import { isRelativeRequest } from '../loader/resolve-env.js';

export interface ResolutionBuild {
  bytes: Buffer;
  answers: number;
  guards: number;
  /** Resolutions not recorded, and why (counted by reason). */
  skipped: Record<string, number>;
}

/** Names a folder's mtime stands for, each with a bit per suffix of SUFFIXES that Node tried. */
type Listed = [name: string, suffixes: number][];
const ALL_SUFFIXES = 0b1111;
const NO_SUFFIX = 0b0001;

class TableBuilder {
  readonly paths: string[] = [];
  readonly guards: Guard[] = [];
  readonly #pathIndex = new Map<string, number>();
  readonly #guardIndex = new Map<string, number>();
  /** Directory guards (by their mtime) and the names each stands for. */
  readonly #dirGuards = new Map<number, string>();
  readonly #listed = new Map<string, Map<string, number>>();
  /** Directories guarded by their mtime for no listed reason: such a guard is never rechecked. */
  readonly #opaque = new Set<string>();
  /** File guards (by their mtime and size) and the content hash that settles them. */
  readonly #contents = new Map<number, Uint8Array>();

  constructor(readonly root: string) {}

  path(abs: string): number {
    let i = this.#pathIndex.get(abs);
    if (i === undefined) {
      i = this.paths.length;
      this.paths.push(relative(this.root, abs).split(sep).join('/'));
      this.#pathIndex.set(abs, i);
    }
    return i;
  }

  /**
   * The guard for a path as it is now: absent, or (exact) a directory with its mtime / a file
   * with its mtime and size, or (not exact) merely a directory / a file. Plus its realpath if
   * that differs.
   */
  guard(abs: string, out: Set<number>, exact: boolean, listed?: Listed): void {
    if (exact) this.#list(abs, listed);
    const key = `${exact ? 'x' : 'e'}\0${abs}`;
    const known = this.#guardIndex.get(key);
    if (known !== undefined) {
      out.add(known);
      const real = this.#guardIndex.get('r\0' + abs);
      if (real !== undefined && this.guards[real]!.size !== this.path(abs)) out.add(real);
      return;
    }
    const st = statSync(abs, { throwIfNoEntry: false });
    let kind: GuardKind = GUARD_ABSENT;
    if (st?.isDirectory()) kind = exact ? GUARD_DIR : GUARD_IS_DIR;
    else if (st) kind = exact ? GUARD_FILE : GUARD_IS_FILE;
    const g = this.#add(key, { path: this.path(abs), kind, mtimeMs: st && exact ? st.mtimeMs : 0, size: kind === GUARD_FILE ? st!.size : 0 });
    out.add(g);
    if (kind === GUARD_DIR) this.#dirGuards.set(g, abs);
    if (kind === GUARD_FILE) {
      try {
        this.#contents.set(g, entryHash(readFileSync(abs)));
      } catch {
        // Unreadable now: the guard holds by its time only.
      }
    }
    if (st) {
      if (realpathSync(abs) !== abs) this.realpath(abs, out);
    }
  }

  /** The path must still exist and resolve to the same realpath (itself, for a real path). */
  realpath(abs: string, out: Set<number>): void {
    const key = 'r\0' + abs;
    let i = this.#guardIndex.get(key);
    if (i === undefined) i = this.#add(key, { path: this.path(abs), kind: GUARD_REAL, mtimeMs: 0, size: this.path(realpathSync(abs)) });
    out.add(i);
  }

  /** Records what a folder's mtime stands for (nothing said: it is opaque, never rechecked). */
  #list(dir: string, listed: Listed | undefined): void {
    if (!listed) {
      this.#opaque.add(dir);
      return;
    }
    let names = this.#listed.get(dir);
    if (!names) this.#listed.set(dir, (names = new Map()));
    for (const [name, suffixes] of listed) names.set(name, (names.get(name) ?? 0) | suffixes);
  }

  /**
   * What settles a guard whose time changed: each listed folder's names as they are now (right
   * after the guards were made), and each file guard's content hash. Paths it needs that the
   * table does not have are appended to `paths`.
   */
  recheck(): Recheck {
    const firstPath = this.paths.length;
    const listings: Recheck['listings'] = [];
    for (const [guard, dir] of this.#dirGuards) {
      const listed = this.#listed.get(dir);
      if (!listed || this.#opaque.has(dir)) continue;
      const names: ListedName[] = [];
      for (const [name, suffixes] of [...listed].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        const states: [FactState, FactState, FactState, FactState] = [FACT_UNRECORDED, FACT_UNRECORDED, FACT_UNRECORDED, FACT_UNRECORDED];
        const reals: (number | undefined)[] = [];
        SUFFIXES.forEach((suffix, k) => {
          if ((suffixes & (1 << k)) === 0) return;
          const p = join(dir, name + suffix);
          const st = statSync(p, { throwIfNoEntry: false });
          states[k] = !st ? FACT_ABSENT : st.isDirectory() ? FACT_DIR : FACT_FILE;
          if (st) {
            const real = realpathSync(p);
            if (real !== p) reals[k] = this.path(real);
          }
        });
        names.push({ name, states, ...(reals.length > 0 && { reals }) });
      }
      listings.push({ guard, names });
    }
    const contents = [...this.#contents].map(([guard, hash]) => ({ guard, hash }));
    return { paths: this.paths.slice(firstPath), listings, contents };
  }

  #add(key: string, g: Guard): number {
    const i = this.guards.length;
    this.guards.push(g);
    this.#guardIndex.set(key, i);
    return i;
  }
}

function isDir(p: string): boolean {
  return statSync(p, { throwIfNoEntry: false })?.isDirectory() === true;
}

function readJson(p: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(readFileSync(p, 'utf8')) as unknown;
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const EXTENSIONS = ['', '.js', '.json', '.node'];

/**
 * Node falls back to index.js, with a deprecation warning, when a directory's package.json
 * "main" names nothing; an answer from the table would skip the warning, so such answers are
 * left to Node.
 */
function mainIsBroken(dir: string): boolean {
  const pkg = readJson(join(dir, 'package.json'));
  if (!pkg || pkg.exports !== undefined || typeof pkg.main !== 'string' || pkg.main === '') return false;
  const base = resolve(dir, pkg.main);
  for (const ext of EXTENSIONS) if (statSync(base + ext, { throwIfNoEntry: false })?.isFile()) return false;
  for (const ext of EXTENSIONS.slice(1)) if (statSync(join(base, 'index' + ext), { throwIfNoEntry: false })?.isFile()) return false;
  return true;
}

/** Is the path inside a node_modules tree (written by package managers only)? */
function inNodeModules(p: string): boolean {
  return p.includes(`${sep}node_modules${sep}`) || p.endsWith(`${sep}node_modules`);
}

/**
 * Node looks for `base` in `dir` as it is, with each extension, and as a directory: those
 * names keep their state (inside node_modules: the folder keeps its listing).
 */
function guardNames(b: TableBuilder, dir: string, base: string, out: Set<number>): void {
  if (inNodeModules(dir)) return b.guard(dir, out, true, [[base, ALL_SUFFIXES]]);
  for (const ext of EXTENSIONS) b.guard(join(dir, base + ext), out, false);
}

/**
 * Guards Node's package scope of `dir`: the nearest package.json, and the places between where
 * a new one would take over. Returns that package.json's directory and data.
 */
function guardScope(b: TableBuilder, dir: string, out: Set<number>): { dir: string; pkg: Record<string, unknown> } | undefined {
  for (let d = dir; ; d = dirname(d)) {
    const pj = join(d, 'package.json');
    b.guard(pj, out, true);
    if (statSync(pj, { throwIfNoEntry: false })?.isFile()) {
      const pkg = readJson(pj);
      return pkg ? { dir: d, pkg } : undefined;
    }
    if (dirname(d) === d) return undefined;
  }
}

/** A path Node probed as a file (with extensions) and then as a directory (package.json main, index). */
function guardTarget(b: TableBuilder, x: string, out: Set<number>): boolean {
  guardNames(b, dirname(x), basename(x), out);
  if (!isDir(x)) return true;
  if (mainIsBroken(x)) return false;
  b.guard(join(x, 'package.json'), out, true);
  const main = readJson(join(x, 'package.json'))?.main;
  if (typeof main === 'string' && main !== '') {
    const m = resolve(x, main);
    guardNames(b, dirname(m), basename(m), out);
    if (isDir(m)) guardNames(b, m, 'index', out);
  }
  guardNames(b, x, 'index', out);
  return true;
}

function within(file: string, dir: string): boolean {
  return file === dir || file.startsWith(dir + sep);
}

type Why = string;

/** Guards the node_modules folders Node searched for a bare request, up to the one that answered. */
function guardNodeModules(b: TableBuilder, dir: string, request: string, file: string, out: Set<number>): Why | undefined {
  const parts = request.split('/');
  const nameParts = request.startsWith('@') ? 2 : 1;
  if (parts.length < nameParts || parts.slice(0, nameParts).some((p) => p === '' || p === '.' || p === '..')) return 'unusual request';
  const name = parts.slice(0, nameParts).join('/');
  const sub = parts.slice(nameParts).join('/');
  for (const nm of Module._nodeModulePaths(dir)) {
    b.guard(nm, out, true, [[parts[0]!, ALL_SUFFIXES]]);
    if (!isDir(nm)) continue;
    if (nameParts === 2) b.guard(join(nm, parts[0]!), out, true, [[parts[1]!, ALL_SUFFIXES]]);
    const pkgDir = join(nm, name);
    if (!isDir(pkgDir)) {
      // A file right in node_modules (name.js, name.json): its folder's listing is guarded.
      if (sub === '' && dirname(file) === realpathSync(dirname(pkgDir))) return undefined;
      continue;
    }
    if (!within(file, realpathSync(pkgDir))) continue;
    b.guard(pkgDir, out, true, [['package.json', NO_SUFFIX]]);
    b.guard(join(pkgDir, 'package.json'), out, true);
    if (readJson(join(pkgDir, 'package.json'))?.exports !== undefined) return undefined; // the exports map decides
    return guardTarget(b, sub === '' ? pkgDir : join(pkgDir, sub), out) ? undefined : 'broken main';
  }
  return 'not found in node_modules (a global folder)';
}

function guardsFor(b: TableBuilder, dir: string, request: string, file: string, esm: boolean): Set<number> | Why {
  const out = new Set<number>();
  if (isRelativeRequest(request) || isAbsolute(request)) {
    // An import names its file exactly (no extensions, no directory index): it must only still be there.
    if (!esm && !guardTarget(b, resolve(dir, request), out)) return 'broken main';
  } else if (request.startsWith('#')) {
    const scope = guardScope(b, dir, out);
    // "#x" mapped to another package would need that package's lookup guarded too: left to Node.
    if (!scope || !within(file, scope.dir)) return 'imports outside the package';
  } else {
    const scope = guardScope(b, dir, out);
    const name = scope?.pkg.name;
    if (scope && scope.pkg.exports !== undefined && typeof name === 'string' && (request === name || request.startsWith(name + '/'))) {
      // A self-reference: Node tries it before any node_modules folder.
      if (!within(file, scope.dir)) return 'self-reference outside the package';
    } else {
      const why = guardNodeModules(b, dir, request, file, out);
      if (why) return why;
    }
  }
  // The answer must still exist. (Its content does not change the answer, and the loader checks
  // it anyway before serving the module.)
  if (inNodeModules(file)) b.guard(dirname(file), out, true, [[basename(file), NO_SUFFIX]]);
  else b.realpath(file, out); // and is still no symlink, nor below one (Node answers realpaths)
  return out;
}

/** The answers (with their guards) for a list of resolutions, in the order they were made. */
function answersFor(b: TableBuilder, root: string, resolutions: readonly [string, string, string][], skipped: Record<string, number>, esm: boolean): Answer[] {
  const made: { dir: string; answer: Answer }[] = [];
  const seen = new Set<string>();
  for (const [dir, request, file] of resolutions) {
    // Several traces (entries, worker threads) and modules of one directory make the same request.
    const key = `${dir}\0${request}`;
    if (seen.has(key)) continue;
    seen.add(key);
    let guards: Set<number> | Why;
    try {
      guards = statSync(file, { throwIfNoEntry: false })?.isFile() ? guardsFor(b, dir, request, file, esm) : 'target is gone';
    } catch (error) {
      guards = `error: ${(error as NodeJS.ErrnoException).code ?? 'unknown'}`;
    }
    if (typeof guards === 'string') {
      skipped[guards] = (skipped[guards] ?? 0) + 1;
      continue;
    }
    // An absolute request below the root (Next.js requires its own files by absolute path) is
    // recorded relative to the root, so the answer survives a move of the app.
    const recorded = !esm && isAbsolute(request) && within(request, root) && request !== root ? ROOT_REQUEST + relative(root, request).split(sep).join('/') : request;
    made.push({ dir, answer: { dir: b.path(dir), request: recorded, file: b.path(file), guards: [...guards].sort((x, y) => x - y) } });
  }
  return made
    .sort((x, y) => (x.dir < y.dir ? -1 : x.dir > y.dir ? 1 : x.answer.request < y.answer.request ? -1 : x.answer.request > y.answer.request ? 1 : 0))
    .map((m) => m.answer);
}

export interface Resolutions {
  /** What require() resolved to: [requesting module's directory, request, filename]. */
  require: readonly [string, string, string][];
  /** What `import` resolved to, the same way, under `importConditions`. */
  import?: readonly [string, string, string][];
  importConditions?: string;
}

/**
 * Builds and encodes the table for answers made under `env`; files outside `root` are kept
 * relative too. The guards of an `import` answer are those of a require() of the same request
 * (for a package: the node_modules folders searched, the package.json whose "exports" decide),
 * but a relative or absolute import names its file exactly: only that file must still be there.
 */
export function buildResolutionTable(root: string, env: string, resolutions: Resolutions): ResolutionBuild {
  const b = new TableBuilder(root);
  const skipped: Record<string, number> = {};
  // Guards are numbered as the traced run first needed them (the resolutions come in the order
  // it made them), so a loader statting them in index order works ahead of its own requires.
  const answers = answersFor(b, root, resolutions.require, skipped, false);
  const esmAnswers = resolutions.import?.length ? answersFor(b, root, resolutions.import, skipped, true) : [];
  const paths = b.paths.length;
  const recheck = b.recheck(); // adds the paths it names after the table's own
  const bytes = encodeResolutions({
    env, paths: b.paths.slice(0, paths), guards: b.guards, answers, recheck,
    ...(esmAnswers.length > 0 && { esmAnswers, esmConditions: resolutions.importConditions ?? '' }),
  });
  return { bytes, answers: answers.length + esmAnswers.length, guards: b.guards.length, skipped };
}
