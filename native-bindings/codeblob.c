/*
 * codeblob's native half: map a blob read-only, once per process, and hand V8 views and
 * external strings into it. The contract (arguments, lifetimes, errors) is in codeblob.h.
 */
#include "codeblob.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <node_api.h>

struct verify_job;

typedef struct mapping {
  struct mapping* next;
  dev_t dev;
  ino_t ino;
  size_t size;
  char* addr;
  long refs;
  /* The last verifyAhead job started on this mapping (holding one reference on it), shared by
   * every thread of the process that asks for the same check; NULL when none. */
  struct verify_job* job;
} mapping;

static void job_release(struct verify_job* job);

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static mapping* registry = NULL;
static long live_mappings = 0;

/* ---- errors ------------------------------------------------------------------------ */

static const char* errno_code(int err) {
  switch (err) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EISDIR: return "EISDIR";
    case ENOTDIR: return "ENOTDIR";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENODEV: return "ENODEV";
    case EOVERFLOW: return "EOVERFLOW";
    case EAGAIN: return "EAGAIN";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EBADF: return "EBADF";
    case EFBIG: return "EFBIG";
    case ETXTBSY: return "ETXTBSY";
    case ENXIO: return "ENXIO";
    case EIO: return "EIO";
    default: return "EUNKNOWN";
  }
}

/* Throws an Error shaped like Node's fs errors: message, code, errno (negative), syscall, path. */
static void throw_errno(napi_env env, int err, const char* syscall, const char* path) {
  char message[1200];
  if (path != NULL) {
    snprintf(message, sizeof message, "%s: %s, %s '%s'", errno_code(err), strerror(err), syscall, path);
  } else {
    snprintf(message, sizeof message, "%s: %s, %s", errno_code(err), strerror(err), syscall);
  }
  napi_value msg, code, error, value;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) != napi_ok) return;
  if (napi_create_string_utf8(env, errno_code(err), NAPI_AUTO_LENGTH, &code) != napi_ok) return;
  if (napi_create_error(env, code, msg, &error) != napi_ok) return;
  if (napi_create_int32(env, -err, &value) == napi_ok) napi_set_named_property(env, error, "errno", value);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &value) == napi_ok) {
    napi_set_named_property(env, error, "syscall", value);
  }
  if (path != NULL && napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &value) == napi_ok) {
    napi_set_named_property(env, error, "path", value);
  }
  napi_throw(env, error);
}

static void throw_argument(napi_env env, bool range, const char* message) {
  if (range) {
    napi_throw_range_error(env, "ERR_CODEBLOB_NATIVE_ARGUMENT", message);
  } else {
    napi_throw_type_error(env, "ERR_CODEBLOB_NATIVE_ARGUMENT", message);
  }
}

/* Every Node-API status is checked; a failure becomes a pending JS exception (if Node did not
 * already set one) and the function returns NULL to JS. */
#define NAPI_CALL(env, call)                                                         \
  do {                                                                               \
    napi_status status_ = (call);                                                    \
    if (status_ != napi_ok) {                                                        \
      bool pending_ = false;                                                         \
      napi_is_exception_pending((env), &pending_);                                   \
      if (!pending_) {                                                               \
        const napi_extended_error_info* info_ = NULL;                                \
        napi_get_last_error_info((env), &info_);                                     \
        napi_throw_error((env), "ERR_CODEBLOB_NAPI",                                 \
                         info_ && info_->error_message ? info_->error_message        \
                                                       : "Node-API call failed");    \
      }                                                                              \
      return NULL;                                                                   \
    }                                                                                \
  } while (0)

/* ---- the registry ------------------------------------------------------------------ */

static void mapping_release(mapping* m) {
  pthread_mutex_lock(&registry_lock);
  if (--m->refs > 0) {
    pthread_mutex_unlock(&registry_lock);
    return;
  }
  for (mapping** p = &registry; *p != NULL; p = &(*p)->next) {
    if (*p == m) {
      *p = m->next;
      break;
    }
  }
  live_mappings--;
  struct verify_job* job = m->job;
  pthread_mutex_unlock(&registry_lock);
  if (job != NULL) job_release(job);
  munmap(m->addr, m->size);
  free(m);
}

/* Is [offset, offset + length) a range of whole bytes inside a mapping of `size` bytes? */
static bool range_inside(double offset, double length, size_t size) {
  return offset >= 0 && length >= 0 && offset == (double)(uint64_t)offset &&
         length == (double)(uint64_t)length && offset + length <= (double)size;
}

/* Finds the mapping an ArrayBuffer from map() covers and checks [offset, offset+length). */
static mapping* mapping_of(napi_env env, napi_value buffer, double offset, double length,
                           char** start) {
  void* data = NULL;
  size_t byte_length = 0;
  bool is_ab = false;
  if (napi_is_arraybuffer(env, buffer, &is_ab) != napi_ok || !is_ab) {
    throw_argument(env, false, "expected the ArrayBuffer returned by map()");
    return NULL;
  }
  if (napi_get_arraybuffer_info(env, buffer, &data, &byte_length) != napi_ok || data == NULL) {
    throw_argument(env, false, "the mapping was released");
    return NULL;
  }
  mapping* found = NULL;
  pthread_mutex_lock(&registry_lock);
  for (mapping* m = registry; m != NULL; m = m->next) {
    if (m->addr == (char*)data && m->size == byte_length) {
      found = m;
      break;
    }
  }
  pthread_mutex_unlock(&registry_lock);
  if (found == NULL) {
    throw_argument(env, false, "expected the ArrayBuffer returned by map()");
    return NULL;
  }
  if (!range_inside(offset, length, found->size)) {
    throw_argument(env, true, "range is outside the mapping");
    return NULL;
  }
  *start = found->addr + (size_t)offset;
  return found;
}

