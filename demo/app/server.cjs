'use strict';
// The demo app: an express server whose requests use heavy libraries (TypeScript, Babel,
// Prettier, lodash). In a cluster each worker loads all of them: that is what codeblob shares.
const http = require('http');
const express = require('express');
const _ = require('lodash');
const ts = require('typescript');
const babel = require('@babel/core');
const presetEnv = require('@babel/preset-env');
const prettier = require('prettier');

const app = express();
app.use(express.json({ limit: '1mb' }));
app.post('/transpile', (req, res) => {
  const out = ts.transpileModule(req.body.code, { compilerOptions: { target: ts.ScriptTarget.ES2017, module: ts.ModuleKind.CommonJS } });
  res.json({ code: out.outputText });
});
app.post('/babel', (req, res) => {
  const out = babel.transformSync(req.body.code, { babelrc: false, configFile: false, presets: [[presetEnv, { targets: 'ie 11' }]] });
  res.json({ code: out.code });
});
app.post('/format', (req, res) => {
  res.json({ code: prettier.format(req.body.code, { parser: req.body.parser || 'babel' }) });
});
app.get('/stats', (req, res) => {
  const xs = _.range(1, 101);
  res.json({ sum: _.sum(xs), chunks: _.chunk(xs, 25).map((c) => _.mean(c)), words: _.words(_.startCase('code blob demo')) });
});

const server = http.createServer(app);
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  // For the demo's header: the backend codeblob loaded this worker with, read from the loader's
  // global record (undefined without codeblob).
  const backend = globalThis[Symbol.for('codeblob.loader.status')]?.backend;
  if (process.send) process.send({ ready: true, port: server.address().port, backend });
});
module.exports = server;
