/*
 * Forced into the glibc prebuilds only (scripts/prebuild.mjs passes it with -include; a local
 * node-gyp build does not use it).
 *
 * Why: built against Debian 12's glibc (2.36), the addon would need GLIBC_2.34 (dlopen, dlsym,
 * dladdr, pthread_create, pthread_once moved into libc.so.6 under new versions) and GLIBC_2.33
 * (stat, fstat became real functions), so it would not load on glibc 2.28-2.33, where Node 20
 * runs (Debian 11 and the node:*-bullseye images, Ubuntu 20.04, RHEL 8 / UBI 8). Here each
 * such call is bound to the oldest version of the symbol, which every later glibc still
 * exports: GLIBC_2.2.5 on x86-64, GLIBC_2.17 (the first arm64 glibc) on arm64. The build
 * checks the result (no version newer than GLIBC_FLOOR in scripts/prebuild/targets.mjs), so a
 * new libc call that needs a newer version fails the build instead of the install.
 *
 * glibc's symbol lookup matches a versioned reference by version name only, so dlopen@GLIBC_2.2.5
 * is found in libdl.so.2 on a glibc older than 2.34 (Node itself links libdl and libpthread) and
 * in libc.so.6 on a newer one.
 */
#ifndef CODEBLOB_GLIBC_COMPAT_H
#define CODEBLOB_GLIBC_COMPAT_H

#if defined(__x86_64__)
#define CODEBLOB_GLIBC_BASE "GLIBC_2.2.5"
#define CODEBLOB_STAT_VER 1 /* _STAT_VER_LINUX of glibc < 2.33 */
#elif defined(__aarch64__)
#define CODEBLOB_GLIBC_BASE "GLIBC_2.17"
#define CODEBLOB_STAT_VER 0 /* _STAT_VER of the generic Linux ABI */
#else
#error "scripts/prebuild/glibc-compat.h: no glibc symbol versions for this architecture"
#endif

__asm__(".symver dlopen,dlopen@" CODEBLOB_GLIBC_BASE);
__asm__(".symver dlsym,dlsym@" CODEBLOB_GLIBC_BASE);
__asm__(".symver dladdr,dladdr@" CODEBLOB_GLIBC_BASE);
__asm__(".symver pthread_create,pthread_create@" CODEBLOB_GLIBC_BASE);
__asm__(".symver pthread_once,pthread_once@" CODEBLOB_GLIBC_BASE);

/* Before 2.33, stat() and fstat() were inline wrappers of __xstat64/__fxstat64 (still exported,
 * with the old version): call those. struct stat and struct stat64 are one layout on 64-bit. */
#include <sys/stat.h>

int __xstat64(int ver, const char* path, struct stat64* buf);
int __fxstat64(int ver, int fd, struct stat64* buf);

static inline int codeblob_compat_stat(const char* path, struct stat* buf) {
  return __xstat64(CODEBLOB_STAT_VER, path, (struct stat64*)buf);
}
static inline int codeblob_compat_fstat(int fd, struct stat* buf) {
  return __fxstat64(CODEBLOB_STAT_VER, fd, (struct stat64*)buf);
}

#define stat(path, buf) codeblob_compat_stat(path, buf)
#define fstat(fd, buf) codeblob_compat_fstat(fd, buf)

#endif
