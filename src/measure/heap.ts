/**
 * V8 heap figures per isolate, so a benchmark can say where a worker's bytes go: the calling
 * isolate (main thread or a worker thread), or a worker thread seen from its parent.
 */
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
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