/* ---- map / release ----------------------------------------------------------------- */

static void finalize_buffer(node_api_basic_env env, void* data, void* hint) {
  mapping_release((mapping*)hint);
}

static bool set_number(napi_env env, napi_value obj, const char* name, double v) {
  napi_value value;
  return napi_create_double(env, v, &value) == napi_ok &&
         napi_set_named_property(env, obj, name, value) == napi_ok;
}

static napi_value js_map(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[4097];
  size_t path_len = 0;
  napi_valuetype type;
  NAPI_CALL(env, napi_typeof(env, argv[0], &type));
  if (argc < 1 || type != napi_string) {
    throw_argument(env, false, "path must be a string");
    return NULL;
  }
  NAPI_CALL(env, napi_get_value_string_utf8(env, argv[0], path, sizeof path, &path_len));
  if (path_len >= sizeof path - 1) {
    throw_errno(env, ENAMETOOLONG, "open", NULL);
    return NULL;
  }
  if (strlen(path) != path_len) {
    throw_argument(env, false, "path must not contain NUL characters");
    return NULL;
  }

  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw_errno(env, errno, "open", path);
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    throw_errno(env, err, "fstat", path);
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    throw_errno(env, S_ISDIR(st.st_mode) ? EISDIR : EINVAL, "open", path);
    return NULL;
  }
  if (st.st_size <= 0) {
    close(fd);
    throw_errno(env, EINVAL, "mmap", path);
    return NULL;
  }

  /* Lookup and insert under one lock: two threads mapping the same file at the same moment
   * must end up sharing one mapping. mmap itself is quick enough to hold the lock across. */
  mapping* m = NULL;
  bool reused = false;
  int map_errno = 0;
  pthread_mutex_lock(&registry_lock);
  for (mapping* it = registry; it != NULL; it = it->next) {
    if (it->dev == st.st_dev && it->ino == st.st_ino && it->size == (size_t)st.st_size) {
      m = it;
      m->refs++;
      reused = true;
      break;
    }
  }
  if (m == NULL) {
    void* addr = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (addr == MAP_FAILED) {
      map_errno = errno;
    } else if ((m = calloc(1, sizeof *m)) == NULL) {
      munmap(addr, (size_t)st.st_size);
      map_errno = ENOMEM;
    } else {
      m->dev = st.st_dev;
      m->ino = st.st_ino;
      m->size = (size_t)st.st_size;
      m->addr = addr;
      m->refs = 1;
      m->next = registry;
      registry = m;
      live_mappings++;
    }
  }
  pthread_mutex_unlock(&registry_lock);
  if (m == NULL) {
    close(fd);
    throw_errno(env, map_errno, map_errno == ENOMEM ? "malloc" : "mmap", path);
    return NULL;
  }
  close(fd);

  napi_value buffer;
  napi_status status =
      napi_create_external_arraybuffer(env, m->addr, m->size, finalize_buffer, m, &buffer);
  if (status != napi_ok) {
    /* e.g. napi_no_external_buffers_allowed on V8 sandbox builds: the JS side falls back to
     * the read backend. The finalizer was not registered, so drop the reference here. */
    mapping_release(m);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) {
      napi_throw_error(env, status == napi_no_external_buffers_allowed
                                ? "ERR_CODEBLOB_NO_EXTERNAL_BUFFERS"
                                : "ERR_CODEBLOB_NAPI",
                       "this Node build does not allow external ArrayBuffers");
    }
    return NULL;
  }

  napi_value result;
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, napi_set_named_property(env, result, "buffer", buffer));
  bool ok = set_number(env, result, "dev", (double)st.st_dev) &&
            set_number(env, result, "ino", (double)st.st_ino) &&
            set_number(env, result, "size", (double)st.st_size) &&
            set_number(env, result, "mtimeMs",
                       (double)st.st_mtim.tv_sec * 1e3 + (double)st.st_mtim.tv_nsec / 1e6) &&
            set_number(env, result, "ctimeSec", (double)st.st_ctim.tv_sec) &&
            set_number(env, result, "ctimeNsec", (double)st.st_ctim.tv_nsec) &&
            set_number(env, result, "mode", (double)st.st_mode) &&
            set_number(env, result, "uid", (double)st.st_uid);
  if (!ok) return NULL;
  napi_value reused_value;
  NAPI_CALL(env, napi_get_boolean(env, reused, &reused_value));
  NAPI_CALL(env, napi_set_named_property(env, result, "reused", reused_value));
  return result;
}

static napi_value js_release(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool is_ab = false;
  if (argc < 1 || napi_is_arraybuffer(env, argv[0], &is_ab) != napi_ok || !is_ab) {
    throw_argument(env, false, "expected the ArrayBuffer returned by map()");
    return NULL;
  }
  bool detached = false;
  NAPI_CALL(env, napi_is_detached_arraybuffer(env, argv[0], &detached));
  if (!detached) {
    /* The backing store's deleter (finalize_buffer) drops the reference once V8 lets go. */
    NAPI_CALL(env, napi_detach_arraybuffer(env, argv[0]));
  }
  return NULL;
}

/* ---- external strings -------------------------------------------------------------- */

static void finalize_string(node_api_basic_env env, void* data, void* hint) {
  mapping_release((mapping*)hint);
}

