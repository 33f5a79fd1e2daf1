'use strict';
// One sample of bench/breakdown.mjs: loads BENCH_ENTRY, lets loading go quiet (codeblob drops
// its decoded resolution table and releases its startup pages once the burst is over), runs two
// full GCs, then measures this process from the inside and prints one JSON line:
// - smaps: private (USS) bytes by mapping kind: anonymous, malloc's [heap], the main stack, the
//   blob, the addon, other files (the Node binary's written pages ...); the blob's resident and
//   proportional (PSS) bytes; the thread count;
// - V8: heap committed and used, malloced, code statistics (bytecode and metadata);
// - a heap snapshot (taken last: it allocates a lot), summed by what each object is: strings,
//   code (bytecode arrays, feedback, SharedFunctionInfos ...), closures, other objects; and
//   codeblob's own objects: everything kept alive only through codeblob's loader (its status
//   record, its hooks and patched functions, the store with its index, tables, maps, and its
//   bundle's code), computed exactly as a retained set: reachable from the roots, but no longer
//   reachable once those anchors are cut off.
// Node's own loading machinery counts as "other" in every mode.
const entry = process.env.BENCH_ENTRY;
const t0 = performance.now();
require(entry);
const loadMs = performance.now() - t0;

const fs = require('fs');
const v8 = require('v8');

// The measurement must not allocate on the heap it measures: a young generation that V8 grew
// at the forced GC keeps whatever pages the measuring code touches after it (reading smaps as
// one string and splitting it into lines allocated about 1 MiB there, and decided the tiny app's
// figure by half a MiB either way). So /proc files are read into one buffer made at startup,
// outside the V8 heap, and parsed as bytes; the only strings made are one per mapping's name.
const PROC = Buffer.allocUnsafeSlow(8 << 20);

/** Reads a /proc file into PROC; returns its length. */
function readProc(path) {
  const fd = fs.openSync(path, 'r');
  let n = 0;
  for (let r; (r = fs.readSync(fd, PROC, n, PROC.length - n, null)) > 0; ) n += r;
  fs.closeSync(fd);
  if (n === PROC.length) throw new Error(`${path} is larger than ${PROC.length} bytes`);
  return n;
}

const isHex = (c) => (c >= 48 && c <= 57) || (c >= 97 && c <= 102);
/** The decimal number after `label` (e.g. "Rss:") at line start i, or -1 when the line is not that label. */
function field(i, end, label) {
  for (let k = 0; k < label.length; k++) if (PROC[i + k] !== label.charCodeAt(k)) return -1;
  let v = 0;
  for (let k = i + label.length; k < end; k++) {
    const c = PROC[k];
    if (c >= 48 && c <= 57) v = v * 10 + (c - 48);
    else if (v > 0) break;
  }
  return v;
}

function smaps() {
  const out = { anon: 0, mallocHeap: 0, stack: 0, blob: 0, addon: 0, files: 0, other: 0, blobRss: 0, blobPss: 0 };
  const n = readProc('/proc/self/smaps');
  let kind = null;
  for (let i = 0; i < n; ) {
    let end = PROC.indexOf(10, i);
    if (end < 0 || end > n) end = n;
    // A mapping's header: "start-end perms offset dev inode   name"; its fields start with a capital.
    if (isHex(PROC[i])) {
      let k = i;
      let spaces = 0;
      while (k < end && spaces < 5) if (PROC[k++] === 32) { spaces++; while (PROC[k] === 32) k++; }
      const name = k < end ? PROC.latin1Slice(k, end) : '';
      kind = name === '' ? 'anon' : name === '[heap]' ? 'mallocHeap' : name === '[stack]' ? 'stack' : name.endsWith('.blob') || name.includes('.blob ') ? 'blob' : name.endsWith('.node') ? 'addon' : name.startsWith('/') ? 'files' : 'other';
    } else if (kind) {
      let v;
      if ((v = field(i, end, 'Private_Clean:')) >= 0 || (v = field(i, end, 'Private_Dirty:')) >= 0) out[kind] += v * 1024;
      else if (kind === 'blob' && (v = field(i, end, 'Rss:')) >= 0) out.blobRss += v * 1024;
      else if (kind === 'blob' && (v = field(i, end, 'Pss:')) >= 0) out.blobPss += v * 1024;
    }
    i = end + 1;
  }
  return out;
}

/** The Threads: line of /proc/self/status. */
function threadCount() {
  const n = readProc('/proc/self/status');
  for (let i = 0; i < n; ) {
    let end = PROC.indexOf(10, i);
    if (end < 0 || end > n) end = n;
    const v = field(i, end, 'Threads:');
    if (v >= 0) return v;
    i = end + 1;
  }
  return 0;
}

const BUNDLE = /[/\\]dist[/\\]loader[/\\](register\.c?js|esm-register\.js)$/;
const ANCHOR_EDGE = /codeblob\.|[/\\]dist[/\\]loader[/\\]register\.c?js$/;

