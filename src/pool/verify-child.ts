/**
 * Run by `preloadPrimary` as a short-lived child process: opens the blob the primary holds,
 * checks every section hash and the whole file's digest (which reads every page, so the file
 * is warm in the page cache for the workers), and prints what the primary needs as one JSON
 * line. The primary itself never maps the file nor loads the format code: a cluster primary
 * lives as long as its workers, and everything it held would be counted against it for good.
 *
 * argv: <path to open (the primary's /proc/<pid>/fd/<fd>)>
 * stdout: {"pin": BlobPin, "recordedRoot": string, "residentBytes": number} — or exit 1 with the
 * reason on stderr. `residentBytes`: how much of the file is in the page cache once read (mincore;
 * 0 with the `read` backend, which cannot tell).
 */
import { open } from '../store/store.js';

try {
  const store = open(process.argv[2]!, { verify: 'full' });
  const pin = store.pin();
  const residentBytes = store.stats().bytesResident ?? 0;
  process.stdout.write(JSON.stringify({ pin, recordedRoot: store.recordedRoot, residentBytes }) + '\n');
  store.close();
} catch (error) {
  process.stderr.write((error as Error).message);
  process.exitCode = 1;
}