/* externalString(buffer, byteOffset, charCount, twoByte, out) (see codeblob.h). */
static napi_value js_external_string(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool two_byte = false;
  if (argc < 5 || napi_get_value_bool(env, argv[3], &two_byte) != napi_ok) {
    throw_argument(env, false, "expected (buffer, byteOffset, charCount, twoByte, out)");
    return NULL;
  }
  double offset = 0, count = 0;
  if (napi_get_value_double(env, argv[1], &offset) != napi_ok ||
      napi_get_value_double(env, argv[2], &count) != napi_ok) {
    throw_argument(env, false, "byteOffset and charCount must be numbers");
    return NULL;
  }
  uint8_t* out = NULL;
  size_t out_len = 0;
  napi_typedarray_type out_type;
  bool is_typed = false;
  NAPI_CALL(env, napi_is_typedarray(env, argv[4], &is_typed));
  if (!is_typed) {
    throw_argument(env, false, "out must be a Uint8Array");
    return NULL;
  }
  NAPI_CALL(env, napi_get_typedarray_info(env, argv[4], &out_type, &out_len, (void**)&out, NULL, NULL));
  if (out_type != napi_uint8_array || out_len < 1) {
    throw_argument(env, false, "out must be a Uint8Array of length >= 1");
    return NULL;
  }
  if (two_byte && ((uint64_t)offset % 2) != 0) {
    throw_argument(env, true, "UTF-16 strings must start on an even byte offset");
    return NULL;
  }
  char* start = NULL;
  mapping* m = mapping_of(env, argv[0], offset, two_byte ? count * 2 : count, &start);
  if (m == NULL) return NULL;

  pthread_mutex_lock(&registry_lock);
  m->refs++;
  pthread_mutex_unlock(&registry_lock);

  napi_value result = NULL;
  bool copied = false;
  napi_status status =
      two_byte ? node_api_create_external_string_utf16(env, (char16_t*)start, (size_t)count,
                                                       finalize_string, m, &result, &copied)
               : node_api_create_external_string_latin1(env, start, (size_t)count,
                                                        finalize_string, m, &result, &copied);
  if (status != napi_ok) {
    mapping_release(m);
    NAPI_CALL(env, status);
  }
  out[0] = copied ? 1 : 0;
  return result;
}

/* ---- paging ------------------------------------------------------------------------ */

static bool page_range(napi_env env, napi_callback_info info, size_t want, napi_value* argv,
                       char** start, size_t* length) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    throw_argument(env, false, "expected (buffer, byteOffset, length, ...)");
    return false;
  }
  double offset = 0, len = 0;
  if (napi_get_value_double(env, argv[1], &offset) != napi_ok ||
      napi_get_value_double(env, argv[2], &len) != napi_ok) {
    throw_argument(env, false, "byteOffset and length must be numbers");
    return false;
  }
  char* begin = NULL;
  if (mapping_of(env, argv[0], offset, len, &begin) == NULL) return false;
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t lo = (uintptr_t)begin & ~(page - 1);
  uintptr_t hi = ((uintptr_t)begin + (uintptr_t)len + page - 1) & ~(page - 1);
  *start = (char*)lo;
  *length = (size_t)(hi - lo);
  return true;
}

static napi_value js_madvise(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char* start = NULL;
  size_t length = 0;
  if (!page_range(env, info, 4, argv, &start, &length)) return NULL;
  char advice_name[16];
  size_t advice_len = 0;
  if (napi_get_value_string_utf8(env, argv[3], advice_name, sizeof advice_name, &advice_len) != napi_ok ||
      strlen(advice_name) != advice_len) {
    throw_argument(env, false, "advice must be a string");
    return NULL;
  }
  int advice;
  if (strcmp(advice_name, "normal") == 0) advice = MADV_NORMAL;
  else if (strcmp(advice_name, "random") == 0) advice = MADV_RANDOM;
  else if (strcmp(advice_name, "sequential") == 0) advice = MADV_SEQUENTIAL;
  else if (strcmp(advice_name, "willneed") == 0) advice = MADV_WILLNEED;
  else if (strcmp(advice_name, "dontneed") == 0) advice = MADV_DONTNEED;
  else {
    throw_argument(env, false, "advice must be normal, random, sequential, willneed or dontneed");
    return NULL;
  }
  if (length > 0 && madvise(start, length, advice) != 0) {
    throw_errno(env, errno, "madvise", NULL);
  }
  return NULL;
}

static napi_value js_resident_pages(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char* start = NULL;
  size_t length = 0;
  if (!page_range(env, info, 3, argv, &start, &length)) return NULL;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t pages = length / page;
  double resident = 0;
  unsigned char vec[4096];
  for (size_t done = 0; done < pages;) {
    size_t chunk = pages - done < sizeof vec ? pages - done : sizeof vec;
    if (mincore(start + done * page, chunk * page, vec) != 0) {
      throw_errno(env, errno, "mincore", NULL);
      return NULL;
    }
    for (size_t i = 0; i < chunk; i++) resident += vec[i] & 1;
    done += chunk;
  }
  napi_value result;
  NAPI_CALL(env, napi_create_double(env, resident, &result));
  return result;
}

static napi_value js_live_mappings(napi_env env, napi_callback_info info) {
  pthread_mutex_lock(&registry_lock);
  long live = live_mappings;
  pthread_mutex_unlock(&registry_lock);
  napi_value result;
  NAPI_CALL(env, napi_create_double(env, (double)live, &result));
  return result;
}

/* One path's row for statMany / statAhead: kind (0 absent or unreadable, 1 file, 2 directory,
 * 3 other), mtime in milliseconds computed exactly as Node's Stats.mtimeMs (sec * 1000 +
 * nsec / 1e6, in doubles), size. */
static void stat_row(const char* path, double* row) {
  struct stat st;
  if (stat(path, &st) != 0) {
    row[0] = 0;
    row[1] = 0;
    row[2] = 0;
  } else {
    row[0] = S_ISREG(st.st_mode) ? 1 : S_ISDIR(st.st_mode) ? 2 : 3;
    row[1] = (double)st.st_mtim.tv_sec * 1000.0 + (double)st.st_mtim.tv_nsec / 1000000.0;
    row[2] = (double)st.st_size;
  }
}

/* Copies a JS string argument into a malloc'd NUL-terminated UTF-8 buffer (NULL, exception
 * pending, when it is not a string or memory runs out). */
