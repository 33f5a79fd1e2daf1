// One HTTP request on a fresh connection (no keep-alive, so a cluster hands every request to
// the next worker), answered as { status, headers: [[name, value]...] in order, body: Buffer }.
import http from 'node:http';

export function send(port, req, { timeoutMs = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const body = req.body === undefined ? undefined : Buffer.from(req.body);
    const headers = { ...(req.headers ?? {}) };
    if (body) headers['content-length'] = String(body.length);
    const r = http.request({ host: '127.0.0.1', port, method: req.method ?? 'GET', path: req.path, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const pairs = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) pairs.push([res.rawHeaders[i].toLowerCase(), res.rawHeaders[i + 1]]);
        resolve({ status: res.statusCode, headers: pairs, body: Buffer.concat(chunks) });
      });
      res.on('error', reject);
    });
    r.setTimeout(timeoutMs, () => r.destroy(new Error(`${req.method ?? 'GET'} ${req.path}: no answer in ${timeoutMs} ms`)));
    r.on('error', reject);
    r.end(body);
  });
}

/** `send`, retrying while the server is not accepting connections yet (up to `waitMs`). */
export async function sendWhenUp(port, req, waitMs = 30_000) {
  const until = Date.now() + waitMs;
  for (;;) {
    try {
      return await send(port, req);
    } catch (error) {
      if (error.code !== 'ECONNREFUSED' || Date.now() > until) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
