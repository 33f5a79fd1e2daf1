/**
 * The parts of Node's module loaders codeblob uses, fetched and typed in one place: the
 * CommonJS loader's `Module` (as modules see it, not a copy) with the private fields Node itself
 * documents for loader authors (`_extensions`, `_compile`, `_resolveFilename`,
 * `_nodeModulePaths`), and the in-thread module hooks (`module.registerHooks`, Node 22.15+ /
 * 23.5+). Nothing else in codeblob reaches into `node:module`.
 */
import { createRequire } from 'node:module';

/** A CommonJS module as Node's loader makes it (the fields codeblob reads). */
export interface NodeModuleLike {
  id: string;
  filename: string | null;
  exports: unknown;
  path?: unknown;
  paths?: unknown;
}

export type CompileFn = (this: NodeModuleLike, content: string, filename: string, format?: string) => unknown;
export type ExtensionHandler = (module: NodeModuleLike, filename: string) => void;
export type ResolveFilename = (this: unknown, request: unknown, parent: unknown, isMain: unknown, options: unknown) => unknown;

export interface CjsLoader {
  prototype: { _compile: CompileFn };
  _extensions: Record<string, ExtensionHandler>;
  _resolveFilename: ResolveFilename;
  _nodeModulePaths(dir: string): string[];
}

export interface HookContext {
  parentURL?: string;
  format?: string | null;
  conditions?: readonly string[];
}
export interface HookResult {
  url?: string;
  format?: string | null;
  source?: unknown;
  shortCircuit?: boolean;
}
export interface ModuleHooks {
  resolve?: (specifier: string, context: HookContext, next: (specifier: string, context?: HookContext) => HookResult) => HookResult;
  load?: (url: string, context: HookContext, next: (url: string, context?: HookContext) => HookResult) => HookResult;
}

const nodeModule = createRequire(import.meta.url)('node:module') as CjsLoader & {
  registerHooks?: (hooks: ModuleHooks) => unknown;
};

/** The CommonJS loader's Module. */
export const Module: CjsLoader = nodeModule;

/** `module.registerHooks`, or undefined before Node 22.15 / 23.5. */
export const registerHooks: ((hooks: ModuleHooks) => unknown) | undefined =
  typeof nodeModule.registerHooks === 'function' ? nodeModule.registerHooks.bind(nodeModule) : undefined;

/** require() of an ES module works (Node 20.19+, 22.12+). */
export const requireEsm = (process.features as { require_module?: boolean }).require_module === true;

/**
 * Whether this is the main thread, and this thread's id, without loading `worker_threads` where
 * nothing else did: in a main thread it brings Node's stream machinery (0.15 MiB of heap in every
 * process). Node's own bootstrap of a worker thread loads it, so there it costs nothing.
 */
export function currentThread(): { isMainThread: boolean; threadId: number } {
  return (thread ??= findThread());
}

let thread: { isMainThread: boolean; threadId: number } | undefined;

function findThread(): { isMainThread: boolean; threadId: number } {
  const list = (process as { moduleLoadList?: unknown }).moduleLoadList;
  if (Array.isArray(list) && !list.includes('NativeModule worker_threads')) return { isMainThread: true, threadId: 0 };
  const { isMainThread, threadId } = createRequire(import.meta.url)('node:worker_threads') as typeof import('node:worker_threads');
  return { isMainThread, threadId };
}
