/**
 * `codeblob verify app.blob --files`: the blob against the files on disk, as a loader would see
 * them now (CODEBLOB_VERIFY=stat, the default): which modules would be served as packed, which
 * only after a content check (a new mtime, the same bytes), which changed or are gone; and which
 * recorded resolutions still hold, hold after a recheck, or are stale, with why. For CI: run it
 * where the app runs (or on the image), after the last build or copy step.
 */
import { join, relative } from 'node:path';
import { ROOT_REQUEST, decodeResolutions } from '../format/index.js';
import { FRESH, FRESH_SAME_CONTENT, STALE_GONE, freshness, staleReason } from '../loader/freshness.js';
import { ANSWER_HOLDS, ANSWER_RECHECKED, ANSWER_STALE, LoadedTable } from '../loader/resolve-cache.js';
import { resolutionEnvironment } from '../loader/resolve-env.js';
import type { BlobStore } from '../store/store.js';

export interface FilesReport {
  modules: {
    total: number;
    /** Served as packed: size and mtime as recorded. */
    served: number;
    /** Served after a content check: a new mtime, the same bytes. */
    timeOnly: string[];
    /** Would load from disk: the content changed. */
    changed: { key: string; why: string }[];
    /** Would load from disk, or fail as without codeblob: the file is gone or not a file. */
    gone: string[];
  };
  resolutions: {
    total: number;
    holds: number;
    /** Hold after a recheck: a file's or folder's mtime changed, its content or listing did not. */
    rechecked: number;
    stale: { request: string; from: string; why: string }[];
    /** The environment the answers were recorded under, and whether this process runs under it. */
    environment: { recorded: string; here: string; same: boolean };
  } | null;
  /** Why the resolutions could not be checked (a malformed table), else null. */
  resolutionsError: string | null;
}

/** Compares every entry and recorded resolution of the blob with the files as they are now. */
export function compareWithFiles(store: BlobStore): FilesReport {
  const entries = store.entries();
  const modules: FilesReport['modules'] = { total: entries.length, served: 0, timeOnly: [], changed: [], gone: [] };
  for (const e of entries) {
    const v = freshness(e, store.filename(e), 'stat', undefined);
    if (v === FRESH) modules.served++;
    else if (v === FRESH_SAME_CONTENT) modules.timeOnly.push(e.key);
    else if (v === STALE_GONE) modules.gone.push(e.key);
    else modules.changed.push({ key: e.key, why: staleReason(v) });
  }
  let resolutions: FilesReport['resolutions'] = null;
  let resolutionsError: string | null = null;
  if (store.hasResolutionTable()) {
    try {
      const decoded = decodeResolutions(store.resolutionTable()!);
      const table = new LoadedTable(decoded, store.root, true, undefined, { reread: () => store.resolutionTable(), explain: true });
      const here = resolutionEnvironment();
      resolutions = { total: table.answers, holds: 0, rechecked: 0, stale: [], environment: { recorded: decoded.env, here, same: decoded.env === here } };
      for (let i = 0; i < table.answers; i++) {
        const v = table.verdict(i);
        if (v === ANSWER_HOLDS) resolutions.holds++;
        else if (v === ANSWER_RECHECKED) resolutions.rechecked++;
        else if (v === ANSWER_STALE) {
          const from = table.path(decoded.answers[i * 4]!);
          resolutions.stale.push({
            request: decoded.requests[i]!.startsWith(ROOT_REQUEST) ? join(store.root, decoded.requests[i]!.slice(1)) : decoded.requests[i]!,
            from: from === undefined ? '?' : relative(store.root, from) || '.',
            why: table.why(i) ?? 'a guard does not hold',
          });
        }
      }
      table.dispose();
    } catch (error) {
      resolutionsError = (error as Error).message;
    }
  }
  return { modules, resolutions, resolutionsError };
}

/** `--max-stale`: a count (`5`) or a share (`2%`, `0.5%`) of the modules and of the resolutions. */
export function parseMaxStale(text: string): (total: number) => number {
  const share = /^(\d+(?:\.\d+)?)%$/.exec(text);
  if (share) return (total) => (Number(share[1]) / 100) * total;
  if (/^\d+$/.test(text)) return () => Number(text);
  throw new Error(`--max-stale takes a count (5) or a share (2%), got ${text}`);
}

/** Modules and resolutions that would not come from the blob, against the limit. */
export function overLimit(r: FilesReport, limit: (total: number) => number): { modules: boolean; resolutions: boolean } {
  const stale = r.modules.changed.length + r.modules.gone.length;
  return {
    modules: stale > limit(r.modules.total),
    resolutions: r.resolutions !== null && r.resolutions.stale.length > limit(r.resolutions.total),
  };
}

const SHOWN = 10;

/** The report in lines, for a terminal. */
export function filesReportText(r: FilesReport): string[] {
  const m = r.modules;
  const out = [
    `modules      ${m.total} packed: ${m.served} would be served as packed, ${m.timeOnly.length} served after a content ` +
      `check (a new mtime, the same bytes), ${m.changed.length} changed, ${m.gone.length} gone`,
  ];
  if (r.resolutions) {
    const s = r.resolutions;
    out.push(`resolutions  ${s.total} recorded: ${s.holds} hold, ${s.rechecked} hold after a recheck (new mtimes, same facts), ${s.stale.length} stale`);
    if (!s.environment.same) out.push(`note         recorded under ${s.environment.recorded}; this process runs under ${s.environment.here} (a worker must match)`);
  } else if (r.resolutionsError) {
    out.push(`resolutions  not checked: ${r.resolutionsError}`);
  }
  for (const c of m.changed) out.push(`CHANGED  ${c.key}: ${c.why}`);
  for (const k of m.gone) out.push(`GONE     ${k}`);
  for (const s of r.resolutions?.stale ?? []) out.push(`STALE    require(${JSON.stringify(s.request)}) from ${s.from}: ${s.why}`);
  const shown = m.timeOnly.slice(0, SHOWN);
  for (const k of shown) out.push(`time     ${k}: a new mtime, the same content`);
  if (m.timeOnly.length > shown.length) out.push(`time     … and ${m.timeOnly.length - shown.length} more (--json lists all)`);
  return out;
}
