/**
 * Is the file on disk still the one that was packed? Checked before the blob's copy of a
 * module is used in place of reading the file.
 *
 *   stat (default)  size and mtime as recorded (one stat call)
 *   hash            the file's bytes hash to the recorded content hash (one read, no decode)
 *   none            trust the blob (immutable deploys: containers, read-only volumes)
 */
import { readFileSync, statSync } from 'node:fs';
import { entryHash, type Entry } from '../format/index.js';
import type { FreshnessMode } from './status.js';

export function parseFreshnessMode(value: string | undefined): FreshnessMode | undefined {
  if (value === undefined || value === '' || value === 'stat') return 'stat';
  if (value === 'hash' || value === 'none') return value;
  return undefined;
}

export function isFresh(entry: Entry, filename: string, mode: FreshnessMode): boolean {
  if (mode === 'none') return true;
  try {
    if (mode === 'stat') {
      const st = statSync(filename);
      return st.size === entry.fileSize && st.mtimeMs === entry.mtimeMs;
    }
    const bytes = readFileSync(filename);
    return bytes.length === entry.fileSize && entryHash(bytes).equals(entry.contentHash);
  } catch {
    return false;
  }
}
