/**
 * Where sections go (the writer's half) and the rules every reader checks (bounds, alignment,
 * no overlaps). Pure: no I/O.
 */
import { codeblobError } from '../errors.js';
import { FLAG_CACHES, FORMAT_VERSION, HEADER_SIZE, encodeHeader, type Header } from './header.js';
import { sha256, entryHash } from './hash.js';
import {
  CJS_PREFIX,
  CJS_SUFFIX,
  encodeIndex,
  type EntryTable,
  type Entry,
  type EntryKind,
  type SourceEncoding,
} from './index-codec.js';

export const alignUp = (n: number, to: number) => Math.ceil(n / to) * to;

/** One file to store, as the packer hands it to the writer. */
export interface SectionInput {
  key: string;
  kind: EntryKind;
  /** The file's text (cjs, esm, json), exactly as Node reads it (UTF-8 decoded). */
  text?: string;
  /** `text` is the file's TypeScript as the packing Node stripped it (Entry.typescript). */
  typescript?: boolean;
  /** The file's bytes (assets). */
  bytes?: Uint8Array;
  /** V8 code cache for the wrapped CommonJS source. */
  cache?: Uint8Array;
  fileSize: number;
  mtimeMs: number;
  contentHash: Buffer;
  order: number;
  /** An ES module the traced run loaded only through require(esm) (Entry.requiredOnly). */
  requiredOnly?: boolean;
}

export interface BlobPlan {
  /** The packed app's root, relative to the directory that will hold the blob. */
  root: string;
  entries: SectionInput[];
  pageSize: number;
  alignment: number;
  v8Tag: number;
  nodeVersion: string;
  arch: string;
  platform: string;
  toolVersion: string;
  /** The encoded resolution table, if any (resolution-codec.ts). */
  resolutions?: Uint8Array;
  /** The root's absolute path at pack time, for caches that carry it (see Index.tracedRoot). */
  tracedRoot?: string;
}

export interface BlobLayoutStats {
  entries: number;
  latin1: number;
  utf16: number;
  binary: number;
  sourceBytes: number;
  cacheBytes: number;
  paddingBytes: number;
  indexBytes: number;
  fileSize: number;
  /** Bytes of the resolution table inside the index (0 without one). */
  resolutionBytes: number;
  /** Where the sections of the modules the traced run loaded end: [dataStart, hotEnd) is read at startup. */
  hotBytes: number;
}

/** True when every char fits in one byte, so the text can be an external one-byte string. */
export function fitsLatin1(text: string): boolean {
  // A regex test is far faster than a JS loop on multi-megabyte sources.
  return !/[^\x00-\xff]/.test(text);
}

function encodeUnit(input: SectionInput): { bytes: Buffer; encoding: SourceEncoding; chars: number; shebang: boolean } {
  if (input.kind === 'asset') {
    if (!input.bytes) throw new TypeError(`asset ${input.key} has no bytes`);
    return { bytes: Buffer.from(input.bytes), encoding: 'binary', chars: input.bytes.byteLength, shebang: false };
  }
  if (typeof input.text !== 'string') throw new TypeError(`${input.kind} entry ${input.key} has no text`);
  const text = input.text;
  const shebang = input.kind === 'cjs' && text.startsWith('#!');
  // A "#!" line is only legal at the very start of a script; inside the wrapper it becomes a
  // same-length comment, so every column stays where it was.
  const unit = input.kind === 'cjs' ? CJS_PREFIX + (shebang ? '//' + text.slice(2) : text) + CJS_SUFFIX : text;
  const encoding: SourceEncoding = fitsLatin1(unit) ? 'latin1' : 'utf16le';
  return { bytes: Buffer.from(unit, encoding), encoding, chars: text.length, shebang };
}

const byKey = (a: SectionInput, b: SectionInput) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/**
 * Lays out a blob: header, index, then for each entry its source section and cache section,
 * each starting on a multiple of `alignment`. Hot first: the sections of modules the traced run
 * loaded come in the order it first loaded them, so startup reads the file front to back; files
 * added without running follow, by key. The index lists entries by key. Deterministic: nothing
 * time- or machine-dependent goes in beyond what the plan carries.
 */