static char* string_arg(napi_env env, napi_value value, const char* what, size_t* length) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok) {
    throw_argument(env, false, what);
    return NULL;
  }
  char* text = malloc(len + 1);
  if (text == NULL) {
    throw_errno(env, ENOMEM, "malloc", NULL);
    return NULL;
  }
  if (napi_get_value_string_utf8(env, value, text, len + 1, &len) != napi_ok) {
    free(text);
    throw_argument(env, false, what);
    return NULL;
  }
  *length = len;
  return text;
}

/* statMany(paths): stat() each NUL-separated path; a Float64Array of 3 numbers per path (see
 * stat_row). One call for a whole resolution table's guards instead of one fs.statSync each. */
static napi_value js_stat_many(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  size_t len = 0;
  if (argc < 1) {
    throw_argument(env, false, "paths must be a string");
    return NULL;
  }
  char* text = string_arg(env, argv[0], "paths must be a string", &len);
  if (text == NULL) return NULL;
  size_t count = 1;
  for (size_t i = 0; i < len; i++) count += text[i] == '\0';
  napi_value buffer, result;
  double* out = NULL;
  if (napi_create_arraybuffer(env, count * 3 * sizeof(double), (void**)&out, &buffer) != napi_ok) {
    free(text);
    return NULL;
  }
  const char* path = text;
  for (size_t i = 0; i < count; i++) {
    stat_row(path, out + i * 3);
    path += strlen(path) + 1;
  }
  free(text);
  NAPI_CALL(env, napi_create_typedarray(env, napi_float64_array, count * 3, buffer, 0, &result));
  return result;
}

/* fstatInto(fd, out: Float64Array(>= 2)) -> boolean: fstat(fd) into out[0] = size, out[1] =
 * mtime in ms as Node's Stats.mtimeMs; false (out untouched) when fstat fails. No object is
 * made: the loader calls it before every module it serves, to see the blob was not written. */
static napi_value js_fstat_into(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd = -1;
  bool is_typed = false;
  napi_typedarray_type type;
  size_t items = 0;
  double* out = NULL;
  if (argc >= 2) NAPI_CALL(env, napi_is_typedarray(env, argv[1], &is_typed));
  if (is_typed) NAPI_CALL(env, napi_get_typedarray_info(env, argv[1], &type, &items, (void**)&out, NULL, NULL));
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || !is_typed ||
      type != napi_float64_array || items < 2) {
    throw_argument(env, false, "expected (fd, Float64Array of at least 2)");
    return NULL;
  }
  struct stat st;
  bool ok = fstat(fd, &st) == 0;
  if (ok) {
    out[0] = (double)st.st_size;
    out[1] = (double)st.st_mtim.tv_sec * 1000.0 + (double)st.st_mtim.tv_nsec / 1000000.0;
  }
  napi_value result;
  NAPI_CALL(env, napi_get_boolean(env, ok, &result));
  return result;
}

/* Starts a detached thread of idle priority (SCHED_IDLE) where the system allows it, else of the
 * caller's priority; returns pthread_create's error (0 on success). */
static int start_idle_thread(void* (*run)(void*), void* arg) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
  pthread_attr_setschedpolicy(&attr, SCHED_IDLE);
  struct sched_param param = {0};
  pthread_attr_setschedparam(&attr, &param);
  pthread_t thread;
  int err = pthread_create(&thread, &attr, run, arg);
  if (err != 0) {
    pthread_attr_setinheritsched(&attr, PTHREAD_INHERIT_SCHED);
    err = pthread_create(&thread, &attr, run, arg);
  }
  pthread_attr_destroy(&attr);
  return err;
}

/* ---- stat ahead -------------------------------------------------------------------- */

enum { STAT_PENDING = 0, STAT_DONE = 1, STAT_TAKEN = 3 };

typedef struct stat_job {
  char* text;       /* the NUL-separated paths */
  size_t count;
  double* rows;     /* 3 per path, then the status bytes: shared with JS (one block) */
  uint8_t* status;  /* one byte per path, the cancel byte, the finished byte */
  long refs;        /* the thread, and the ArrayBuffer JS holds */
} stat_job;

