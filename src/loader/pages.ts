/**
 * Once a loading burst is idle, drop the blob's pages from this process's page tables: V8 has
 * deserialized the caches into its heap, and the source pages were mostly read only for their
 * hash check. They stay in the page cache (one copy, shared by every worker); V8 faults back in
 * only the source it reads again (lazily compiled functions, stack traces). One call for the
 * whole file per burst costs far less than one per module. The background hash check stops
 * then too: whatever it has not reached is checked on first use.
 */
import type { ServeContext } from './serve.js';

export function releasePagesWhenIdle({ store, config, burst }: ServeContext): void {
  if (store.backend !== 'mmap' || config.keepPages) {
    burst.on('idle', () => store.closed || store.stopVerifyAhead());
    return;
  }
  burst.on('idle', () => {
    if (store.closed) return;
    store.stopVerifyAhead();
    store.advise('dontneed');
    // The check's thread may still be finishing a section: release once more when it has ended,
    // so no page it faulted in stays.
    if (store.verifyAheadProgress()?.running) releaseAfterCheck(50);
  });

  function releaseAfterCheck(tries: number): void {
    setTimeout(() => {
      if (store.closed) return;
      if (store.verifyAheadProgress()?.running && tries > 1) return releaseAfterCheck(tries - 1);
      store.advise('dontneed');
    }, 5).unref();
  }
}
