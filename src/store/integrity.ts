/**
 * Which sections of a blob passed their hash check: the state machine behind "nothing corrupt
 * ever reaches V8". Every entry has two sections (source, cache); each is unchecked, sound or
 * corrupt. A section is hashed the first time it is handed out, unless a background job of the
 * addon (verifyAhead) hashed it first; a failed check is remembered, so the entry is refused
 * from then on and counted once.
 */
import { codeblobError } from '../errors.js';
import { ENTRY_HASH_BYTES, entryHash, type Entry } from '../format/index.js';
import { ITEM_DONE, JobStatus } from '../native/jobs.js';
import type { Backend } from './backend.js';

export type Section = 'source' | 'cache';

export interface VerifyProblem {
  key: string;
  section: Section;
  message: string;
}

const OK: Record<Section, number> = { source: 1, cache: 2 };
const BAD: Record<Section, number> = { source: 4, cache: 8 };

function range(entry: Entry, section: Section): [offset: number, length: number, hash: Uint8Array] {
  return section === 'source' ? [entry.sourceOffset, entry.sourceLength, entry.sourceHash] : [entry.cacheOffset, entry.cacheLength, entry.cacheHash!];
}

/** The background check: its status bytes, and per entry and section the item it holds (-1: none). */
interface Ahead {
  job: JobStatus;
  items: Int32Array;
}

export class SectionChecks {
  readonly #entries: readonly Entry[];
  readonly #flags: Uint8Array;
  #ahead: Ahead | undefined;
  #corrupt = 0;
  #verifiedAhead = 0;

  constructor(entries: readonly Entry[], trusted: boolean) {
    this.#entries = entries;
    this.#flags = new Uint8Array(entries.length);
    if (trusted) this.trustAll();
  }

  /** Entries found corrupt (each counted once). */
  get corrupt(): number {
    return this.#corrupt;
  }

  /** Sections the background job had checked before they were needed. */
  get verifiedAhead(): number {
    return this.#verifiedAhead;
  }

  /** Every section counts as sound (a trusted file, a pinned generation). */
  trustAll(): void {
    this.#flags.fill(OK.source | OK.cache);
  }

  /**
   * Makes sure entry i's section is sound before it is handed out: hashes it unless it was
   * checked already (here or by the background job). Throws ERR_CODEBLOB_CORRUPT_ENTRY.
   */
  check(i: number, section: Section, bytes: Uint8Array, where: string): void {
    const flags = this.#flags[i]!;
    if ((flags & OK[section]) !== 0) return;
    if ((flags & BAD[section]) === 0) {
      const item = this.#ahead ? this.#ahead.items[2 * i + (section === 'source' ? 0 : 1)]! : -1;
      if (item >= 0) {
        // Sound ahead: done. Otherwise hash it here (the job skips it); a mismatch found ahead is
        // hashed again here, and refused below.
        if (this.#ahead!.job.takeUnlessDone(item) === ITEM_DONE) {
          this.#flags[i]! |= OK[section];
          this.#verifiedAhead++;
          return;
        }
      }
      const entry = this.#entries[i]!;
      const [offset, length, expected] = range(entry, section);
      const sound = entryHash(bytes.subarray(offset, offset + length)).equals(expected);
      // Worker threads of this process share the job (see startAhead): tell them too.
      if (item >= 0) this.#ahead!.job.settle(item, sound);
      if (sound) {
        this.#flags[i]! |= OK[section];
        return;
      }
      this.#markBad(i, section);
    }
    throw codeblobError('ERR_CODEBLOB_CORRUPT_ENTRY', `${section} of "${this.#entries[i]!.key}" in ${where}`);
  }

  /** Hashes every section; returns the problems (none for a sound blob). */
  checkAll(bytes: Uint8Array): VerifyProblem[] {
    const problems: VerifyProblem[] = [];
    this.#entries.forEach((e, i) => {
      for (const section of ['source', 'cache'] as const) {
        if (section === 'cache' && e.cacheLength === 0) continue;
        const [offset, length, expected] = range(e, section);
        if (entryHash(bytes.subarray(offset, offset + length)).equals(expected)) {
          this.#flags[i]! |= OK[section];
        } else {
          problems.push({ key: e.key, section, message: `${section} hash mismatch` });
          this.#markBad(i, section);
        }
      }
    });
    return problems;
  }

  /**
   * Starts hashing the startup range (the sections of the modules the traced run loaded, in
   * file order) on a background thread of the backend; see BlobStore.verifyAhead.
   */
  startAhead(backend: Backend, withCaches: boolean, identity: string): boolean {
    if (this.#ahead) return true;
    const sections: { offset: number; length: number; hash: Uint8Array; slot: number }[] = [];
    this.#entries.forEach((e, i) => {
      if (e.order < 0) return;
      const flags = this.#flags[i]!;
      if ((flags & (OK.source | BAD.source)) === 0) sections.push({ offset: e.sourceOffset, length: e.sourceLength, hash: e.sourceHash, slot: 2 * i });
      if (withCaches && e.cacheLength > 0 && (flags & (OK.cache | BAD.cache)) === 0) {
        sections.push({ offset: e.cacheOffset, length: e.cacheLength, hash: e.cacheHash!, slot: 2 * i + 1 });
      }
    });
    if (sections.length === 0) return false;
    sections.sort((x, y) => x.offset - y.offset);
    const ranges = new Float64Array(sections.length * 2);
    const expected = new Uint8Array(sections.length * ENTRY_HASH_BYTES);
    const items = new Int32Array(this.#entries.length * 2).fill(-1);
    sections.forEach((s, k) => {
      ranges[2 * k] = s.offset;
      ranges[2 * k + 1] = s.length;
      expected.set(s.hash, k * ENTRY_HASH_BYTES);
      items[s.slot] = k;
    });
    const status = backend.verifyAhead(ranges, expected, identity);
    if (!status) return false;
    this.#ahead = { job: new JobStatus(status), items };
    return true;
  }

  /** This store wants no more from the background job (it stops once no store sharing it does). */
  stopAhead(backend: Backend | undefined): void {
    if (this.#ahead) backend?.stopVerifyAhead(this.#ahead.job);
  }

  /** Forgets the background job (the store is closing). */
  dropAhead(backend: Backend | undefined): void {
    this.stopAhead(backend);
    this.#ahead = undefined;
  }

  aheadProgress(): { sections: number; sound: number; corrupt: number; running: boolean } | undefined {
    const job = this.#ahead?.job;
    if (!job) return undefined;
    const { done, bad } = job.tally();
    return { sections: job.count, sound: done, corrupt: bad, running: job.running };
  }

  #markBad(i: number, section: Section): void {
    if ((this.#flags[i]! & (BAD.source | BAD.cache)) === 0) this.#corrupt++;
    this.#flags[i]! |= BAD[section];
  }
}

