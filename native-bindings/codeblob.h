/*
 * codeblob native surface — the whole contract, in one place.
 *
 * Why native at all, and no more than this:
 *   - Node cannot map a file, and only Node-API can hand V8 a string whose characters live
 *     outside the heap (node_api_create_external_string_*): the reason codeblob exists.
 *   - Node has no madvise(2) or mincore(2): dropping the blob's pages after loading and
 *     measuring what is resident need them.
 *   - Work off the loading thread without a worker thread's cost (an isolate, ~10 MiB, tens
 *     of ms to start): the startup range's hashes and files' stats, on detached threads of
 *     idle priority that share memory with the loading thread through a few status bytes.
 *   - stat(2)/fstat(2) without a Stats object, for the checks made before every module.
 *   - SHA-256 without node:crypto (OpenSSL's, from the Node binary, as the hash thread uses):
 *     a worker checks the blob's header, index and sections, and loading node:crypto for that
 *     would cost every worker half a MiB of heap. Likewise V8's code cache tag (cacheTag) without
 *     node:v8.
 * Everything else (format, validation, lookup, the loader) is TypeScript; src/native/binding.ts
 * is the one file that loads this addon and translates its errors. Node-API only: one build
 * serves Node 20..26.
 *
 * Lifetime model. One mapping per (device, inode, size) per process, shared by every worker
 * thread of the process. Each mapping is reference-counted: every ArrayBuffer handed to an
 * isolate holds one reference and every external string holds one. The pages are unmapped
 * when the last reference is released (ArrayBuffer detached or collected, strings collected),
 * never before, so no JS value can ever point at unmapped memory. The addon pins itself in
 * memory (RTLD_NODELETE) because V8 may run string finalizers after Node has unloaded it.
 *
 * Errors: every failed system call throws an Error with `code` (e.g. "ENOENT"), `errno`
 * (negative, as Node's fs does), `syscall` and, where there is one, `path`. Argument errors
 * throw a TypeError/RangeError with code "ERR_CODEBLOB_NATIVE_ARGUMENT"; a Node-API call that
 * fails throws "ERR_CODEBLOB_NAPI"; map() on a runtime that forbids external ArrayBuffers (V8
 * sandbox builds, e.g. Electron) throws "ERR_CODEBLOB_NO_EXTERNAL_BUFFERS". All three are in
 * src/errors.ts.
 *
 * Exports: `abi` (CODEBLOB_NATIVE_ABI below; binding.ts refuses another), `pageSize`
 * (sysconf(_SC_PAGESIZE)), and these functions:
 *
 *
 *   map(path: string) -> { buffer: ArrayBuffer, dev, ino, size, mtimeMs, ctimeSec, ctimeNsec, mode, uid, reused }
 *       open(O_RDONLY|O_CLOEXEC) + fstat + mmap(PROT_READ, MAP_SHARED) + close. The whole file
 *       as one external ArrayBuffer (read-only: writing through a view is SIGSEGV — callers
 *       must never do it). `reused` is true when this process already had the mapping.
 *       Throws on an empty file (code "EINVAL", syscall "mmap") and on any failed call.
 *
 *   release(buffer: ArrayBuffer) -> undefined
 *       Detaches `buffer` (every view over it becomes zero-length) and drops its reference.
 *       Idempotent. Strings created from the mapping keep it mapped until they are collected.
 *
 *   externalString(buffer, byteOffset, charCount, twoByte: boolean, out: Uint8Array) -> string
 *       A string whose characters are the mapped bytes: charCount Latin-1 bytes, or charCount
 *       UTF-16LE units (twoByte; byteOffset 2-aligned), from byteOffset. out[0] is set to 1 when
 *       Node copied the characters instead (V8 sandbox builds, tiny strings), else 0.
 *       RangeError when the range is outside the mapping.
 *
 *   madvise(buffer, byteOffset, length, advice: "normal"|"random"|"sequential"|"willneed"|"dontneed")
 *       The range is widened to whole pages. Throws on failure (syscall "madvise").
 *
 *   residentPages(buffer, byteOffset, length) -> number
 *       How many pages of the (page-widened) range are resident in this process' page tables
 *       or the page cache, as mincore(2) reports them.
 *
 *   liveMappings() -> number    mappings this process holds now (for leak tests)
 *
 *   statMany(paths) -> Float64Array
 *       stat(2) of each path in a NUL-separated string: 3 numbers per path, kind (0 absent or
 *       unreadable, 1 file, 2 directory, 3 other), mtime in ms exactly as Node's Stats.mtimeMs,
 *       size. Used to check a resolution table's guards in one call.
 *
 *   fstatInto(fd, out: Float64Array) -> boolean
 *       fstat(2) of an open file descriptor into out[0] (size) and out[1] (mtimeMs, as Node
 *       computes it), without making an object; false when fstat fails (out untouched).
 *
 *   statAhead(paths) -> Float64Array
 *       statMany on a detached thread of idle priority, so the loading thread finds the
 *       guards it needs already statted. The Float64Array holds the 3 numbers per path; its
 *       buffer goes on with one status byte per path (0 pending, 1 done: the row is complete,
 *       or 3 written by the caller when it stats the path itself: the thread then skips it and
 *       never writes that status again), then a cancel byte the caller sets to stop the thread,
 *       then a byte that becomes 1 once the thread has ended. Collecting the buffer stops the
 *       thread too; the memory is freed when both are done with it.
 *
 *   verifyAhead(buffer, ranges: Float64Array, expected: Uint8Array, identity?: string) -> Uint8Array | null
 *       Hashes sections of the mapping (SHA-256, compared with `expected`, the same number of
 *       bytes per section, 1 to 32) in the given order on a detached thread of idle priority,
 *       so the loading thread finds the sections it needs already checked. `ranges` holds
 *       (offset, length) pairs. Returns count + 2 bytes: per section 0 pending, 1 sound, 2
 *       mismatch, or 3 written by the caller when it hashes the section itself (the thread then
 *       skips it; the caller writes 1 or 2 once it knows); then a cancel byte (set non-zero, it
 *       stops the thread for every caller sharing it); then a byte that becomes 1 once the
 *       thread has ended (it no longer reads the mapping). The thread holds a reference on the
 *       mapping until it ends. Returns null when the process has no SHA256() to call (it is
 *       looked up in the Node binary at run time).
 *       Sharing: a call on a mapping whose last job checks the same ranges against the same
 *       hashes for the same `identity` (the caller's facts of the file it opened), and has not
 *       been stopped, joins that job: its array is a view of the same bytes (worker threads of
 *       one process share one mapping, so the startup range is hashed once per process). A
 *       stopped job is replaced by a new one that starts with the sections it found sound. No
 *       `identity`: never shared. The mapping keeps its last job's status bytes until unmapped.
 *
 *   functionCache(fn: Function) -> Buffer | null
 *       v8::ScriptCompiler::CreateCodeCacheForFunction(fn) for a function compiled by
 *       vm.compileFunction: its code cache as of now (after it ran: with the inner functions
 *       compiled meanwhile), copied into a Buffer; null when the Node binary does not export
 *       it. For the packer on Node 20 (see the function's comment in codeblob.c); TypeError for
 *       a non-function.
 *
 *   cacheTag() -> number | null
 *       v8::ScriptCompiler::CachedDataVersionTag(), as v8.cachedDataVersionTag() returns it (the
 *       V8 version, flags and CPU features); null when the Node binary does not export it.
 *
 *   sha256(data: Uint8Array, out: Uint8Array) -> boolean
 *       SHA-256 of data into out[0..32) (out must hold 32 bytes); false, out untouched, when the
 *       process has no SHA256() to call (looked up in the Node binary at run time, as below).
 *
 *   verifyAheadStop(status: Uint8Array) -> undefined
 *       This caller wants no more from the job behind `status` (idempotent); the thread stops
 *       once no array sharing the job wants more, or all of them are collected.
 */
#ifndef CODEBLOB_H
#define CODEBLOB_H

#define CODEBLOB_NATIVE_ABI 7

#endif
