// Training script for `codeblob pack --train` (bench/servers/lib.mjs): runs inside the traced
// server once it has settled and sends it every request of the corpus's list (TRAIN_REQUESTS,
// a JSON file) twice, on TRAIN_PORT, so the late code caches cover what serving compiles.
// A failed request (no answer) fails the pack; HTTP error statuses are part of the list.
import { readFileSync } from 'node:fs';
import { sendWhenUp } from './client.mjs';

export default async function train() {
  const port = Number(process.env.TRAIN_PORT);
  if (!port) throw new Error('TRAIN_PORT is not set');
  const requests = JSON.parse(readFileSync(process.env.TRAIN_REQUESTS, 'utf8'));
  for (let pass = 0; pass < 2; pass++) {
    for (const req of requests) await sendWhenUp(port, req);
  }
}
