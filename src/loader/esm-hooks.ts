/**
 * ES modules from the blob, where Node has in-thread synchronous hooks (`module.registerHooks`,
 * Node 22.15+ / 23.5+): a resolve hook answering `import` from the blob's resolution table
 * (resolve-cache.ts), and a load hook handing Node the blob's source string for `file:` URLs of
 * ESM entries that are still fresh. Everything else goes to the next hook. ESM has no code cache
 * path in Node, so only the source comes from the blob.
 */
import { fileURLToPath } from 'node:url';
import type { Entry, EntryTable } from '../format/index.js';
import { registerHooks, type HookContext, type HookResult, type ModuleHooks } from './node-internals.js';
import type { ImportResolver } from './resolve-cache.js';
import { blobModified, freshText, type ServeContext } from './serve.js';
import { asLoadedAs, strippingAsPacked } from './typescript.js';

type NextLoad = (url: string, context?: HookContext) => HookResult;

/** Installs the ESM hooks, or returns why they cannot be (then ES modules load from disk). */
export function installEsmHooks(ctx: ServeContext, resolveImport: ImportResolver | undefined): string | undefined {
  if (!registerHooks) {
    return `Node ${process.version} has no module.registerHooks (22.15+/23.5+): ES modules load from disk`;
  }
  const { store, state } = ctx;
  // A hook is not free: Node then runs every load of the thread, require() too, through its hook
  // chain (and keeps the machinery for it): on the service corpus, Node 24, 26% more load time
  // and 6.6 MiB more anonymous memory. Without ES modules reached through `import` it has nothing
  // to do: those only require()d (require(esm)) are served by the CommonJS path (cjs-hooks.ts).
  // A CommonJS TypeScript module may be imported: Node would strip it to read its exports.
  const { imported, esm } = esmNeeds(store.table);
  if (!imported) {
    return esm
      ? 'the blob\'s ES modules were all loaded by require() when traced (served without module hooks)'
      : 'the blob has no ES modules';
  }
  const typescript = strippingAsPacked(store.header.nodeVersion);
  /**
   * An `import` of a TypeScript module the blob has stripped: handed to Node as JavaScript, so
   * its stripper is not loaded. ES modules (`module-typescript`) load from the source; a
   * CommonJS one (`commonjs-typescript`) is lexed from it, and run by the CommonJS hooks (Node
   * 24+), or compiled from it (Node 22). A typeless `.ts` (format still unknown) is Node's to detect.
   */
  function loadTypeScript(entry: Entry, filename: string, url: string, context: HookContext, next: NextLoad): HookResult {
    const esm = entry.kind === 'esm';
    if (!typescript || !context.conditions?.includes('import') || context.format !== (esm ? 'module-typescript' : 'commonjs-typescript')) return next(url, context);
    const stored = freshText(ctx, entry, filename);
    const source = stored === undefined ? undefined : asLoadedAs(stored, filename, 'import');
    if (source === undefined) return next(url, context);
    if (esm) state.counters.esmHits++;
    return { format: esm ? 'module' : 'commonjs', source, shortCircuit: true };
  }
  const hooks: ModuleHooks = {
    load(url, context, next) {
      if (!url.startsWith('file:')) return next(url, context);
      let filename: string;
      try {
        filename = fileURLToPath(url);
      } catch {
        return next(url, context);
      }
      ctx.burst.noteLoad();
      if (blobModified(ctx)) return next(url, context);
      const entry = store.get(filename);
      if (entry?.typescript) return loadTypeScript(entry, filename, url, context, next);
      if (!entry || entry.kind !== 'esm') return next(url, context);
      if (context.format && context.format !== 'module') return next(url, context);
      const source = freshText(ctx, entry, filename);
      if (source === undefined) return next(url, context);
      state.counters.esmHits++;
      return { format: 'module', source, shortCircuit: true };
    },
  };
  if (resolveImport) {
    let extraFrames: number | undefined;
    hooks.resolve = function codeblobResolveImport(specifier, context, next) {
      // An import from a file (require() calls come with require's conditions: Node's own path,
      // answered in front of Module._resolveFilename instead).
      const parentURL = context.parentURL;
      if (parentURL !== undefined && parentURL.startsWith('file:') && context.conditions?.includes('import') && !blobModified(ctx)) {
        // Only imports of ES modules: for anything else Node's answer carries a format that
        // decides how its ES module loader goes on (CommonJS through Module._load, JSON ...).
        const answer = resolveImport(specifier, parentURL, context.conditions);
        const entry = answer && store.get(answer.file);
        if (entry?.kind === 'esm' && (!entry.typescript || typescript)) {
          // Node's own format for it: its load hook (and Node, for a stale file) goes on from that.
          return { url: answer!.url, format: entry.typescript ? 'module-typescript' : 'module', shortCircuit: true };
        }
      }
      // Node's answer, with room in an error's stack for the frames of the hook chain this hook
      // put there, so that an error (ERR_MODULE_NOT_FOUND ...) shows as many frames of the app
      // as without codeblob. (require() calls through the chain get theirs in front of
      // Module._resolveFilename.) No catch: an error rethrown here would name this function as
      // where it was thrown, and asking again would run the hooks below this one twice.
      const limit = Error.stackTraceLimit;
      if (typeof limit !== 'number' || !context.conditions?.includes('import')) return next(specifier, context);
      Error.stackTraceLimit = limit + (extraFrames ??= importHookFrames());
      try {
        return next(specifier, context);
      } finally {
        Error.stackTraceLimit = limit;
      }
    };
  }
  registerHooks(hooks);
  return undefined;
}

/**
 * Frames a resolve error has because of this hook: this one and the step into the next hook,
 * and, when no hook called this one, the chain's own (resolveWithHooks and its first step), which
 * Node skips without hooks (looked at once, at the first import: a hook registered later, or one
 * registered before codeblob's, gives an error two frames more than without codeblob, never less). (Node's frame names; on a Node that names them otherwise this finds
 * fewer, and the error keeps fewer frames of the app, as before.)
 */
// Node 22 resolves without hooks straight from ModuleLoader.resolve; with hooks it goes through
// resolveSync and #resolveAndMaybeBlockOnLoaderThread too (24 and later take those two always).
const chainOnlyFrames = process.versions.node.startsWith('22.') ? 2 : 0;

function importHookFrames(): number {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 64;
  const stack = new Error().stack ?? '';
  Error.stackTraceLimit = limit;
  const lines = stack.split('\n').slice(2); // past "Error" and this function
  const at = lines.findIndex((l) => / at codeblobResolveImport /.test(l));
  if (at < 0) return 0;
  let machinery = 0;
  for (const line of lines.slice(at + 1)) {
    if (/ at nextStep \(node:internal\//.test(line)) machinery++;
    else if (/ at resolveWithHooks \(node:internal\//.test(line)) return 2 + machinery + 1 + chainOnlyFrames;
    else return 2; // another hook called this one: the chain is there without codeblob too
  }
  return 2;
}

/**
 * Whether the blob has a module an `import` may load (an ES module not only require()d, or a
 * CommonJS TypeScript module), and whether it has ES modules at all.
 */
function esmNeeds(table: EntryTable): { imported: boolean; esm: boolean } {
  let esm = false;
  for (let i = 0; i < table.length; i++) {
    const kind = table.kind(i);
    if (kind === 'esm') esm = true;
    if ((kind === 'esm' && !table.requiredOnly(i)) || (kind === 'cjs' && table.typescript(i))) return { imported: true, esm };
  }
  return { imported: false, esm };
}
