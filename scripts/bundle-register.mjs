// Bundles codeblob/register into one CommonJS file, dist/loader/register.cjs, for
// `node --require codeblob/register`, `--import codeblob/register` (package.json's exports name
// it for both) and the execArgv codeblob/pool hands to workers. Loaded through require(esm), the
// ES module graph of dist/ costs every worker process Node's ESM loader machinery on top of its
// own modules: about 24 ms of startup and 4 MiB of peak memory on Node 24 (farm-bench, 30 runs);
// through --import, on an app of 300 ES modules, 2.6 MiB of USS more than the bundle (24.0 vs
// 21.4 MiB, plain 23.2; bench/synthetic.mjs --esm, 7 runs). --import loads the bundle through
// dist/loader/register.mjs, written here: three lines that require() it. Imported directly, the
// bundle is lexed for its exports by Node's cjs-module-lexer, which on Node 22 cost 4.7 MiB more
// USS (25.3 vs 20.6 MiB on that app, plain 20.8). The bundle is built from the same sources; the
// ES module (dist/loader/register.js) stays for a path that names it. All share one state per
// thread (a global symbol), so whichever runs first enables loading.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

await build({
  entryPoints: [fileURLToPath(new URL('../src/loader/register.ts', import.meta.url))],
  outfile: fileURLToPath(new URL('../dist/loader/register.cjs', import.meta.url)),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // Dependencies stay dependencies: resolved at run time like any require().
  external: ['msgpackr', 'node-gyp-build'],
  // The sources locate the package (the addon, node:module) from import.meta.url; the bundle
  // sits in dist/loader/ like register.js, so its own URL gives the same answers.
  define: { 'import.meta.url': '__codeblobModuleUrl' },
  banner: { js: "'use strict';\nconst __codeblobModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
  // Every worker reads, decodes and compiles this file: without comments and spaces, and with
  // every character ASCII (escaped in strings), it is a one-byte string of a third of the size.
  // Names stay in the source, so stack frames through the loader still read `codeblobLoadJs`,
  // `codeblobResolveImport` (esm-hooks.ts counts its hook frames by that name) and the like:
  // V8 names a frame from the source. So no minifySyntax, which drops the name of every function
  // expression nothing calls by it (4 KB of source), and no keepNames, which puts names back with
  // a __name() call per function and class, run at load: 59 KB of young generation in every
  // worker (Node 24).
  minifyWhitespace: true,
  charset: 'ascii',
  legalComments: 'none',
  sourcemap: true,
  logLevel: 'warning',
});

writeFileSync(
  fileURLToPath(new URL('../dist/loader/register.mjs', import.meta.url)),
  "// `--import codeblob/register`: the CommonJS bundle, through require() (scripts/bundle-register.mjs).\n" +
    "import { createRequire } from 'node:module';\n" +
    "export const { status, statusLine } = createRequire(import.meta.url)('./register.cjs');\n",
);
