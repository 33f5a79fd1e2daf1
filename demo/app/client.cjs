'use strict';
const http = require('http');
/** Sends one request; resolves with "METHOD path -> status body". */
exports.request = (port, [method, path, body]) =>
  new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (data += d));
      res.on('end', () => resolve(`${method} ${path} -> ${res.statusCode} ${data}`));
    });
    req.on('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
