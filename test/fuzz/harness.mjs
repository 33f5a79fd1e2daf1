// One fuzzing worker: mutates a real blob in memory, writes each case to a scratch file, opens
// it with the mmap store and uses every entry the way the loader does (source, cache view,
// compile with the cache). Each case must either fail with a typed error or serve only entries
// that pass their checks, byte for byte the original; it must never crash the process.
// Usage: node harness.mjs <blob> <seed> <count> <scratch-dir> [foreign-blob]
// Prints "case <i>" to stderr before each case (so a crash can be pinned) and a JSON summary.
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = join(fileURLToPath(new URL('../../dist/', import.meta.url)));
const { open, isCodeblobError } = await import(join(dist, 'index.js'));
const { encodeHeader, decodeHeader, encodeIndex, decodeIndex, sha256, entryHash, HEADER_SIZE, plainEntry } = await import(join(dist, 'format/index.js'));
const { compileCjs, compilesAsFunction } = await import(join(dist, 'loader/cjs-compile.js'));
const { LoadedTable } = await import(join(dist, 'loader/resolve-cache.js'));
const { native } = await import(join(dist, 'native/binding.js'));
const { decodeResolutions, recheckOf } = await import(join(dist, 'format/index.js'));
const { decode: msgpackDecode, encoder } = await import(join(dist, 'format/msgpack.js'));
const msgpackEncode = encoder({ useRecords: false, variableMapSize: true });

const [blobPath, seedText, countText, scratch, foreignPath] = process.argv.slice(2);
const original = readFileSync(blobPath);
const header = decodeHeader(original, original.length);
const index = decodeIndex(original.subarray(HEADER_SIZE, HEADER_SIZE + header.indexLength), header.entryCount);
const dataStart = HEADER_SIZE + header.indexLength;
const gap = Math.ceil(dataStart / header.alignment) * header.alignment - HEADER_SIZE; // room for a re-encoded index
const foreign = foreignPath ? readFileSync(foreignPath) : undefined;
const foreignIndex = foreign && decodeIndex(foreign.subarray(HEADER_SIZE, HEADER_SIZE + decodeHeader(foreign, foreign.length).indexLength), decodeHeader(foreign, foreign.length).entryCount);