static void stat_job_release(stat_job* job) {
  if (__atomic_sub_fetch(&job->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
  free(job->text);
  free(job->rows);
  free(job);
}

static void* stat_thread(void* arg) {
  stat_job* job = arg;
  const char* path = job->text;
  for (size_t i = 0; i < job->count; i++, path += strlen(path) + 1) {
    if (__atomic_load_n(&job->status[job->count], __ATOMIC_RELAXED) != 0) break; /* cancelled */
    if (__atomic_load_n(&job->status[i], __ATOMIC_RELAXED) != STAT_PENDING) continue; /* taken */
    double row[3];
    stat_row(path, row);
    /* The caller may have taken the path meanwhile: then it no longer reads this row. */
    memcpy(job->rows + i * 3, row, sizeof row);
    uint8_t pending = STAT_PENDING;
    __atomic_compare_exchange_n(&job->status[i], &pending, STAT_DONE, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
  }
  __atomic_store_n(&job->status[job->count + 1], 1, __ATOMIC_RELEASE);
  stat_job_release(job);
  return NULL;
}

static void finalize_stat_job(node_api_basic_env env, void* data, void* hint) {
  stat_job* job = hint;
  __atomic_store_n(&job->status[job->count], 1, __ATOMIC_RELAXED); /* nobody reads on: stop */
  stat_job_release(job);
}

/* statAhead(paths) -> Float64Array: statMany on a thread of its own (see codeblob.h). */
static napi_value js_stat_ahead(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) {
    throw_argument(env, false, "paths must be a string");
    return NULL;
  }
  size_t len = 0;
  char* text = string_arg(env, argv[0], "paths must be a string", &len);
  if (text == NULL) return NULL;
  size_t count = 1;
  for (size_t i = 0; i < len; i++) count += text[i] == '\0';
  size_t bytes = count * 3 * sizeof(double) + count + 2;
  stat_job* job = calloc(1, sizeof *job);
  double* rows = job == NULL ? NULL : calloc(1, bytes);
  if (rows == NULL) {
    free(job);
    free(text);
    throw_errno(env, ENOMEM, "statAhead", NULL);
    return NULL;
  }
  job->text = text;
  job->count = count;
  job->rows = rows;
  job->status = (uint8_t*)(rows + count * 3);
  job->refs = 1; /* the ArrayBuffer's */
  napi_value buffer, result;
  napi_status status = napi_create_external_arraybuffer(env, rows, bytes, finalize_stat_job, job, &buffer);
  if (status != napi_ok) {
    stat_job_release(job);
    NAPI_CALL(env, status);
  }
  NAPI_CALL(env, napi_create_typedarray(env, napi_float64_array, count * 3, buffer, 0, &result));

  /* Idle priority, as verifyAhead: it must never take a core from a loading thread, which stats
   * what it needs itself when this thread has not got there. */
  __atomic_add_fetch(&job->refs, 1, __ATOMIC_ACQ_REL);
  int err = start_idle_thread(stat_thread, job);
  if (err != 0) {
    /* No thread: every path stays pending and the caller stats what it needs itself. */
    __atomic_store_n(&job->status[count + 1], 1, __ATOMIC_RELEASE);
    stat_job_release(job);
  }
  return result;
}

/* ---- the code cache tag -------------------------------------------------------------- */

/* v8::ScriptCompiler::CachedDataVersionTag(), a static function of V8's public API that the Node
 * binary exports: what v8.cachedDataVersionTag() returns, without loading node:v8 (which brings
 * Node's heap-snapshot streams: half a MiB in every worker). Looked up at run time; a build that
 * does not export it gets null, and the caller asks node:v8. */
typedef uint32_t (*cache_tag_fn)(void);
static cache_tag_fn cache_tag_impl = NULL;
static pthread_once_t cache_tag_once = PTHREAD_ONCE_INIT;

static void cache_tag_lookup(void) {
  cache_tag_impl = (cache_tag_fn)dlsym(RTLD_DEFAULT, "_ZN2v814ScriptCompiler20CachedDataVersionTagEv");
}

static napi_value js_cache_tag(napi_env env, napi_callback_info info) {
  pthread_once(&cache_tag_once, cache_tag_lookup);
  napi_value result;
  if (cache_tag_impl == NULL) {
    NAPI_CALL(env, napi_get_null(env, &result));
  } else {
    NAPI_CALL(env, napi_create_uint32(env, cache_tag_impl(), &result));
  }
  return result;
}

/* ---- a function's code cache, made late (packing) ------------------------------------ */

/* v8::ScriptCompiler::CreateCodeCacheForFunction(v8::Local<v8::Function>), exported by the Node
 * binary: the code cache of a function compiled by vm.compileFunction, made when asked, so after
 * the function ran it holds the inner functions compiled meanwhile. Node's JavaScript API makes
 * one only at compile time (produceCachedData). The packer uses it on Node 20, where workers
 * compile with vm.compileFunction (cjs-compile.ts); it checks every cache it gets back by
 * compiling with it once more, and makes one at compile time where this is not there.
 * A napi_value is a v8::Local<v8::Value> in Node (node_api.cc converts by copying the pointer),
 * and a Local is passed as that pointer. v8::ScriptCompiler::CachedData begins { const uint8_t*
 * data; int length; }. The CachedData is not freed: the packer's trace is a short-lived process. */
typedef struct v8_cached_data {
  const uint8_t* data;
  int length;
} v8_cached_data;
typedef v8_cached_data* (*function_cache_fn)(void* local_function);
static function_cache_fn function_cache_impl = NULL;
static pthread_once_t function_cache_once = PTHREAD_ONCE_INIT;

static void function_cache_lookup(void) {
  function_cache_impl = (function_cache_fn)dlsym(RTLD_DEFAULT, "_ZN2v814ScriptCompiler26CreateCodeCacheForFunctionENS_5LocalINS_8FunctionEEE");
}

static napi_value js_function_cache(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype type = napi_undefined;
  if (argc >= 1) NAPI_CALL(env, napi_typeof(env, argv[0], &type));
  if (type != napi_function) {
    throw_argument(env, false, "expected a function compiled by vm.compileFunction");
    return NULL;
  }
  pthread_once(&function_cache_once, function_cache_lookup);
  napi_value result;
  v8_cached_data* cache = function_cache_impl == NULL ? NULL : function_cache_impl((void*)argv[0]);
  if (cache == NULL || cache->data == NULL || cache->length <= 0) {
    NAPI_CALL(env, napi_get_null(env, &result));
    return result;
  }
  void* copy = NULL;
  NAPI_CALL(env, napi_create_buffer_copy(env, (size_t)cache->length, cache->data, &copy, &result));
  return result;
}

/* ---- verification ahead ------------------------------------------------------------ */

/* SHA-256 comes from the OpenSSL (or BoringSSL) inside the Node binary, looked up at run time:
 * Node exports it on Linux (20 to 26 checked), but a build without it must still load, so a
 * missing symbol only turns verifyAhead() off. SHA256() with our own output buffer is
 * thread-safe. */
typedef unsigned char* (*sha256_fn)(const unsigned char* data, size_t length, unsigned char* md);
static sha256_fn sha256_impl = NULL;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_lookup(void) {
  sha256_impl = (sha256_fn)dlsym(RTLD_DEFAULT, "SHA256");
}

/* sha256(data: Uint8Array, out: Uint8Array(>= 32)) -> boolean (see codeblob.h). */
static napi_value js_sha256(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t* data = NULL;
  uint8_t* out = NULL;
  size_t data_len = 0, out_len = 0;
  napi_typedarray_type data_type = napi_int8_array, out_type = napi_int8_array;
  bool data_typed = false, out_typed = false;
  if (argc >= 2) {
    NAPI_CALL(env, napi_is_typedarray(env, argv[0], &data_typed));
    NAPI_CALL(env, napi_is_typedarray(env, argv[1], &out_typed));
  }
  if (data_typed) NAPI_CALL(env, napi_get_typedarray_info(env, argv[0], &data_type, &data_len, (void**)&data, NULL, NULL));
  if (out_typed) NAPI_CALL(env, napi_get_typedarray_info(env, argv[1], &out_type, &out_len, (void**)&out, NULL, NULL));
  if (!data_typed || !out_typed || data_type != napi_uint8_array || out_type != napi_uint8_array || out_len < 32) {
    throw_argument(env, false, "expected (Uint8Array, Uint8Array of at least 32 bytes)");
    return NULL;
  }
  pthread_once(&sha256_once, sha256_lookup);
  bool ok = sha256_impl != NULL;
  if (ok) sha256_impl(data_len == 0 ? (const unsigned char*)"" : data, data_len, out);
  napi_value result;
  NAPI_CALL(env, napi_get_boolean(env, ok, &result));
  return result;
}

enum { AHEAD_PENDING = 0, AHEAD_OK = 1, AHEAD_BAD = 2, AHEAD_TAKEN = 3 };

typedef struct verify_job {
  mapping* m;
  size_t count;
  size_t width;       /* bytes of each expected hash (a SHA-256 prefix) */
  uint64_t* ranges;   /* offset, length per section */
  uint8_t* expected;  /* width bytes per section */
  uint8_t* status;    /* one byte per section, the cancel byte, the finished byte; shared with JS */
  long refs;          /* the thread, each view JS holds (twice: buffer and view), the mapping's */
  long interest;      /* views not stopped yet: the thread stops when none is left */
  unsigned char key[32]; /* SHA-256 of the ranges and the expected hashes, to match a job */
} verify_job;

static void job_release(verify_job* job) {
  if (__atomic_sub_fetch(&job->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
  free(job->ranges);
  free(job->expected);
  free(job->status);
  free(job);
}

static void* verify_thread(void* arg) {
  verify_job* job = arg;
  unsigned char digest[32];
  for (size_t i = 0; i < job->count; i++) {
    if (__atomic_load_n(&job->status[job->count], __ATOMIC_RELAXED) != 0) break; /* cancelled */
    /* JS took this section itself (it needed it before we got there): skip it. */
    if (__atomic_load_n(&job->status[i], __ATOMIC_RELAXED) != AHEAD_PENDING) continue;
    const unsigned char* start = (const unsigned char*)job->m->addr + job->ranges[2 * i];
    sha256_impl(start, (size_t)job->ranges[2 * i + 1], digest);
    uint8_t verdict = memcmp(digest, job->expected + i * job->width, job->width) == 0 ? AHEAD_OK : AHEAD_BAD;
    __atomic_store_n(&job->status[i], verdict, __ATOMIC_RELEASE);
  }
  mapping_release(job->m);
  /* Only this thread reads them; the mapping keeps the job (and its key) to share it. */
  free(job->ranges);
  free(job->expected);
  job->ranges = NULL;
  job->expected = NULL;
  __atomic_store_n(&job->status[job->count + 1], 1, __ATOMIC_RELEASE);
  job_release(job);
  return NULL;
}

/* The ArrayBuffer over the status bytes was collected. */
static void finalize_job(node_api_basic_env env, void* data, void* hint) {
  job_release((verify_job*)hint);
}

/* One view's interest in the job: dropped once, by verifyAheadStop or when the view goes. */
typedef struct job_interest {
  verify_job* job;
  int stopped;
} job_interest;

static void interest_drop(job_interest* in) {
  if (in->stopped) return;
  in->stopped = 1;
  if (__atomic_sub_fetch(&in->job->interest, 1, __ATOMIC_ACQ_REL) == 0) {
    __atomic_store_n(&in->job->status[in->job->count], 1, __ATOMIC_RELAXED); /* nobody wants more: stop */
  }
}

static void finalize_interest(node_api_basic_env env, void* data, void* hint) {
  job_interest* in = data;
  interest_drop(in);
  job_release(in->job);
  free(in);
}

/* The key of a check: SHA-256 of its ranges (as 64-bit offsets and lengths) and expected hashes,
 * so a job can be matched after its thread has freed them. Needs ranges already as uint64_t. */
static void job_key(const uint64_t* ranges, size_t count, const uint8_t* expected, size_t width, const char* identity,
                    unsigned char* key) {
  size_t id_len = identity == NULL ? 0 : strlen(identity);
  size_t bytes = count * 2 * sizeof(uint64_t) + count * width + id_len;
  unsigned char* all = identity == NULL ? NULL : malloc(bytes);
  if (all == NULL) {
    /* No identity (or no memory): a key no other job has, so this one is not shared. */
    static long unmatched = 0;
    long n = __atomic_add_fetch(&unmatched, 1, __ATOMIC_RELAXED);
    memset(key, 0xa5, 32);
    memcpy(key, &n, sizeof n);
    return;
  }
  memcpy(all, ranges, count * 2 * sizeof(uint64_t));
  memcpy(all + count * 2 * sizeof(uint64_t), expected, count * width);
  memcpy(all + count * 2 * sizeof(uint64_t) + count * width, identity, id_len);
  sha256_impl(all, bytes, key);
  free(all);
}

/* Does `job` check exactly the sections and hashes whose key this is? */
static bool job_matches(const verify_job* job, size_t count, size_t width, const unsigned char* key) {
  return job->count == count && job->width == width && memcmp(job->key, key, 32) == 0;
}

/* A new view (ArrayBuffer + Uint8Array) of a job's status bytes for this isolate, holding one
 * interest in the job (see verifyAheadStop). */
static napi_value job_view(napi_env env, verify_job* job) {
  napi_value buffer, view;
  job_interest* in = malloc(sizeof *in);
  if (in == NULL) {
    throw_errno(env, ENOMEM, "verifyAhead", NULL);
    return NULL;
  }
  in->job = job;
  in->stopped = 0;
  __atomic_add_fetch(&job->refs, 2, __ATOMIC_ACQ_REL); /* the ArrayBuffer's, the interest's */
  __atomic_add_fetch(&job->interest, 1, __ATOMIC_ACQ_REL);
  napi_status status = napi_create_external_arraybuffer(env, job->status, job->count + 2, finalize_job, job, &buffer);
  if (status != napi_ok) {
    job_release(job); /* the ArrayBuffer's */
    finalize_interest(env, in, NULL);
    NAPI_CALL(env, status);
  }
  status = napi_create_typedarray(env, napi_uint8_array, job->count + 2, buffer, 0, &view);
  if (status == napi_ok) status = napi_wrap(env, view, in, finalize_interest, NULL, NULL);
  if (status != napi_ok) {
    finalize_interest(env, in, NULL); /* the ArrayBuffer, once collected, drops its own */
    NAPI_CALL(env, status);
  }
  return view;
}

/* verifyAheadStop(view): this view wants no more from the thread; the thread stops once no view
 * that shares its job wants more. Idempotent. */
static napi_value js_verify_ahead_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void* data = NULL;
  if (argc < 1 || napi_unwrap(env, argv[0], &data) != napi_ok || data == NULL) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
    throw_argument(env, false, "expected a Uint8Array returned by verifyAhead()");
    return NULL;
  }
  interest_drop((job_interest*)data);
  return NULL;
}

/* The arguments of verifyAhead, checked: the ranges as 64-bit integers (malloc'd), the expected
 * hashes (JS memory, valid during the call), their width, and the check's key. */
typedef struct verify_args {
  mapping* m;
  size_t count;
  size_t width;
  uint64_t* ranges;
  const uint8_t* expected;
  unsigned char key[32];
} verify_args;

/* Reads and checks verifyAhead's arguments into `a`; false (exception pending) when invalid. */
static bool read_verify_args(napi_env env, size_t argc, napi_value* argv, verify_args* a) {
  if (argc < 3) {
    throw_argument(env, false, "expected (buffer, ranges, expected)");
    return false;
  }
  bool is_typed = false;
  napi_typedarray_type type;
  size_t range_items = 0, expected_len = 0;
  double* ranges = NULL;
  uint8_t* expected = NULL;
  if (napi_is_typedarray(env, argv[1], &is_typed) == napi_ok && is_typed) {
    napi_get_typedarray_info(env, argv[1], &type, &range_items, (void**)&ranges, NULL, NULL);
  }
  if (!is_typed || type != napi_float64_array || range_items % 2 != 0) {
    throw_argument(env, false, "ranges must be a Float64Array of (offset, length) pairs");
    return false;
  }
  size_t count = range_items / 2;
  is_typed = false;
  if (napi_is_typedarray(env, argv[2], &is_typed) == napi_ok && is_typed) {
    napi_get_typedarray_info(env, argv[2], &type, &expected_len, (void**)&expected, NULL, NULL);
  }
  if (!is_typed || type != napi_uint8_array || count == 0 || expected_len % count != 0 ||
      expected_len / count == 0 || expected_len / count > 32) {
    throw_argument(env, false, "expected must be a Uint8Array of 1 to 32 bytes per range");
    return false;
  }
  char* base = NULL;
  mapping* m = mapping_of(env, argv[0], 0, 0, &base);
  if (m == NULL) return false;
  for (size_t i = 0; i < count; i++) {
    if (!range_inside(ranges[2 * i], ranges[2 * i + 1], m->size)) {
      throw_argument(env, true, "range is outside the mapping");
      return false;
    }
  }
  /* The caller's identity of the file it opened (device, inode, size, mtime, ctime): a store
   * that opened the file after it was written in place must not take verdicts on older bytes. */
  char* identity = NULL;
  napi_valuetype id_type = napi_undefined;
  if (argc >= 4 && napi_typeof(env, argv[3], &id_type) != napi_ok) id_type = napi_undefined;
  if (id_type == napi_string) {
    size_t id_len = 0;
    identity = string_arg(env, argv[3], "identity must be a string", &id_len);
    if (identity == NULL) return false;
  } else if (id_type != napi_undefined) {
    throw_argument(env, false, "identity must be a string");
    return false;
  }
  a->ranges = malloc(count * 2 * sizeof(uint64_t));
  if (a->ranges == NULL) {
    free(identity);
    throw_errno(env, ENOMEM, "verifyAhead", NULL);
    return false;
  }
  for (size_t i = 0; i < count * 2; i++) a->ranges[i] = (uint64_t)ranges[i];
  a->m = m;
  a->count = count;
  a->width = expected_len / count;
  a->expected = expected;
  job_key(a->ranges, count, expected, a->width, identity, a->key);
  free(identity);
  return true;
}

/* The running job of the mapping that makes this very check, with a reference for the caller;
 * NULL when there is none (a stopped job is not joined). */
static verify_job* running_job(const verify_args* a) {
  verify_job* shared = NULL;
  pthread_mutex_lock(&registry_lock);
  verify_job* old = a->m->job;
  if (old != NULL && job_matches(old, a->count, a->width, a->key) &&
      __atomic_load_n(&old->status[a->count], __ATOMIC_RELAXED) == 0) {
    shared = old;
    __atomic_add_fetch(&shared->refs, 1, __ATOMIC_ACQ_REL); /* held across the unlock */
  }
  pthread_mutex_unlock(&registry_lock);
  return shared;
}

/* A new job for the check in `a` (taking its ranges), one reference for the caller; NULL (and
 * an exception pending) when memory runs out. */
static verify_job* new_job(napi_env env, verify_args* a) {
  verify_job* job = calloc(1, sizeof *job);
  if (job != NULL) {
    job->expected = malloc(a->count * a->width);
    job->status = calloc(a->count + 2, 1);
  }
  if (job == NULL || job->expected == NULL || job->status == NULL) {
    if (job != NULL) {
      free(job->expected);
      free(job->status);
      free(job);
    }
    free(a->ranges);
    throw_errno(env, ENOMEM, "verifyAhead", NULL);
    return NULL;
  }
  job->ranges = a->ranges;
  a->ranges = NULL;
  memcpy(job->expected, a->expected, a->count * a->width);
  memcpy(job->key, a->key, sizeof a->key);
  job->count = a->count;
  job->width = a->width;
  job->m = a->m;
  job->refs = 1;
  return job;
}

/* Makes `job` the mapping's job (taking over what a stopped job with the same check found
 * sound) and starts its thread. */
static void start_job(verify_job* job) {
  mapping* m = job->m;
  pthread_mutex_lock(&registry_lock);
  verify_job* old = m->job;
  if (old != NULL && job_matches(old, job->count, job->width, job->key)) {
    for (size_t i = 0; i < job->count; i++) {
      if (__atomic_load_n(&old->status[i], __ATOMIC_ACQUIRE) == AHEAD_OK) job->status[i] = AHEAD_OK;
    }
  }
  m->job = job;
  __atomic_add_fetch(&job->refs, 2, __ATOMIC_ACQ_REL); /* the mapping's, and the thread's */
  m->refs++;                                           /* the thread's, on the mapping */
  pthread_mutex_unlock(&registry_lock);
  if (old != NULL) job_release(old);

  /* Idle priority where allowed: on a busy machine the loading threads hash what they need
   * themselves (as without this), and this thread only uses a core nobody else wants. */
  if (start_idle_thread(verify_thread, job) != 0) {
    /* No thread: JS sees every section pending and hashes what it needs, as without this; the
     * job is marked stopped, so a later call starts a new one rather than joining it. */
    mapping_release(m);
    __atomic_store_n(&job->status[job->count], 1, __ATOMIC_RELEASE);
    __atomic_store_n(&job->status[job->count + 1], 1, __ATOMIC_RELEASE);
    job_release(job); /* the thread's */
  }
}

/* verifyAhead(buffer, ranges: Float64Array, expected: Uint8Array, identity?: string) -> Uint8Array | null (see codeblob.h)
 *
 * Worker threads of one process share one mapping: a thread that asks for the check another
 * thread's store already started (same sections, same hashes, same file identity) shares its
 * job, so the startup range is hashed once per process, and a section any loading thread
 * hashed itself (and marked sound) counts for all. */
static napi_value js_verify_ahead(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  pthread_once(&sha256_once, sha256_lookup);
  if (sha256_impl == NULL) {
    napi_value none;
    NAPI_CALL(env, napi_get_null(env, &none));
    return none;
  }
  verify_args a;
  if (!read_verify_args(env, argc, argv, &a)) return NULL;
  verify_job* shared = running_job(&a);
  if (shared != NULL) {
    free(a.ranges);
    napi_value view = job_view(env, shared);
    job_release(shared);
    return view;
  }
  verify_job* job = new_job(env, &a);
  if (job == NULL) return NULL;
  napi_value view = job_view(env, job);
  if (view != NULL) start_job(job);
  job_release(job); /* ours */
  return view;
}

/* ---- init -------------------------------------------------------------------------- */

/* V8 may run external-string finalizers after Node has dlclose()d the addon (worker-thread
 * teardown); keep our code mapped for the life of the process. */
static void pin_self(void) {
  Dl_info self;
  if (dladdr((void*)&pin_self, &self) != 0 && self.dli_fname != NULL) {
    dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
  }
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  pin_self();
  napi_property_descriptor props[] = {
      {"map", NULL, js_map, NULL, NULL, NULL, napi_enumerable, NULL},
      {"release", NULL, js_release, NULL, NULL, NULL, napi_enumerable, NULL},
      {"externalString", NULL, js_external_string, NULL, NULL, NULL, napi_enumerable, NULL},
      {"madvise", NULL, js_madvise, NULL, NULL, NULL, napi_enumerable, NULL},
      {"residentPages", NULL, js_resident_pages, NULL, NULL, NULL, napi_enumerable, NULL},
      {"liveMappings", NULL, js_live_mappings, NULL, NULL, NULL, napi_enumerable, NULL},
      {"statMany", NULL, js_stat_many, NULL, NULL, NULL, napi_enumerable, NULL},
      {"statAhead", NULL, js_stat_ahead, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fstatInto", NULL, js_fstat_into, NULL, NULL, NULL, napi_enumerable, NULL},
      {"verifyAhead", NULL, js_verify_ahead, NULL, NULL, NULL, napi_enumerable, NULL},
      {"verifyAheadStop", NULL, js_verify_ahead_stop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sha256", NULL, js_sha256, NULL, NULL, NULL, napi_enumerable, NULL},
      {"cacheTag", NULL, js_cache_tag, NULL, NULL, NULL, napi_enumerable, NULL},
      {"functionCache", NULL, js_function_cache, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_value abi, page_size;
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  if (napi_create_int32(env, CODEBLOB_NATIVE_ABI, &abi) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "abi", abi) != napi_ok) return NULL;
  if (napi_create_double(env, (double)sysconf(_SC_PAGESIZE), &page_size) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "pageSize", page_size) != napi_ok) return NULL;
  return exports;
}
