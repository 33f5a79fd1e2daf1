'use strict';
// Training for `codeblob pack --train`: send every demo request once, so the code caches
// include the functions requests use, not only the ones startup uses.
const server = require('./server.cjs');
const { request } = require('./client.cjs');
const requests = require('./requests.cjs');
module.exports = async () => {
  if (!server.listening) await new Promise((r) => server.once('listening', r));
  for (const r of requests) await request(server.address().port, r);
  server.close();
};
