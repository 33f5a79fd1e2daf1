'use strict';
// SHA-256 of a file, read in 1 MiB steps (the blob is not held in memory), as `sha256sum` and
// `codeblob verify` print it. `node blob-digest.cjs /blob/app.blob` prints it.
const { closeSync, openSync, readSync } = require('node:fs');
const { createHash } = require('node:crypto');

function sha256File(path) {
  const hash = createHash('sha256');
  const chunk = Buffer.allocUnsafe(1 << 20);
  const fd = openSync(path, 'r');
  try {
    for (let n; (n = readSync(fd, chunk, 0, chunk.length, null)) > 0;) hash.update(chunk.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}
module.exports = { sha256File };
if (require.main === module) console.log(sha256File(process.argv[2] || process.env.CODEBLOB_FILE));
