/**
 * The resolution table: what `require()` resolved to during the traced run, with the facts each
 * answer depended on ("guards"), so a loader can answer `Module._resolveFilename` without the
 * stat calls and package.json reads Node makes. Carried as one msgpack `bin` inside the index
 * (FORMAT.md 3.3) and decoded only when first used, so it is laid out for a fast one-shot
 * decode: a few strings and typed arrays, no per-answer objects.
 *
 *   [ RESOLUTION_TAG, env, paths, requests, answers, guardLists, guards, recheck ]
 *   [ RESOLUTION_TAG, env, paths, requests, answers, guardLists, guards, recheck, [esmFrom, esmConditions] ]
 *
 * - `env` (str): the resolution environment the answers hold for (Node version, conditions,
 *   symlink flags, NODE_PATH); a loader in another environment does not use the table.
 * - `paths` (str): every path the table mentions, NUL-separated, relative to the blob's root
 *   (`/`-separated; `''` is the root itself; ancestors of the root start with `../`).
 * - `requests` (str): the request of each answer, NUL-separated; one that begins with U+0001
 *   (ROOT_REQUEST) is an absolute path below the root, written relative to it.
 * - `answers` (bin, u32 little-endian, 4 per answer): directory of the requesting module (path
 *   index), resolved file (path index), first guard in `guardLists`, guard count. Answer i has
 *   request i; answers are sorted by (directory path, request).
 * - `guardLists` (bin, u32): guard indices.
 * - `guards` (bin, f64 little-endian, 4 per guard): path index, kind (0 absent, 1 directory
 *   with this mtime, 2 file with this mtime and size, 3 realpath is the path at index `size`,
 *   4 some file, 5 some directory), mtimeMs, and for kind 2 the size, for kind 3 the path
 *   index of the realpath, else 0.
 * - `recheck` (bin): what settles a directory or file guard whose time changed (recheck-codec.ts),
 *   decoded only then. Tables tagged `codeblob-resolve/2` have no `recheck`: a guard whose time
 *   changed is broken.
 *
 * - the optional last element ([esmFrom, esmConditions]): answers from `esmFrom` on are what `import` resolved to (ES
 *   module resolution, under the conditions `esmConditions`, comma-joined), the ones before it
 *   what `require()` resolved to; each group sorted by (directory path, request).
 *
 * Decoding checks the shape only; every index is checked when used, and an answer with an
 * index out of range is simply not used.
 */
import { decode, encoder } from './msgpack.js';
import { codeblobError } from '../errors.js';
import { decodeRecheck, encodeRecheck, type DecodedRecheck, type Recheck } from './recheck-codec.js';

export const RESOLUTION_TAG = 'codeblob-resolve/3';
/** The previous tag, still read: the same table without its recheck section. */
export const RESOLUTION_TAG_V2 = 'codeblob-resolve/2';

/**
 * A recorded request that begins with this character is an absolute path below the root, written
 * relative to it (`/`-separated), so that the answer still applies when the app has moved.
 */
export const ROOT_REQUEST = '\u0001';

/** What a guard asserts about its path. */
export const GUARD_ABSENT = 0; // nothing there
export const GUARD_DIR = 1; // a directory with this mtime (its listing is unchanged)
export const GUARD_FILE = 2; // a file with this mtime and size
export const GUARD_REAL = 3; // a path whose realpath is another recorded path
export const GUARD_IS_FILE = 4; // a file (whatever its content)
export const GUARD_IS_DIR = 5; // a directory (whatever its listing)
export type GuardKind = typeof GUARD_ABSENT | typeof GUARD_DIR | typeof GUARD_FILE | typeof GUARD_REAL | typeof GUARD_IS_FILE | typeof GUARD_IS_DIR;

export interface Guard {
  path: number;
  kind: GuardKind;
  mtimeMs: number;
  /** Size for files, the real path's index for `real`, 0 otherwise. */
  size: number;
}

export interface Answer {
  dir: number;
  request: string;
  file: number;
  guards: number[];
}

/** The writer's view. */
export interface ResolutionTable {
  env: string;
  /** Answers of `import` (ES module resolution), after the `answers` of require(). */
  esmAnswers?: Answer[];
  /** The conditions the `import` answers were resolved under, comma-joined. */
  esmConditions?: string;
  paths: string[];
  guards: Guard[];
  answers: Answer[];
  /** What settles a guard whose time changed; without it such a guard is broken. */
  recheck?: Recheck;
}

/** The reader's view: flat arrays, as decoded. */
export interface DecodedResolutions {
  env: string;
  paths: string[];
  requests: string[];
  /** 4 per answer: dir, file, first guard-list slot, guard count. */
  answers: Uint32Array;
  guardLists: Uint32Array;
  /** 4 per guard: path, kind, mtimeMs, size (or real path index). */
  guards: Float64Array;
  /**
   * Where the recheck section (recheck-codec.ts) lies in the bytes decoded: [offset, length],
   * read with `recheckOf` only when a guard's time changed. Undefined for a version-2 table.
   */
  recheckAt?: readonly [number, number];
  /** The recheck section itself, when the decoder copied it (then `recheckAt` is undefined). */
  recheckCopy?: Uint8Array;
  /** Answers from this one on are `import`'s (requests.length when there are none). */
  esmFrom: number;
  /** The conditions those were resolved under, comma-joined ('' when there are none). */
  esmConditions: string;
}

const pack = encoder({ useRecords: false, variableMapSize: true });
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function bytesOf(array: Uint32Array | Float64Array): Buffer {
  return Buffer.from(array.buffer, array.byteOffset, array.byteLength);
}