let state = Number(seedText) >>> 0 || 1;
const rand = () => ((state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
const pick = (n) => Math.floor(rand() * n);
const oneOf = (xs) => xs[pick(xs.length)];

function reseal(bytes, h, idx, rawIndex) {
  // Re-encode index and header with valid hashes, so the checks behind them are reached.
  // encodeIndex refuses an entry whose wrapper, source length or hashes it would not store as
  // they are (they are derived or fixed-size in the index), and an order outside int32: such a
  // mutation cannot be written, and is skipped.
  let encoded;
  try {
    encoded = rawIndex ?? (idx ? encodeIndex(idx) : bytes.subarray(HEADER_SIZE, HEADER_SIZE + h.indexLength));
  } catch {
    return undefined;
  }
  if (encoded.length > gap) return undefined;
  const out = Buffer.from(bytes);
  out.fill(0, HEADER_SIZE, HEADER_SIZE + gap);
  encoded.copy(out, HEADER_SIZE);
  const nh = { ...h, indexLength: encoded.length, indexHash: sha256(encoded) };
  encodeHeader(nh).copy(out, 0);
  return out;
}

const sectionOf = (e) => [e.sourceOffset, e.sourceLength, e.cacheOffset, e.cacheLength];
const EXTREMES = [0, 1, 7, 8, 255, 4096, 65535, 2 ** 31 - 1, 2 ** 32 - 1];

/** Each mutation returns { bytes, resealed } or undefined (not applicable). */
const mutations = {
  flip() {
    const out = Buffer.from(original);
    const region = oneOf(['header', 'index', 'data']);
    const [lo, hi] = region === 'header' ? [0, HEADER_SIZE] : region === 'index' ? [HEADER_SIZE, dataStart] : [dataStart, out.length];
    for (let i = 0, n = 1 + pick(4); i < n; i++) out[lo + pick(hi - lo)] ^= 1 << pick(8);
    return { bytes: out, resealed: false };
  },
  truncate() {
    const e = oneOf(index.entries);
    const points = [0, 8, HEADER_SIZE - 1, HEADER_SIZE, dataStart - 1, dataStart, e.sourceOffset, e.sourceOffset + e.sourceLength, original.length - 1];
    return { bytes: original.subarray(0, Math.max(0, oneOf(points) + pick(3) - 1)), resealed: false };
  },
  headerExtreme() {
    const field = oneOf(['pageSize', 'alignment', 'flags', 'v8Tag', 'entryCount', 'fileSize', 'indexOffset', 'indexLength', 'formatVersion']);
    const value = oneOf([...EXTREMES, original.length, original.length + 1, dataStart]);
    const out = Buffer.from(original);
    try {
      encodeHeader({ ...header, [field]: value }).copy(out, 0);
    } catch {
      return undefined;
    }
    return { bytes: out, resealed: true };
  },
  entryField() {
    // A field the index stores (the wrapper and the source length are derived from kind,
    // encoding and chars: the source length follows chars here, as the reader derives it).
    const entries = index.entries.map((e) => plainEntry(e));
    const e = oneOf(entries);
    const other = oneOf(entries);
    const field = oneOf(['sourceOffset', 'cacheOffset', 'cacheLength', 'chars', 'chars', 'fileSize', 'mtimeMs', 'order']);
    e[field] = oneOf([...EXTREMES, original.length, original.length - 1, other.sourceOffset, other.cacheOffset, other.chars, e[field] + 1, e[field] - 1, 2 ** 53 - 1, -1, 0.5]);
    if (field === 'chars') e.sourceLength = (e.prefixChars + e.chars + e.suffixChars) * (e.encoding === 'utf16le' ? 2 : 1);
    const bytes = reseal(original, header, { root: index.root, entries });
    return bytes && { bytes, resealed: true, focus: e.key };
  },
  swapEncoding() {
    const entries = index.entries.map((e) => plainEntry(e));
    const e = oneOf(entries.filter((x) => x.kind !== 'asset'));
    e.encoding = e.encoding === 'latin1' ? 'utf16le' : 'latin1';
    // Keep the lengths consistent so the structure checks pass: only the hash can tell.
    e.chars = e.encoding === 'utf16le' ? Math.floor(e.sourceLength / 2) - e.prefixChars - e.suffixChars : e.sourceLength - e.prefixChars - e.suffixChars;
    e.sourceLength = (e.prefixChars + e.chars + e.suffixChars) * (e.encoding === 'utf16le' ? 2 : 1);
    const bytes = reseal(original, header, { root: index.root, entries });
    return bytes && { bytes, resealed: true, focus: e.key };
  },
  indexColumn() {
    // The index's columns damaged below encodeIndex (which writes only what it would read
    // back): keys out of order, twice, or with NUL, \\, empty or dot segments; numbers,
    // kind/encoding/flags bits and hashes set to anything; a column or the count of another size.
    const raw = msgpackDecode(original.subarray(HEADER_SIZE, HEADER_SIZE + header.indexLength));
    const [, , count] = raw;
    if (count === 0) return undefined;
    for (const at of [4, 5, 6]) raw[at] = Buffer.from(raw[at]); // copies: the views are into `original`
    const i = pick(count);
    const keys = raw[3].split('\0');
    const focus = keys[i];
    const how = oneOf(['keys', 'numbers', 'numbers', 'small', 'small', 'hashes', 'shape']);
    if (how === 'keys') {
      const j = pick(count);
      const what = oneOf(['swap', 'twice', 'nul', 'segment', 'char']);
      if (what === 'swap') [keys[i], keys[j]] = [keys[j], keys[i]];
      else if (what === 'twice') keys[i] = keys[j];
      else if (what === 'nul') keys[i] = `${keys[i]}\0${keys[i]}x`;
      else if (what === 'segment') keys[i] = oneOf([`${keys[i]}/`, `../${keys[i]}`, `${keys[i]}/.`, `${keys[i]}\\x`, `/${keys[i]}`, '']);
      else keys[i] = keys[i].slice(0, -1) + String.fromCharCode(keys[i].charCodeAt(keys[i].length - 1) + oneOf([-1, 1]));
      raw[3] = keys.join('\0');
    } else if (how === 'numbers') {
      const k = pick(6);
      raw[4].writeDoubleLE(oneOf([...EXTREMES, -1, 0.5, NaN, Infinity, -Infinity, 2 ** 53, 2 ** 52, 2 ** 51, original.length, raw[4].readDoubleLE((pick(count) * 6 + k) * 8) + oneOf([-8, -1, 1, 8])]), (i * 6 + k) * 8);
    } else if (how === 'small') {
      const at = (i * 2 + pick(2)) * 4;
      const v = raw[5].readInt32LE(at);
      raw[5].writeInt32LE(oneOf([v ^ (1 << pick(32)), v ^ (1 << pick(8)), -1, -2, 0, 2 ** 31 - 1, -(2 ** 31)]) | 0, at);
    } else if (how === 'hashes') {
      raw[6][i * 48 + pick(48)] ^= 1 << pick(8);
    } else {
      const at = oneOf([2, 4, 5, 6]);
      if (at === 2) raw[2] = oneOf([count - 1, count + 1, 0, -1, `${count}`]);
      else raw[at] = oneOf([raw[at].subarray(0, raw[at].length - 1), Buffer.concat([raw[at], Buffer.alloc(oneOf([1, 8, 48]))]), null, 0]);
    }
    const bytes = reseal(original, header, undefined, msgpackEncode(raw));
    return bytes && { bytes, resealed: true, focus };
  },
  sectionHashMismatch() {
    const e = oneOf(index.entries.filter((x) => x.cacheLength > 0 || x.sourceLength > 0));
    const out = Buffer.from(original);
    const [so, sl, co, cl] = sectionOf(e);
    const inCache = cl > 0 && rand() < 0.5;
    out[inCache ? co + pick(cl) : so + pick(sl)] ^= 1 << pick(8);
    return { bytes: out, resealed: false, focus: e.key, mustRefuse: true };
  },
  resolutionTable() {
    // The resolution table inside a resealed index, damaged: bytes flipped, cut short, or its
    // numbers set to extremes. It must be refused with a typed error or used without a crash.
    if (!index.resolutions) return undefined;
    let table = Buffer.from(index.resolutions);
    const how = oneOf(['flip', 'truncate', 'extreme', 'recheck']);
    if (how === 'flip') for (let i = 0, n = 1 + pick(8); i < n; i++) table[pick(table.length)] ^= 1 << pick(8);
    else if (how === 'recheck') {
      // Inside the recheck section (what settles a guard whose time changed), read only then.
      const at = decodeResolutions(table).recheckAt;
      if (!at || at[1] === 0) return undefined;
      for (let i = 0, n = 1 + pick(8); i < n; i++) table[at[0] + pick(at[1])] ^= 1 << pick(8);
    }
    else if (how === 'truncate') table = table.subarray(0, pick(table.length));
    else {
      const view = new DataView(table.buffer, table.byteOffset, table.byteLength);
      for (let i = 0, n = 1 + pick(8); i < n; i++) view.setUint32(pick(table.length - 4) & ~3, oneOf(EXTREMES), true);
    }
    const bytes = reseal(original, header, { root: index.root, entries: index.entries, resolutions: table });
    return bytes && { bytes, resealed: true, table: true };
  },
  foreignCache() {
    if (!foreignIndex) return undefined;
    // Caches from another V8 version, grafted in with their hashes fixed: V8 itself must
    // reject them (its own version/flags check), and nothing may crash.
    const mine = index.entries.filter((e) => e.cacheLength > 0);
    const e = oneOf(mine);
    const theirs = foreignIndex.entries.find((f) => f.key === e.key && f.cacheLength > 0);
    if (!theirs) return undefined;
    const cache = foreign.subarray(theirs.cacheOffset, theirs.cacheOffset + Math.min(theirs.cacheLength, e.cacheLength));
    const out = Buffer.from(original);
    out.fill(0, e.cacheOffset, e.cacheOffset + e.cacheLength);
    cache.copy(out, e.cacheOffset);
    const entries = index.entries.map((x) => (x === e ? { ...plainEntry(x), cacheLength: cache.length, cacheHash: entryHash(cache) } : x));
    const bytes = reseal(out, header, { root: index.root, entries });
    return bytes && { bytes, resealed: true, focus: e.key, foreign: true };
  },
};
const kinds = Object.keys(mutations);

const originalText = new Map();
{
  const s = open(blobPath);
  for (const e of s.entries()) originalText.set(e.key, e.kind === 'asset' ? null : s.source(e));
  s.close();
}

/** Decodes the store's resolution table and asks it every question the loader would. */
function exerciseTable(store, i, kind) {
  let decoded;
  try {
    decoded = decodeResolutions(store.resolutionTable());
  } catch (error) {
    if (!isCodeblobError(error)) summary.wrong.push({ case: i, kind, error: `table decode: ${error?.stack ?? error}` });
    return;
  }
  try {
    // contentOnly on every other case: every folder and file guard is then rechecked from the
    // (perhaps damaged) recheck section, as after a copy that reset every time.
    const t = new LoadedTable(decoded, store.root, true, native(), { reread: () => store.resolutionTable(), contentOnly: i % 2 === 0, explain: true });
    for (let a = 0; a < Math.min(decoded.requests.length, 200); a++) {
      const dir = t.path(decoded.answers[a * 4]);
      if (dir !== undefined) t.find(dir, decoded.requests[a]);
      if (!t.holds(a) && typeof t.why(a) !== 'string') throw new Error(`answer ${a} is stale without a reason`);
      t.file(a);
    }
    t.dispose();
    try {
      recheckOf(decoded, store.resolutionTable());
    } catch (error) {
      if (!isCodeblobError(error)) throw error;
    }
    summary.tablesUsed = (summary.tablesUsed ?? 0) + 1;
  } catch (error) {
    summary.wrong.push({ case: i, kind, error: `table use: ${error?.stack ?? error}` });
  }
}

const summary = { cases: 0, skipped: 0, typedErrors: 0, opened: 0, entriesServed: 0, entriesRefused: 0, cachesRejected: 0, wrong: [], byKind: {} };
const file = join(scratch, `case-${process.pid}.blob`);
const count = Number(countText);
// `count` cases that apply (some mutations do not fit a given draw); bounded attempts.
for (let i = 0; summary.cases < count && i < count * 3; i++) {
  const kind = kinds[i % kinds.length];
  const m = mutations[kind]();
  if (!m) {
    summary.skipped++;
    continue;
  }
  process.stderr.write(`case ${seedText}:${i}:${kind}\n`);
  summary.cases++;
  summary.byKind[kind] = (summary.byKind[kind] ?? 0) + 1;
  writeFileSync(file, m.bytes);
  let store;
  try {
    store = open(file, { root: index.root ? join(blobPath, '..', index.root) : undefined });
  } catch (error) {
    if (isCodeblobError(error) || typeof error?.code === 'string') summary.typedErrors++;
    else summary.wrong.push({ case: i, kind, error: String(error?.stack ?? error) });
    continue;
  }
  summary.opened++;
  try {
    const entries = store.entries();
    const sample = entries.length <= 12 ? [...entries] : Array.from({ length: 12 }, () => entries[pick(entries.length)]);
    const focus = m.focus && entries.find((x) => x.key === m.focus);
    if (focus) sample.unshift(focus);
    const seen = new Set();
    let refusedFocus = false;
    for (const e of sample) {
      if (e.kind === 'asset' || seen.has(e)) continue;
      seen.add(e);
      let text;
      try {
        text = store.source(e);
      } catch (error) {
        if (!isCodeblobError(error) && error?.code !== 'ERR_CODEBLOB_NATIVE_ARGUMENT') summary.wrong.push({ case: i, kind, key: e.key, error: String(error?.stack ?? error) });
        summary.entriesRefused++;
        if (e === focus) refusedFocus = true;
        continue;
      }
      if (!m.resealed && text !== originalText.get(e.key)) summary.wrong.push({ case: i, kind, key: e.key, error: 'served text differs from the original' });
      summary.entriesServed++;
      if (e.kind !== 'cjs') continue;
      let cache;
      try {
        cache = store.cacheView(e);
      } catch (error) {
        if (!isCodeblobError(error)) summary.wrong.push({ case: i, kind, key: e.key, error: String(error) });
        if (e === focus) refusedFocus = true;
        continue;
      }
      try {
        // A fresh origin per case: V8's in-isolate compilation cache would otherwise answer
        // for an identical source and never look at the cache under test.
        const text = compilesAsFunction ? store.source(e) : store.compileSource(e);
        const compiled = compileCjs(text, join('/fuzz', String(i), e.key), cache);
        if (compiled.cacheRejected) summary.cachesRejected++;
        else if (m.foreign && e === focus && cache) summary.wrong.push({ case: i, kind, key: e.key, error: 'V8 accepted a cache from another V8 version' });
      } catch (error) {
        // A resealed, structurally valid but semantically wrong entry may not compile: a
        // SyntaxError is Node's own answer, not a crash. An unsealed case must compile.
        if (!m.resealed) summary.wrong.push({ case: i, kind, key: e.key, error: `compile: ${error}` });
      }
    }
    if (m.table) exerciseTable(store, i, kind);
    if (m.mustRefuse && focus && !refusedFocus) summary.wrong.push({ case: i, kind, key: m.focus, error: 'a section with a hash mismatch was served' });
  } finally {
    store.close();
  }
}
rmSync(file, { force: true });
console.log(JSON.stringify(summary));
