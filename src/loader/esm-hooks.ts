/**
 * ES modules from the blob, where Node has in-thread synchronous hooks (`module.registerHooks`,
 * Node 22.15+ / 23.5+). The hook hands Node the blob's source string for `file:` URLs of ESM
 * entries that are still fresh; everything else goes to the next hook. ESM has no code cache
 * path in Node, so only the source comes from the blob.
 */
import { fileURLToPath } from 'node:url';
import { registerHooks } from './node-internals.js';
import { blobModified, freshText, type ServeContext } from './serve.js';

/** Installs the ESM hook, or returns why it cannot be (then ES modules load from disk). */
export function installEsmHooks(ctx: ServeContext): string | undefined {
  if (!registerHooks) {
    return `Node ${process.version} has no module.registerHooks (22.15+/23.5+): ES modules load from disk`;
  }
  const { store, state } = ctx;
  // A hook is not free: Node then runs every load of the thread, require() too, through its hook
  // chain (and keeps the machinery for it). Without ES modules in the blob it has nothing to do.
  if (!store.entries().some((e) => e.kind === 'esm')) return 'the blob has no ES modules';
  registerHooks({
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
      if (!entry || entry.kind !== 'esm') return next(url, context);
      if (context.format && context.format !== 'module') return next(url, context);
      const source = freshText(ctx, entry, filename);
      if (source === undefined) return next(url, context);
      state.counters.esmHits++;
      return { format: 'module', source, shortCircuit: true };
    },
  });
  return undefined;
}
