'use strict';
// The example app: the reference corpus's module graph (typescript, Babel, ESLint, webpack,
// prettier, express, lodash; the same modules as corpus/reference/entry.js, about 1300 modules and
// 26 MB of source), and one answer computed with each tool, so that a run from the blob and a
// plain run can be compared. Requiring this file loads all of it.
const ts = require('typescript');
const babel = require('@babel/core');
const presetEnv = require('@babel/preset-env');
const eslint = require('eslint');
const webpack = require('webpack');
const prettier = require('prettier');
require('prettier/parser-babel');
require('prettier/parser-typescript');
const express = require('express');
const _ = require('lodash');

function touch(obj, depth) {
  if (!obj || depth > 1) return;
  for (const key of Object.keys(obj)) {
    let value;
    try { value = obj[key]; } catch { continue; }
    if (value && typeof value === 'object' && !Array.isArray(value)) touch(value, depth + 1);
  }
}
touch(webpack, 0);
touch(eslint, 0);

/** One small job per tool; the same input always gives the same output. */
exports.answer = function answer() {
  const source = 'export const total = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) ?? 0;';
  const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2015 } }).outputText;
  const es5 = babel.transformSync(js, { presets: [[presetEnv, { targets: 'ie 11' }]], babelrc: false, configFile: false }).code;
  return {
    typescript: ts.version,
    transpiled: js,
    babel: es5,
    prettier: prettier.format('const  greet=(name)=>{return `hi ${ name }`}', { parser: 'babel' }),
    lodash: _.chunk(_.range(10), 3),
    express: typeof express.Router,
    eslint: typeof eslint.Linter,
    webpack: webpack.version,
  };
};