/** Sums a heap snapshot's objects by kind, and codeblob's retained set (see the file comment). */
function snapshotBreakdown() {
  const snap = JSON.parse(readAll(v8.getHeapSnapshot()));
  const meta = snap.snapshot.meta;
  const nf = meta.node_fields.length;
  const ef = meta.edge_fields.length;
  const nTypes = meta.node_types[0];
  const eTypes = meta.edge_types[0];
  const [nType, nName, nSize, nEdges] = ['type', 'name', 'self_size', 'edge_count'].map((f) => meta.node_fields.indexOf(f));
  const [eType, eName, eTo] = ['type', 'name_or_index', 'to_node'].map((f) => meta.edge_fields.indexOf(f));
  const { nodes, edges, strings } = snap;
  const count = nodes.length / nf;
  const firstEdge = new Uint32Array(count + 1);
  for (let i = 0, e = 0; i < count; i++) {
    firstEdge[i] = e;
    e += nodes[i * nf + nEdges] * ef;
    firstEdge[i + 1] = e;
  }
  const weak = eTypes.indexOf('weak');
  const shortcut = eTypes.indexOf('shortcut');
  const named = new Set(['property', 'internal', 'context', 'hidden', 'shortcut'].map((t) => eTypes.indexOf(t)));
  // Anchors: codeblob's functions (codeblob* names), what the global's codeblob.* symbols hold,
  // and the register bundle's module (require.cache and Node's path caches name its file).
  const anchor = new Uint8Array(count);
  // The bundle's script, its functions (SharedFunctionInfos naming it), and every closure of
  // them: whatever they hold (contexts, the store) is codeblob's however Node reaches it.
  const edgeName = (e) => String(strings[edges[e + eName]]);
  const script = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    if (nTypes[nodes[i * nf + nType]] === 'code' && BUNDLE.test(strings[nodes[i * nf + nName]])) script[i] = 1;
  }
  const sfi = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    for (let e = firstEdge[i]; e < firstEdge[i + 1]; e += ef) if (named.has(edges[e + eType]) && script[edges[e + eTo] / nf] && edgeName(e) === 'script') sfi[i] = 1;
  }
  for (let i = 0; i < count; i++) {
    if (script[i] || sfi[i]) anchor[i] = 1;
    if (nTypes[nodes[i * nf + nType]] !== 'closure') continue;
    for (let e = firstEdge[i]; e < firstEdge[i + 1]; e += ef) if (named.has(edges[e + eType]) && sfi[edges[e + eTo] / nf] && edgeName(e) === 'shared') anchor[i] = 1;
  }
  for (let i = 0; i < count; i++) {
    const type = nTypes[nodes[i * nf + nType]];
    if (type === 'closure' && /^codeblob[A-Z]/.test(strings[nodes[i * nf + nName]])) anchor[i] = 1;
    for (let e = firstEdge[i]; e < firstEdge[i + 1]; e += ef) {
      if (named.has(edges[e + eType]) && ANCHOR_EDGE.test(String(strings[edges[e + eName]]))) anchor[edges[e + eTo] / nf] = 1;
    }
  }
  const reach = (skipAnchors) => {
    const seen = new Uint8Array(count);
    const stack = [0];
    seen[0] = 1;
    while (stack.length) {
      const i = stack.pop();
      for (let e = firstEdge[i]; e < firstEdge[i + 1]; e += ef) {
        const t = edges[e + eType];
        if (t === weak || t === shortcut) continue;
        const j = edges[e + eTo] / nf;
        if (seen[j] || (skipAnchors && anchor[j])) continue;
        seen[j] = 1;
        stack.push(j);
      }
    }
    return seen;
  };
  const all = reach(false);
  const withoutCodeblob = reach(true);
  const out = { strings: 0, code: 0, closures: 0, objects: 0, codeblob: 0, total: 0 };
  for (let i = 0; i < count; i++) {
    if (!all[i]) continue;
    // Off-heap memory (an ArrayBuffer's backing store, the blob's mapping among them) has its own rows.
    if (nTypes[nodes[i * nf + nType]] === 'native') continue;
    const size = nodes[i * nf + nSize];
    out.total += size;
    if (!withoutCodeblob[i]) {
      out.codeblob += size;
      continue;
    }
    const type = nTypes[nodes[i * nf + nType]];
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') out.strings += size;
    else if (type === 'code') out.code += size;
    else if (type === 'closure') out.closures += size;
    else out.objects += size;
  }
  return out;
}

function readAll(stream) {
  // The snapshot stream is synchronous underneath; read() drains it chunk by chunk.
  const chunks = [];
  let chunk;
  while ((chunk = stream.read()) !== null) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function measure() {
  const hs = v8.getHeapStatistics();
  const cs = v8.getHeapCodeStatistics();
  const state = globalThis[Symbol.for('codeblob.loader.status')];
  return {
    loadMs,
    threads: threadCount(),
    smaps: smaps(),
    heapCommitted: hs.total_physical_size, // resident: what of the committed heap is in memory
    heapUsed: hs.used_heap_size,
    malloced: hs.malloced_memory,
    bytecode: cs.bytecode_and_metadata_size,
    externalSource: cs.external_script_source_size,
    codeblob: state ? { enabled: state.enabled, backend: state.backend ?? null, hits: state.counters?.hits ?? 0, esmHits: state.counters?.esmHits ?? 0, misses: state.counters?.misses ?? 0 } : null,
  };
}

v8.setFlagsFromString('--expose-gc');
const gc = require('vm').runInNewContext('gc');
// Loading has been quiet for a while (codeblob's burst ends two seconds after it went idle).
setTimeout(() => {
  gc();
  gc();
  const m = measure();
  m.heap = snapshotBreakdown();
  process.stdout.write(JSON.stringify(m) + '\n');
  process.exit(0);
}, 3000);
