/**
 * What the tracer (trace.ts, inside the traced app) and the packer (pack.ts) exchange: the
 * configuration, the results each thread writes, and the progress lines. Types and names only:
 * importing trace.ts itself would install the tracer.
 */

export interface TraceConfig {
  /** Where the main thread writes its result (msgpack); worker threads append to `threadFile(out, id)`. */
  out: string;
  /**
   * > 0: finish this long after start even if the app still runs. 0: wait for the app to exit.
   * -1 (auto): wait for exit, or finish once the app listens on a server and no module has
   * loaded for `quietMs`.
   */
  settleMs: number;
  quietMs: number;
  /** A script to import once the app has settled; an exported default function is called and awaited. */
  train?: string;
  /** Files to compile without running (absolute paths). */
  include: string[];
  /** A file descriptor to write progress lines to, if any (main thread only). */
  progressFd?: number;
}

export interface TracedModule {
  filename: string;
  kind: 'cjs' | 'esm' | 'json' | 'asset';
  /** Text as compiled (cjs) or loaded (esm, json); absent for assets. */
  text?: string;
  /** `text` is the file's TypeScript as this Node stripped it (with the loader's sourceURL tail). */
  typescript?: boolean;
  /** With `typescript`: the hash (entryHash) of the TypeScript that was stripped, as UTF-8; the file must still hash to it. */
  strippedFrom?: Uint8Array;
  cache?: Uint8Array;
  /** First-load order within its thread; -1 for included files. */
  order: number;
  /** Why an included file has no cache, if it failed to compile. */
  warning?: string;
  /** An ES module first loaded through require(esm), not `import` (Entry.requiredOnly). */
  requiredOnly?: boolean;
}

export interface TraceResult {
  v8Tag: number;
  /** The app changed V8 flags while traced: no caches were kept (they would be rejected). */
  flagsChanged?: boolean;
  nodeVersion: string;
  /** The traced Node's `process.features.typescript` ('strip', 'transform'; false: no type stripping). */
  typescript?: string | false;
  modules: TracedModule[];
  /** Every plain resolution the run made: [requesting module's directory, request, filename]. */
  resolutions: [string, string, string][];
  /** Every plain `import` resolution: [importing module's directory, specifier, filename]. */
  esmResolutions?: [string, string, string][];
  /** The conditions those were resolved under (comma-joined). */
  esmConditions?: string;
  /** resolutionEnvironment() of the traced thread. */
  resolveEnv: string;
  exitCode: number;
  /** Modules (and their resolutions) left out because only the training script loaded them. */
  trainingOnly?: number;
}

/** Progress lines the main thread writes to `progressFd`. */
export type TraceProgress = `modules ${number}` | 'listening' | 'train' | 'train-failed';

/** The file a worker thread appends its results to: length-prefixed msgpack TraceResult frames. */
export function threadFile(out: string, id: number): string {
  return `${out}.thread-${id}`;
}
