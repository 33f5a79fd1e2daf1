/**
 * Paging hints for a mapped blob: which range a worker reads at startup, and asking the kernel
 * to read it ahead while leaving the rest to be faulted in one module at a time, if ever.
 */
import type { EntryTable, Header } from '../format/index.js';
import type { Backend } from './backend.js';

/**
 * The byte range holding the sections of modules the traced run loaded (the packer lays them
 * out first, in load order): what a worker reads at startup.
 */
export function startupRange(header: Header, table: EntryTable): { start: number; end: number } {
  const start = header.indexOffset + header.indexLength;
  let end = start;
  for (let i = 0; i < table.length; i++) {
    if (table.order(i) < 0) continue;
    end = Math.max(end, table.sourceOffset(i) + table.sourceLength(i), table.cacheOffset(i) + table.cacheLength(i));
  }
  return { start, end };
}

/** MADV_WILLNEED on the startup range, MADV_RANDOM on the rest (mmap only). */
export function prefetchStartup(backend: Backend, range: { start: number; end: number }): void {
  if (backend.name !== 'mmap') return;
  const { start, end } = range;
  if (end > start) backend.advise(start, end - start, 'willneed');
  if (backend.bytes.byteLength > end) backend.advise(end, backend.bytes.byteLength - end, 'random');
}
