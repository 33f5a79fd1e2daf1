/**
 * Which sections of a blob passed their hash check: the state machine behind "nothing corrupt
 * ever reaches V8". Every entry has two sections (source, cache); each is unchecked, sound or
 * corrupt. A section is hashed the first time it is handed out, unless a background job of the
 * addon (verifyAhead) hashed it first; a failed check is remembered, so the entry is refused
 * from then on and counted once.
 */
import { codeblobError } from '../errors.js';
import { ENTRY_HASH_BYTES, entryHash, type EntryTable } from '../format/index.js';
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

/** Section s: entry s >> 1's source (s even) or cache (s odd). */
const slot = (i: number, section: Section) => 2 * i + (section === 'source' ? 0 : 1);

/** Section s's offset, length and the hash the index gives it. */
function range(t: EntryTable, s: number): [offset: number, length: number, hash: Uint8Array] {
  const i = s >> 1;
  return s & 1 ? [t.cacheOffset(i), t.cacheLength(i), t.cacheHash(i)!] : [t.sourceOffset(i), t.sourceLength(i), t.sourceHash(i)];
}

/** Whether section `section` of entry i hashes to what the index says. */
function sound(t: EntryTable, i: number, section: Section, bytes: Uint8Array): boolean {
  const [offset, length, expected] = range(t, slot(i, section));
  return entryHash(bytes.subarray(offset, offset + length)).equals(expected);
}

/** The background check: its status bytes, and per entry and section the item it holds (-1: none). */
interface Ahead {
  job: JobStatus;
  items: Int32Array;
}

export class SectionChecks {
  readonly #table: EntryTable;
  readonly #flags: Uint8Array;
  #ahead: Ahead | undefined;
  #corrupt = 0;
  #verifiedAhead = 0;

  constructor(table: EntryTable, trusted: boolean) {
    this.#table = table;
    this.#flags = new Uint8Array(table.length);
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
      const item = this.#ahead ? this.#ahead.items[slot(i, section)]! : -1;
      if (item >= 0) {
        // Sound ahead: done. Otherwise hash it here (the job skips it); a mismatch found ahead is
        // hashed again here, and refused below.
        if (this.#ahead!.job.takeUnlessDone(item) === ITEM_DONE) {
          this.#flags[i]! |= OK[section];
          this.#verifiedAhead++;
          return;
        }
      }
      const ok = sound(this.#table, i, section, bytes);
      // Worker threads of this process share the job (see startAhead): tell them too.
      if (item >= 0) this.#ahead!.job.settle(item, ok);
      if (ok) {
        this.#flags[i]! |= OK[section];
        return;
      }
      this.#markBad(i, section);
    }
    throw codeblobError('ERR_CODEBLOB_CORRUPT_ENTRY', `${section} of "${this.#table.key(i)}" in ${where}`);
  }

  /** Hashes every section; returns the problems (none for a sound blob). */
  checkAll(bytes: Uint8Array): VerifyProblem[] {
    const problems: VerifyProblem[] = [];
    const t = this.#table;
    for (let i = 0; i < t.length; i++) {
      for (const section of ['source', 'cache'] as const) {
        if (section === 'cache' && t.cacheLength(i) === 0) continue;
        if (sound(t, i, section, bytes)) {
          this.#flags[i]! |= OK[section];
        } else {
          problems.push({ key: t.key(i), section, message: `${section} hash mismatch` });
          this.#markBad(i, section);
        }
      }
    }
    return problems;
  }

  /**
   * Starts hashing the startup range (the sections of the modules the traced run loaded, in
   * file order) on a background thread of the backend; see BlobStore.verifyAhead.
   */
  startAhead(backend: Backend, withCaches: boolean, identity: string): boolean {
    if (this.#ahead) return true;
    const t = this.#table;
    // Sections by number (slot()).
    const wanted = new Int32Array(t.length * 2);
    let count = 0;
    for (let i = 0; i < t.length; i++) {
      if (t.order(i) < 0) continue;
      const flags = this.#flags[i]!;
      if ((flags & (OK.source | BAD.source)) === 0) wanted[count++] = slot(i, 'source');
      if (withCaches && t.cacheLength(i) > 0 && (flags & (OK.cache | BAD.cache)) === 0) wanted[count++] = slot(i, 'cache');
    }
    if (count === 0) return false;
    const offsetOf = (s: number) => (s & 1 ? t.cacheOffset(s >> 1) : t.sourceOffset(s >> 1));
    const sections = wanted.subarray(0, count).sort((x, y) => offsetOf(x) - offsetOf(y));
    const ranges = new Float64Array(count * 2);
    const expected = new Uint8Array(count * ENTRY_HASH_BYTES);
    const items = new Int32Array(t.length * 2).fill(-1);
    sections.forEach((s, k) => {
      const [offset, length, hash] = range(t, s);
      ranges[2 * k] = offset;
      ranges[2 * k + 1] = length;
      expected.set(hash, k * ENTRY_HASH_BYTES);
      items[s] = k;
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