export function layoutBlob(plan: BlobPlan): { chunks: Buffer[]; header: Header; stats: BlobLayoutStats } {
  const inputs = [...plan.entries].sort(byKey);
  const units = inputs.map(encodeUnit);
  // Positions (into inputs) in file order: loaded ones by first-load order, then the rest by key.
  const fileOrder = inputs
    .map((input, i) => i)
    .sort((a, b) => {
      const oa = inputs[a]!.order;
      const ob = inputs[b]!.order;
      if (oa >= 0 && ob >= 0) return oa - ob || byKey(inputs[a]!, inputs[b]!);
      if (oa >= 0 || ob >= 0) return oa >= 0 ? -1 : 1;
      return a - b;
    });
  const cacheAlign = Math.max(8, plan.alignment);

  // The index records offsets, and the data starts after the index: grow the guess for the
  // data start until the encoded index fits in front of it.
  let dataStart = alignUp(HEADER_SIZE + 64 * inputs.length + 64, plan.alignment);
  for (;;) {
    let at = dataStart;
    let hotEnd = dataStart;
    const entries: Entry[] = new Array(inputs.length);
    for (const i of fileOrder) {
      const input = inputs[i]!;
      const unit = units[i]!;
      const sourceOffset = alignUp(at, plan.alignment);
      at = sourceOffset + unit.bytes.length;
      let cacheOffset = 0;
      let cacheLength = 0;
      if (input.cache && input.cache.byteLength > 0) {
        cacheOffset = alignUp(at, cacheAlign);
        cacheLength = input.cache.byteLength;
        at = cacheOffset + cacheLength;
      }
      if (input.order >= 0) hotEnd = at;
      const wrapped = input.kind === 'cjs';
      entries[i] = {
        key: input.key,
        kind: input.kind,
        encoding: unit.encoding,
        chars: unit.chars,
        prefixChars: wrapped ? CJS_PREFIX.length : 0,
        suffixChars: wrapped ? CJS_SUFFIX.length : 0,
        shebang: unit.shebang,
        typescript: input.typescript === true,
        ...(input.kind === 'esm' && input.requiredOnly === true && { requiredOnly: true }),
        sourceOffset,
        sourceLength: unit.bytes.length,
        sourceHash: entryHash(unit.bytes),
        cacheOffset,
        cacheLength,
        cacheHash: cacheLength > 0 ? entryHash(input.cache!) : null,
        fileSize: input.fileSize,
        mtimeMs: input.mtimeMs,
        contentHash: input.contentHash,
        order: input.order,
      };
    }
    const index = encodeIndex({
      root: plan.root,
      entries,
      ...(plan.resolutions && { resolutions: plan.resolutions }),
      ...(plan.tracedRoot !== undefined && { tracedRoot: plan.tracedRoot }),
    });
    if (HEADER_SIZE + index.length > dataStart) {
      dataStart = alignUp(HEADER_SIZE + index.length, plan.alignment);
      continue;
    }
    const fileSize = Math.max(at, dataStart);
    const header: Header = {
      formatVersion: FORMAT_VERSION,
      pageSize: plan.pageSize,
      alignment: plan.alignment,
      flags: entries.some((e) => e.cacheLength > 0) ? FLAG_CACHES : 0,
      v8Tag: plan.v8Tag,
      entryCount: entries.length,
      fileSize,
      indexOffset: HEADER_SIZE,
      indexLength: index.length,
      indexHash: sha256(index),
      nodeVersion: plan.nodeVersion,
      arch: plan.arch,
      platform: plan.platform,
      toolVersion: plan.toolVersion,
    };
    const chunks: Buffer[] = [encodeHeader(header), index];
    let written = HEADER_SIZE + index.length;
    const pad = (to: number) => {
      if (to > written) chunks.push(Buffer.alloc(to - written));
      written = to;
    };
    let sourceBytes = 0;
    let cacheBytes = 0;
    for (const i of fileOrder) {
      const e = entries[i]!;
      pad(e.sourceOffset);
      chunks.push(units[i]!.bytes);
      written += e.sourceLength;
      sourceBytes += e.sourceLength;
      if (e.cacheLength > 0) {
        pad(e.cacheOffset);
        chunks.push(Buffer.from(inputs[i]!.cache!));
        written += e.cacheLength;
        cacheBytes += e.cacheLength;
      }
    }
    pad(fileSize);
    const count = (enc: SourceEncoding) => entries.filter((e) => e.encoding === enc).length;
    return {
      chunks,
      header,
      stats: {
        entries: entries.length,
        latin1: count('latin1'),
        utf16: count('utf16le'),
        binary: count('binary'),
        sourceBytes,
        cacheBytes,
        paddingBytes: fileSize - sourceBytes - cacheBytes - index.length - HEADER_SIZE,
        indexBytes: index.length,
        fileSize,
        resolutionBytes: plan.resolutions?.byteLength ?? 0,
        hotBytes: hotEnd - dataStart,
      },
    };
  }
}

/**
 * Checks every section of every entry: inside the data area, aligned, and not overlapping any
 * other section. Throws ERR_CODEBLOB_BAD_FORMAT naming the first rule broken.
 */
export function checkSections(header: Header, table: EntryTable): void {
  table.checkSections(header.indexOffset + header.indexLength, header.fileSize, header.alignment);
}