export function encodeResolutions(table: ResolutionTable): Buffer {
  if (!littleEndian) throw codeblobError('ERR_CODEBLOB_INCOMPATIBLE', 'the resolution table is written little-endian only');
  const all = [...table.answers, ...(table.esmAnswers ?? [])];
  const answers = new Uint32Array(all.length * 4);
  const lists: number[] = [];
  all.forEach((a, i) => {
    answers.set([a.dir, a.file, lists.length, a.guards.length], i * 4);
    lists.push(...a.guards);
  });
  const guards = new Float64Array(table.guards.length * 4);
  table.guards.forEach((g, i) => guards.set([g.path, g.kind, g.mtimeMs, g.size], i * 4));
  for (const s of [...table.paths, ...all.map((a) => a.request)]) {
    if (s.includes('\0')) throw codeblobError('ERR_CODEBLOB_INVALID_OPTION', `a path or request contains NUL: ${JSON.stringify(s)}`);
  }
  const esm = table.esmAnswers?.length ? [[table.answers.length, table.esmConditions ?? '']] : [];
  return pack([
    RESOLUTION_TAG, table.env, table.paths.join('\0'), all.map((a) => a.request).join('\0'),
    bytesOf(answers), bytesOf(new Uint32Array(lists)), bytesOf(guards),
    encodeRecheck(table.recheck ?? { paths: [], listings: [], contents: [] }), ...esm,
  ]);
}

const bad = (detail: string) => codeblobError('ERR_CODEBLOB_BAD_FORMAT', `resolution table: ${detail}`);

/** A typed array over a copy of `bin` (the copy is aligned), or a typed error. */
function typed<T>(bin: unknown, width: number, make: (buffer: ArrayBuffer) => T, what: string): T {
  if (!(bin instanceof Uint8Array) || bin.byteLength % width !== 0) throw bad(`${what} is not an array of ${width}-byte numbers`);
  return make(new Uint8Array(bin).buffer as ArrayBuffer); // a copy: aligned, and not a view of the index
}

/** Decodes a table and checks its shape (see the file comment for what is checked on use). */
export function decodeResolutions(bytes: Uint8Array): DecodedResolutions {
  if (!littleEndian) throw bad('this machine is big-endian; the table is little-endian');
  let raw: unknown;
  try {
    raw = decode(bytes);
  } catch (cause) {
    throw codeblobError('ERR_CODEBLOB_BAD_FORMAT', `resolution table is not valid msgpack (${(cause as Error).message})`, cause);
  }
  // Version 3: the recheck section, then the optional import part. Version 2 (still read): no
  // recheck section; its optional 8th element is the import part.
  const v3 = Array.isArray(raw) && (raw.length === 8 || raw.length === 9) && raw[0] === RESOLUTION_TAG;
  if (!v3 && !(Array.isArray(raw) && (raw.length === 7 || raw.length === 8) && raw[0] === RESOLUTION_TAG_V2)) throw bad('wrong tag or shape');
  const list = raw as unknown[];
  const [, env, paths, requests, answers, guardLists, guards] = list;
  const recheck = v3 ? list[7] : undefined;
  const esm = v3 ? list[8] : list[7];
  if (typeof env !== 'string' || typeof paths !== 'string' || typeof requests !== 'string') throw bad('env, paths or requests is not a string');
  const requestList = requests === '' ? [] : requests.split('\0');
  let esmFrom = requestList.length;
  let esmConditions = '';
  if (esm !== undefined) {
    const [from, conditions] = Array.isArray(esm) ? (esm as unknown[]) : [];
    if (!Number.isSafeInteger(from) || (from as number) < 0 || (from as number) > requestList.length || typeof conditions !== 'string') {
      throw bad('the import part is not [first answer, conditions]');
    }
    esmFrom = from as number;
    esmConditions = conditions;
  }
  const decoded: DecodedResolutions = {
    env,
    paths: paths.split('\0'),
    requests: requestList,
    answers: typed(answers, 4, (b) => new Uint32Array(b), 'answers'),
    guardLists: typed(guardLists, 4, (b) => new Uint32Array(b), 'guard lists'),
    guards: typed(guards, 8, (b) => new Float64Array(b), 'guards'),
    esmFrom,
    esmConditions,
  };
  if (decoded.answers.length !== decoded.requests.length * 4) throw bad('answers and requests differ in number');
  if (decoded.guards.length % 4 !== 0) throw bad('guards are not groups of four numbers');
  if (v3) {
    // Not decoded, and not copied when the decoder handed out a view of the bytes: where it is.
    if (!(recheck instanceof Uint8Array)) throw bad('the recheck section is not binary');
    if (recheck.buffer === bytes.buffer) decoded.recheckAt = [recheck.byteOffset - bytes.byteOffset, recheck.byteLength];
    else decoded.recheckCopy = new Uint8Array(recheck);
  }
  return decoded;
}

/**
 * The recheck section of a table decoded from `bytes` (the same bytes, or an identical copy read
 * again), or undefined for a version-2 table. Throws ERR_CODEBLOB_BAD_FORMAT when it is malformed.
 */
export function recheckOf(table: DecodedResolutions, bytes: Uint8Array): DecodedRecheck | undefined {
  if (table.recheckCopy) return decodeRecheck(table.recheckCopy);
  if (!table.recheckAt) return undefined;
  const [offset, length] = table.recheckAt;
  if (offset < 0 || offset + length > bytes.byteLength) throw bad('the recheck section lies outside the table');
  return decodeRecheck(bytes.subarray(offset, offset + length));
}
