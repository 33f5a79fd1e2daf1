#!/usr/bin/env node
// `npm run prebuilds` (and `prepack`; not "prebuild", which npm would run before every `npm run build`): cross-compiles the addon for linux-x64 and linux-arm64,
// glibc and musl, into prebuilds/<platform>-<arch>/codeblob.<libc>.node, where node-gyp-build
// finds it by its tags. See scripts/prebuild/build.mjs.
//
//   --targets a,b            build these only (also CODEBLOB_PREBUILD_TARGETS); default: all four
//   --out <dir>              write there instead of prebuilds/ (replaced whole)
//   --nodedir <dir>          Node headers from <dir>/include/node (default: the running Node's)
//   --install-toolchains     apt-get install the missing compilers first (root, Debian)
//   --readme                 rewrite the platform table in README.md, build nothing
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildPrebuilds, installToolchains, PrebuildError, repo, selectTargets } from './prebuild/build.mjs';
import { writeReadmeTable } from './prebuild/readme.mjs';

try {
  const { values } = parseArgs({
    options: {
      targets: { type: 'string' },
      out: { type: 'string' },
      nodedir: { type: 'string' },
      'install-toolchains': { type: 'boolean' },
      readme: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.readme) {
    console.log(writeReadmeTable(repo) ? 'README.md: platform table updated' : 'README.md: platform table already current');
  } else {
    const targets = selectTargets(values.targets ?? process.env.CODEBLOB_PREBUILD_TARGETS);
    if (values['install-toolchains']) installToolchains(targets);
    buildPrebuilds({ targets, out: values.out ? resolve(values.out) : join(repo, 'prebuilds'), nodedir: values.nodedir });
  }
} catch (error) {
  if (!(error instanceof PrebuildError) && error.code !== 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw error;
  console.error(`prebuild: ${error.message}`);
  process.exitCode = 1;
}
