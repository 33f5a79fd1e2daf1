/**
 * V8 heap figures per isolate, so a benchmark can say where a worker's bytes go: the calling
 * isolate (main thread or a worker thread), or a worker thread seen from its parent.
 */
import type { Session } from 'node:inspector';
import { createRequire } from 'node:module';
import { getHeapSpaceStatistics, getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Worker } from 'node:worker_threads';
import { threadId } from 'node:worker_threads';

export interface IsolateHeap {
  threadId: number;
  /** Committed heap (what the isolate holds from the OS). */
  totalHeapSize: number;
  usedHeapSize: number;
  /** Memory outside the heap that V8 accounts for (ArrayBuffers, external strings). */
  externalMemory: number;
  mallocedMemory: number;
  /** Committed and used bytes per heap space (new_space, old_space, code_space, ...). */
  spaces: Record<string, { size: number; used: number }>;
}

/** The heap of the isolate this runs in. */
export function heapStatistics(): IsolateHeap {
  const h = getHeapStatistics();
  return {
    threadId,
    totalHeapSize: h.total_heap_size,
    usedHeapSize: h.used_heap_size,
    externalMemory: h.external_memory,
    mallocedMemory: h.malloced_memory,
    spaces: Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }])),
  };
}

/**
 * A worker thread's heap, read from its parent (Node 22.16+/24 have `worker.getHeapStatistics`);
 * undefined where Node cannot (then ask the worker to call heapStatistics() and post it).
 */
export async function workerHeapStatistics(worker: Worker): Promise<Omit<IsolateHeap, 'spaces'> | undefined> {
  const get = (worker as unknown as { getHeapStatistics?: () => Promise<ReturnType<typeof getHeapStatistics>> }).getHeapStatistics;
  if (typeof get !== 'function') return undefined;
  const h = await get.call(worker);
  return {
    threadId: worker.threadId,
    totalHeapSize: h.total_heap_size,
    usedHeapSize: h.used_heap_size,
    externalMemory: h.external_memory,
    mallocedMemory: h.malloced_memory,
  };
}

/** The bytes the young generation holds (physical: the pages it has touched). */
function youngBytes(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.physical_space_size ?? 0;
}

/**
 * Gives back, now, what V8's memory reducer gives back by itself once an isolate has idled for
 * a while: the young generation and the free heap pages (a memory-reducing full GC; a regular
 * full GC on V8 before 12, Node 20, where settleHeapAsync() gives them back). The reducer runs
 * at different times in different processes (measured: 10–20 s after start in one worker, 105 s
 * in another), so figures taken "3 s after ready" compare luck, not apps: call this in every
 * process being compared, then measure.
 *
 * For test harnesses and benchmarks, after loading: it turns on `--expose-gc` at run time, and
 * a changed V8 flag makes V8 reject every code cache compiled after it (codeblob then compiles
 * from source). Returns the bytes the young generation still holds.
 */
export function settleHeap(): number {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (options?: object) => void;
  // V8 before 12 takes the options object for something else and collects next to nothing.
  if (Number(process.versions.v8.split('.')[0]) >= 12) gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  else gc();
  return youngBytes();
}

/**
 * settleHeap() on every Node, without changing a V8 flag: V8's low-memory notification through
 * its inspector (`HeapProfiler.collectGarbage`, in this isolate: main thread or worker thread).
 * On Node 20 this is the only way to it (measured there: new space 13.5 -> 0.26 MiB, where a
 * regular full GC keeps it), and code caches compiled afterwards stay usable. Where Node was built
 * without the inspector, it falls back to settleHeap(). Resolves with the bytes the young
 * generation still holds afterwards.
 */
export function settleHeapAsync(): Promise<number> {
  let session: Session;
  try {
    // Loaded here, not with codeblob: only a harness that settles needs it.
    const { Session: InspectorSession } = createRequire(import.meta.url)('node:inspector') as typeof import('node:inspector');
    session = new InspectorSession();
    session.connect();
  } catch {
    return Promise.resolve(settleHeap());
  }
  return new Promise((resolve, reject) => {
    session.post('HeapProfiler.collectGarbage', (error) => {
      // Disconnecting inside the callback hangs Node 20: on the next turn.
      setImmediate(() => {
        session.disconnect();
        if (error) reject(error);
        else resolve(youngBytes());
      });
    });
  });
}
