/**
 * The resolution environment: everything outside the file system that changes what
 * `require()` resolves to. The packer stores it with the resolution table; the loader uses the
 * table only in the same environment (same Node major.minor, export conditions, symlink
 * handling, addons, require(esm), NODE_PATH), and otherwise lets Node resolve everything.
 */
import { isBuiltin } from 'node:module';
import { Module } from './node-internals.js';

/** Flags that change resolution: conditions, symlink handling, addons, require(esm), experiments. */
const RELEVANT = /^--(?:no-)?(?:conditions|preserve-symlinks|preserve-symlinks-main|addons|require-module|experimental-[a-z-]+)(?:=|$)/;

function flagTokens(): string[] {
  const tokens = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean)];
  const out: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === '-C' || t === '--conditions') out.push(`--conditions=${tokens[++i] ?? ''}`);
    else if (t.startsWith('-C=')) out.push(`--conditions=${t.slice(3)}`);
    else if (RELEVANT.test(t)) out.push(t);
  }
  return out.sort();
}

export function resolutionEnvironment(): string {
  const [major, minor] = process.versions.node.split('.');
  return JSON.stringify({
    node: `${major}.${minor}`,
    requireModule: (process.features as { require_module?: boolean }).require_module === true,
    flags: flagTokens(),
    preserveSymlinks: process.env.NODE_PRESERVE_SYMLINKS ?? '',
    nodePath: process.env.NODE_PATH ?? '',
  });
}

/**
 * The conditions Node resolves `require()` under (its getCjsConditions): 'require', 'node',
 * 'node-addons' unless --no-addons, 'module-sync' where require(esm) is on, then --conditions.
 */
function defaultCjsConditions(): string[] {
  const flags = flagTokens();
  return [
    'require',
    'node',
    ...(flags.includes('--no-addons') ? [] : ['node-addons']),
    ...((process.features as { require_module?: boolean }).require_module === true ? ['module-sync'] : []),
    ...flags.filter((f) => f.startsWith('--conditions=')).map((f) => f.slice('--conditions='.length)),
  ];
}

let cjsConditions: Set<string> | undefined;

/**
 * Is this `conditions` (a Set or an array) exactly the set require() resolves under? Node's is
 * a Set of its internal realm (no `instanceof Set` here): anything with `has` and `size`.
 */
function defaultConditions(conditions: unknown): boolean {
  const want = (cjsConditions ??= new Set(defaultCjsConditions()));
  if (Array.isArray(conditions)) return conditions.length === want.size && conditions.every((c) => want.has(c as string));
  const set = conditions as { has?: unknown; size?: unknown } | null;
  if (typeof set !== 'object' || set === null || typeof set.has !== 'function' || set.size !== want.size) return false;
  for (const c of want) if (!(set as Set<string>).has(c)) return false;
  return true;
}

/**
 * Options `require.resolve` passes that leave resolution as plain `require` does it. With module
 * hooks registered (Node 22.15+), Node passes require()'s own conditions explicitly: those count
 * as plain too.
 */
export function plainOptions(options: unknown): boolean {
  if (options === undefined) return true;
  if (typeof options !== 'object' || options === null) return false;
  const o = options as { paths?: unknown; conditions?: unknown };
  return o.paths === undefined && (o.conditions === undefined || defaultConditions(o.conditions));
}

/** A key for the conditions an `import` is resolved under (the hooks' `context.conditions`). */
export function conditionsKey(conditions: unknown): string | undefined {
  return Array.isArray(conditions) && conditions.every((c) => typeof c === 'string') ? conditions.join(',') : undefined;
}

/**
 * A specifier whose ES module resolution the table may hold: relative, absolute, a package or
 * an import map ("#x"), without URL syntax the CommonJS-style guards do not model (percent
 * escapes, queries, fragments, schemes).
 */
export function tableImportSpecifier(specifier: unknown): specifier is string {
  if (!tableRequest(specifier) || /[%?\\]/.test(specifier) || specifier.includes('#', 1)) return false;
  return !/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(specifier);
}

export function isRelativeRequest(request: string): boolean {
  return request === '.' || request === '..' || request.startsWith('./') || request.startsWith('../');
}

/** A request the table may hold: a file path or package, never a builtin. */
export function tableRequest(request: unknown): request is string {
  return typeof request === 'string' && request.length > 0 && !request.includes('\0') && !isBuiltin(request);
}

const expectedPaths = new Map<string, string[]>();

/** Are a module's lookup paths still the ones Node gave it (nobody pushed onto `module.paths`)? */
export function defaultLookupPaths(dir: string, paths: unknown): boolean {
  if (!Array.isArray(paths)) return false;
  let expected = expectedPaths.get(dir);
  if (expected === undefined) {
    expected = Module._nodeModulePaths(dir);
    expectedPaths.set(dir, expected);
  }
  if (paths.length !== expected.length) return false;
  for (let i = 0; i < paths.length; i++) if (paths[i] !== expected[i]) return false;
  return true;
}
