#!/usr/bin/env node
// Generates a synthetic CommonJS app with a given number of modules, deterministically (seeded
// PRNG, no clock): nested app directories under src/ with barrel index.js files and relative
// requires; package-style directories under node_modules (scoped names; package.json "main" as
// a file, an extensionless path, or none; deep requires; packages requiring earlier packages);
// modules of 1-3.5 KiB made of functions, classes, string tables and closures, which call into
// their dependencies at load. entry.js requires all of it. Used by bench/synthetic.mjs.
// --esm: the same app as ES modules (.mjs, `import`/`export`, explicit file specifiers,
// packages with "exports" or a "main" file), entry.mjs importing all of it.
// Usage: node bench/synthetic-corpus.mjs <dir> <modules> [--seed 1] [--esm]
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const WORDS = (
  'account action adapter agent alert anchor archive asset audit batch beacon binding block bridge broker buffer bundle cache ' +
  'channel chunk cipher client cluster codec column config context cursor daemon delta digest domain driver entry event export ' +
  'factor feature field filter format frame gateway graph guard handle header hook index input issue job kernel key layer ledger ' +
  'limit link loader locale lookup mapper marker matrix member merge meta metric mirror model module monitor node notice offset ' +
  'option order origin output packet page parser patch path payload peer pipe policy pool port prefix probe profile proxy query ' +
  'queue quota range reader record region relay render report request resolver route rule sample schema scope segment selector ' +
  'sender series session shard signal slot snapshot socket source span stage state store stream suffix table target task ticket ' +
  'timer token topic trace tracker transform tree trigger tuple unit update upload user value vector version view volume watcher ' +
  'window worker writer zone'
).split(' ');
const VERBS = 'apply build check collect compute create decode encode ensure fetch find flush format merge normalize parse prepare read register render resolve scan select serialize split track update validate wrap write'.split(' ');
const PHRASES = [
  'could not be found', 'is not supported in this mode', 'must be a non-empty string', 'was closed before it finished',
  'exceeded the configured limit', 'has an unexpected shape', 'is deprecated and will be removed', 'timed out while waiting',
  'is already registered', 'failed the integrity check', 'requires a newer runtime', 'was rejected by the remote end',
];
// A few modules carry text beyond Latin-1, as real string tables do (stored as UTF-16 in a blob).
const WIDE = ['→', '…', '✓', '€', '—', 'ü', 'ß', '日本語', 'Ω'];

/** mulberry32: small, fast, and the same numbers on every machine. */
function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1));
  const pick = (list) => list[Math.floor(next() * list.length)];
  return { next, int, pick };
}

