/**
 * ES modules from the blob, where Node has in-thread synchronous hooks (`module.registerHooks`,
 * Node 22.15+ / 23.5+). The hook hands Node the blob's source string for `file:` URLs of ESM
 * entries that are still fresh; everything else goes to the next hook. ESM has no code cache
 * path in Node, so only the source comes from the blob.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { BlobStore } from '../store/store.js';
import { blobModified, freshText } from './serve.js';
import type { LoaderStatus } from './status.js';

interface LoadResult {
  format?: string | null;
  source?: unknown;
  shortCircuit?: boolean;
}
type NextLoad = (url: string, context?: unknown) => LoadResult;
type RegisterHooks = (hooks: { load: (url: string, context: { format?: string | null }, next: NextLoad) => LoadResult }) => unknown;

/** Installs the ESM hook, or returns why it cannot be (then ES modules load from disk). */
export function installEsmHooks(store: BlobStore, state: LoaderStatus, debug: (msg: string) => void): string | undefined {
  const registerHooks = (createRequire(import.meta.url)('node:module') as { registerHooks?: RegisterHooks }).registerHooks;
  if (typeof registerHooks !== 'function') {
    return `Node ${process.version} has no module.registerHooks (22.15+/23.5+): ES modules load from disk`;
  }
  const c = state.counters;
  const ctx = { store, state, debug };
  registerHooks({
    load(url, context, next) {
      if (!url.startsWith('file:')) return next(url, context);
      let filename: string;
      try {
        filename = fileURLToPath(url);
      } catch {
        return next(url, context);
      }
      if (blobModified(ctx)) return next(url, context);
      const entry = store.get(filename);
      if (!entry || entry.kind !== 'esm') return next(url, context);
      if (context.format && context.format !== 'module') return next(url, context);
      const source = freshText(ctx, entry, filename);
      if (source === undefined) return next(url, context);
      c.esmHits++;
      return { format: 'module', source, shortCircuit: true };
    },
  });
  return undefined;
}
