/**
 * codeblob's library API. Importing this module has no side effects; loading from a blob is
 * switched on only by `codeblob/register`.
 */
export { open, BlobStore } from './store/store.js';
export type { StoreStats, VerifyProblem, BlobPin } from './store/store.js';
export type { OpenOptions, VerifyMode } from './store/options.js';
export type { BackendName, FileFacts } from './store/backend.js';
export { nativeUnavailableReason } from './native/binding.js';
export {
  CJS_PREFIX,
  CJS_SUFFIX,
  FORMAT_VERSION,
  compatibility,
  type Entry,
  type EntryKind,
  type EntryTable,
  type Header,
  type SourceEncoding,
} from './format/index.js';
export { errors, isCodeblobError, type CodeblobError, type CodeblobErrorCode } from './errors.js';
export { VERSION } from './version.js';
export { measure, measureTree, descendants, type ProcessMemory, type TreeMemory, type MappingFigures } from './measure/smaps.js';
export { heapStatistics, settleHeap, settleHeapAsync, workerHeapStatistics, type IsolateHeap } from './measure/heap.js';
export { measureCgroups, resolveCgroup, type CgroupMemory, type NodeMemory, type SharedBlob } from './measure/containers.js';
export type { Cgroup, CgroupAccounting } from './measure/cgroup.js';
export type { BackingFile } from './measure/shared-files.js';
export { status, statusLine, type LoaderStatus, type LoaderCounters } from './loader/status.js';