function generator(rng) {
  const cap = (w) => w[0].toUpperCase() + w.slice(1);
  const camel = () => rng.pick(VERBS) + cap(rng.pick(WORDS));
  const klass = () => cap(rng.pick(WORDS)) + cap(rng.pick(WORDS));
  const sentence = (wide) => `the ${rng.pick(WORDS)} ${rng.pick(WORDS)} ${rng.pick(PHRASES)}${wide ? ` ${rng.pick(WIDE)}` : ''}`;
  const quote = (s) => `'${s}'`;

  // Each item is a piece of realistic module code and the top-level names it declares.
  const items = [
    function stringTable(wide) {
      const name = `${rng.pick(WORDS).toUpperCase()}_MESSAGES`;
      const rows = Array.from({ length: rng.int(6, 16) }, (_, i) => `  ${rng.pick(WORDS)}${i}: ${quote(sentence(wide && i === 0))},`);
      return { code: `const ${name} = Object.freeze({\n${rows.join('\n')}\n});\n`, names: [name] };
    },
    function validator() {
      const name = camel();
      const fields = Array.from({ length: rng.int(3, 7) }, () => rng.pick(WORDS));
      const checks = fields.map((f) =>
        rng.next() < 0.5
          ? `  if (options.${f} !== undefined && typeof options.${f} !== 'string') {\n    throw new TypeError(\`options.${f} must be a string, got \${typeof options.${f}}\`);\n  }`
          : `  if (options.${f} !== undefined && !(Number.isInteger(options.${f}) && options.${f} >= 0)) {\n    throw new RangeError('options.${f} must be a non-negative integer');\n  }`,
      );
      const defaults = fields.map((f) => `    ${f}: options.${f} ?? ${rng.next() < 0.5 ? quote(rng.pick(WORDS)) : rng.int(0, 4096)},`);
      return { code: `function ${name}(options = {}) {\n  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');\n${checks.join('\n')}\n  return {\n${defaults.join('\n')}\n  };\n}\n`, names: [name] };
    },
    function classItem() {
      const name = klass();
      const field = rng.pick(WORDS);
      const methods = Array.from({ length: rng.int(2, 4) }, () => {
        const m = camel();
        return `  ${m}(input) {\n    if (this.#closed) throw new Error(\`${name} ${rng.pick(PHRASES)}\`);\n    const key = String(input).trim().toLowerCase();\n    const hit = this.#${field}.get(key);\n    if (hit !== undefined) return hit;\n    const value = { key, size: key.length * ${rng.int(2, 9)}, at: this.#count++ };\n    this.#${field}.set(key, value);\n    return value;\n  }\n`;
      });
      return {
        code: `class ${name} {\n  #${field} = new Map();\n  #count = 0;\n  #closed = false;\n  constructor(limit = ${rng.int(16, 1024)}) {\n    this.limit = limit;\n  }\n  get size() {\n    return this.#${field}.size;\n  }\n${methods.join('\n')}\n  close() {\n    this.#closed = true;\n    this.#${field}.clear();\n  }\n  static from(entries) {\n    const out = new ${name}();\n    for (const e of entries) out.limit = Math.max(out.limit, e.length | 0);\n    return out;\n  }\n}\n`,
        names: [name],
      };
    },
    function closureFactory() {
      const name = `create${cap(rng.pick(WORDS))}${cap(rng.pick(WORDS))}`;
      return {
        code: `function ${name}(limit = ${rng.int(8, 512)}, onEvict = () => {}) {\n  const entries = new Map();\n  let hits = 0;\n  let misses = 0;\n  function touch(key, value) {\n    entries.delete(key);\n    entries.set(key, value);\n    if (entries.size > limit) {\n      const oldest = entries.keys().next().value;\n      onEvict(oldest, entries.get(oldest));\n      entries.delete(oldest);\n    }\n  }\n  return {\n    get(key) {\n      if (!entries.has(key)) {\n        misses++;\n        return undefined;\n      }\n      hits++;\n      const value = entries.get(key);\n      touch(key, value);\n      return value;\n    },\n    set: touch,\n    stats: () => ({ hits, misses, size: entries.size, ratio: hits / Math.max(1, hits + misses) }),\n  };\n}\n`,
        names: [name],
      };
    },
    function tokenizer() {
      const name = camel();
      const cases = Array.from({ length: rng.int(3, 6) }, () => {
        const ch = rng.pick([...'{}[]():;,.=+-*/<>!?&|']);
        return `      case ${quote(ch)}:\n        out.push({ type: ${quote(rng.pick(WORDS))}, start: i, end: i + 1 });\n        break;`;
      });
      return {
        code: `function ${name}(input) {\n  const out = [];\n  let word = -1;\n  for (let i = 0; i < input.length; i++) {\n    const ch = input[i];\n    switch (ch) {\n${cases.join('\n')}\n      default:\n        if (/\\s/.test(ch)) {\n          if (word !== -1) out.push({ type: 'word', start: word, end: i });\n          word = -1;\n        } else if (word === -1) {\n          word = i;\n        }\n    }\n  }\n  if (word !== -1) out.push({ type: 'word', start: word, end: input.length });\n  return out;\n}\n`,
        names: [name],
      };
    },
    function asyncItem() {
      const name = camel();
      const step = camel();
      return {
        code: `async function ${name}(items, { retries = ${rng.int(1, 5)}, signal } = {}) {\n  const results = [];\n  for (const item of items) {\n    let attempt = 0;\n    for (;;) {\n      signal?.throwIfAborted();\n      try {\n        results.push(await ${step}(item));\n        break;\n      } catch (error) {\n        if (++attempt > retries) throw new Error(\`${rng.pick(WORDS)} \${item} ${rng.pick(PHRASES)}\`, { cause: error });\n      }\n    }\n  }\n  return results;\n}\nconst ${step} = async (item) => ({ item, at: ${rng.int(0, 1e6)} });\n`,
        names: [name, step],
      };
    },
    function arrayUtils() {
      const name = camel();
      const key = rng.pick(WORDS);
      return {
        code: `const ${name} = (records, by = '${key}') =>\n  records\n    .filter((r) => r && r[by] !== undefined)\n    .map((r) => ({ ...r, ${key}Key: String(r[by]).padStart(${rng.int(4, 12)}, '0') }))\n    .sort((a, b) => (a.${key}Key < b.${key}Key ? -1 : a.${key}Key > b.${key}Key ? 1 : 0))\n    .reduce((groups, r) => {\n      (groups[r.${key}Key] ??= []).push(r);\n      return groups;\n    }, Object.create(null));\n`,
        names: [name],
      };
    },
  ];

  /** One module: its requires, items up to 1-3 KiB, a little work at load, its exports. */
  return function moduleSource(id, deps, builtin, esm) {
    const wide = rng.next() < 0.03;
    const target = rng.int(768, 2560); // items overshoot it: modules end up 1-3.5 KiB
    const head = [esm ? `// ${id} (ES module)` : `'use strict';`, ...(esm ? [] : [`// ${id}`])];
    if (builtin) head.push(esm ? `import ${builtin} from '${builtin}';` : `const ${builtin} = require('${builtin}');`);
    deps.forEach((spec, i) => head.push(esm ? `import * as dep${i} from '${spec}';` : `const dep${i} = require('${spec}');`));
    let body = '';
    const exported = [];
    while (head.join('\n').length + body.length < target) {
      const item = rng.pick(items)(wide);
      if (item.names.some((n) => exported.includes(n))) continue; // a name drawn twice: draw again
      body += '\n' + item.code;
      exported.push(...item.names);
    }
    const name = quote(id);
    const load =
      `\nconst NAME = ${name};\n` +
      `function describe() {\n  return NAME + '(' + ${exported.length} + ')';\n}\n` +
      // Calling into the dependencies at load, as real modules do (loggers, registries).
      `const dependsOn = [${deps.map((_, i) => `dep${i}`).join(', ')}].map((d) => d.describe());\n`;
    const exports = `{ describe, dependsOn, ${exported.join(', ')} }`;
    return `${head.join('\n')}\n${body}${load}\n${esm ? `export ${exports};` : `module.exports = ${exports};`}\n`;
  };
}

/**
 * Writes the app into `dir` (emptied first). `modules` counts every generated JavaScript
 * module except entry.js (app files, barrel index.js files, package files). Returns the entry,
 * the number of modules and packages, and the total bytes of JavaScript written.
 */
export function generateSyntheticApp(dir, modules, seed = 1, { esm = false } = {}) {
  const rng = prng(seed);
  const ext = esm ? '.mjs' : '.js';
  const moduleSource = generator(rng);
  rmSync(dir, { recursive: true, force: true });
  const files = new Map();
  const write = (rel, text) => files.set(rel, text);

  // About 40% of the modules live in packages, as in real apps (most of them far more).
  const packages = [];
  let pkgBudget = Math.round(modules * 0.4);
  const usedNames = new Set();
  while (pkgBudget > 0) {
    let name;
    do name = (rng.next() < 0.25 ? `@${rng.pick(WORDS)}/` : '') + `${rng.pick(WORDS)}-${rng.pick(WORDS)}`;
    while (usedNames.has(name));
    usedNames.add(name);
    // Mostly small packages, a few large ones.
    const size = Math.min(pkgBudget, 2 + Math.floor(38 * rng.next() ** 2));
    pkgBudget -= size;
    const style = rng.next();
    // "main" forms Node resolves differently: a file, an extensionless path, none (index.js).
    // (ES modules: "exports" with a subpath pattern, a "main" file, or both.)
    const main = esm ? (style < 0.9 ? 'lib/index.mjs' : 'index.mjs') : style < 0.7 ? 'lib/index.js' : style < 0.9 ? 'dist/main' : 'index.js';
    const mainDir = dirname(main) === '.' ? '' : dirname(main) + '/';
    const subdirs = ['', ...Array.from({ length: rng.int(0, 2) }, () => rng.pick(WORDS) + '/')];
    const internal = Array.from({ length: size - 1 }, (_, i) => `${mainDir}${rng.pick(subdirs)}${rng.pick(WORDS)}-${i}${ext}`);
    packages.push({ name, size, main: main.endsWith(ext) ? main : main + ext, internal });
    const entryPoints = esm
      ? style < 0.7 ? { exports: { '.': `./${main}`, './*': './*' } } : { main, ...(style < 0.8 && { exports: { '.': `./${main}`, './*': './*' } }) }
      : style < 0.9 ? { main } : {};
    const pkgJson = { name, version: `${rng.int(0, 9)}.${rng.int(0, 30)}.${rng.int(0, 20)}`, ...entryPoints, license: 'MIT' };
    write(`node_modules/${name}/package.json`, JSON.stringify(pkgJson, null, 2) + '\n');
  }
  // CommonJS specifiers leave the extension out; ES modules name the file (a directory by its index).
  const specFrom = (fromFile, toFile) => {
    const rel = esm ? relative(dirname(fromFile), toFile) : relative(dirname(fromFile), toFile).replace(/\.js$/, '');
    return rel.startsWith('.') ? rel : './' + rel;
  };
  const dirSpec = (fromFile, dirPath) => (esm ? specFrom(fromFile, `${dirPath}/index.mjs`) : specFrom(fromFile, dirPath));
  packages.forEach((p, pi) => {
    const base = `node_modules/${p.name}/`;
    p.internal.forEach((file, i) => {
      const deps = [];
      for (let k = rng.int(0, 2); k > 0 && i > 0; k--) deps.push(specFrom(file, p.internal[rng.int(0, i - 1)]));
      if (pi > 0 && rng.next() < 0.3) deps.push(packages[rng.int(0, pi - 1)].name);
      write(base + file, moduleSource(`${p.name}/${file}`, [...new Set(deps)], rng.next() < 0.2 ? rng.pick(['path', 'util', 'events']) : undefined, esm));
    });
    write(base + p.main, moduleSource(`${p.name}/${p.main}`, p.internal.map((f) => specFrom(p.main, f)), undefined, esm));
  });

  // The app: directories up to 5 deep, each with a barrel index.js requiring its files and
  // subdirectories; files require earlier files (mostly nearby) and packages.
  const appBudget = modules - packages.reduce((n, p) => n + p.size, 0);
  const dirs = [{ path: 'src', depth: 0, files: [], children: [] }];
  let current = dirs[0];
  const appFiles = [];
  let count = 1; // src/index.js
  while (count < appBudget) {
    if (count + 2 <= appBudget && (current.files.length >= 12 || (current.files.length >= 3 && rng.next() < 0.15))) {
      const parents = dirs.filter((d) => d.depth < 5);
      const parent = rng.pick(parents);
      current = { path: `${parent.path}/${rng.pick(WORDS)}-${dirs.length}`, depth: parent.depth + 1, files: [], children: [] };
      parent.children.push(current);
      dirs.push(current);
      count++;
    }
    const file = `${current.path}/${rng.pick(WORDS)}-${appFiles.length}${ext}`;
    current.files.push(file);
    appFiles.push({ file, dir: current });
    count++;
  }
  appFiles.forEach(({ file, dir }, i) => {
    const near = dir.files.slice(0, dir.files.indexOf(file)); // earlier files of its directory
    const deps = [];
    for (let k = rng.int(0, 3); k > 0 && i > 0; k--) {
      deps.push(specFrom(file, near.length && rng.next() < 0.6 ? rng.pick(near) : appFiles[rng.int(0, i - 1)].file));
    }
    for (let k = rng.int(0, 2); k > 0 && packages.length; k--) {
      const p = rng.pick(packages);
      // Now and then a deep require into a package, past its main.
      deps.push(rng.next() < 0.1 && p.internal.length ? `${p.name}/${esm ? p.internal[0] : p.internal[0].replace(/\.js$/, '')}` : p.name);
    }
    write(file, moduleSource(file, [...new Set(deps)], rng.next() < 0.3 ? rng.pick(['path', 'util', 'events', 'crypto']) : undefined, esm));
  });
  for (const d of dirs) {
    const index = `${d.path}/index${ext}`;
    const deps = [...d.files.map((f) => specFrom(index, f)), ...d.children.map((c) => dirSpec(index, c.path))];
    write(index, moduleSource(index, deps, undefined, esm));
  }
  if (esm) {
    write(
      'entry.mjs',
      `// Synthetic app, ${modules} ES modules: the app (src/) and every package.\nimport * as app from './src/index.mjs';\n` +
        packages.map((p, i) => `import * as p${i} from '${p.name}';\n`).join('') +
        `export { app };\nexport const packages = ${packages.length};\n`,
    );
  } else {
    write(
      'entry.js',
      `'use strict';\n// Synthetic app, ${modules} modules: the app (src/) and every package.\nconst app = require('./src');\n` +
        `const packages = [${packages.map((p) => `require('${p.name}')`).join(', ')}];\n` +
        `module.exports = { app, packages: packages.length };\n`,
    );
  }
  write('package.json', JSON.stringify({ name: 'synthetic-app', private: true, version: '1.0.0' }, null, 2) + '\n');

  let bytes = 0;
  for (const [rel, text] of files) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), text);
    if (rel.endsWith(ext) && rel !== `entry${ext}`) bytes += Buffer.byteLength(text);
  }
  return { entry: join(dir, `entry${ext}`), modules, packages: packages.length, bytes };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({ options: { seed: { type: 'string', default: '1' }, esm: { type: 'boolean', default: false } }, allowPositionals: true });
  if (positionals.length !== 2) throw new Error('usage: node bench/synthetic-corpus.mjs <dir> <modules> [--seed 1] [--esm]');
  const app = generateSyntheticApp(positionals[0], Number(positionals[1]), Number(values.seed), { esm: values.esm });
  console.log(`${app.entry}: ${app.modules} modules (${app.packages} packages), ${(app.bytes / 1024).toFixed(0)} KiB of JavaScript`);
}
