'use strict';
// A real Fastify server for codeblob's differential harness (bench/servers.mjs,
// test/servers.test.ts): several plugins (cors, helmet, compress, formbody, sensible, swagger +
// swagger-ui), JSON-schema validation and serialization (TypeBox schemas), and pino logging
// through a worker-thread transport (pino.transport: thread-stream starts a thread that loads
// pino's worker and its targets with `import()`), as production Fastify apps log.
//
// Environment: PORT (default 0: any free port; in a cluster every worker shares the primary's
// port), HOST (default 127.0.0.1), LOG_DIR (default: the OS temp dir). Prints one line
// `listening on http://host:port` once it accepts connections. SIGTERM closes the server, then
// ends the logging thread, then exits 0.
const { join } = require('node:path');
const { tmpdir } = require('node:os');
const Fastify = require('fastify');
const pino = require('pino');
const { Type } = require('@sinclair/typebox');

const logDir = process.env.LOG_DIR || tmpdir();
const transport = pino.transport({
  targets: [
    { target: 'pino/file', level: 'info', options: { destination: join(logDir, `app-${process.pid}.ndjson`), mkdir: true } },
    { target: 'pino-pretty', level: 'info', options: { destination: join(logDir, `app-${process.pid}.log`), colorize: false, mkdir: true } },
  ],
});
const logger = pino({ level: 'info', base: { service: 'codeblob-fastify-corpus' } }, transport);

const app = Fastify({ loggerInstance: logger, ajv: { customOptions: { coerceTypes: true, removeAdditional: true } } });

// Which worker answered: the harness uses it to know when every worker serves (and masks it).
app.addHook('onSend', async (_request, reply) => {
  reply.header('x-served-by', String(process.pid));
});

app.register(require('@fastify/helmet'), { global: true });
app.register(require('@fastify/cors'), { origin: ['https://app.example.com'], methods: ['GET', 'POST'], maxAge: 600 });
app.register(require('@fastify/compress'), { threshold: 512 });
app.register(require('@fastify/formbody'));
app.register(require('@fastify/sensible'));
app.register(require('@fastify/swagger'), {
  openapi: {
    info: { title: 'Inventory', version: '1.0.0', description: 'A corpus server for codeblob' },
    tags: [{ name: 'items' }, { name: 'reports' }],
  },
});
app.register(require('@fastify/swagger-ui'), { routePrefix: '/documentation' });

const Item = Type.Object({
  id: Type.Integer({ minimum: 1 }),
  name: Type.String({ minLength: 1, maxLength: 80 }),
  price: Type.Number({ minimum: 0 }),
  tags: Type.Array(Type.String(), { maxItems: 8 }),
});
const NewItem = Type.Omit(Item, ['id']);
const ListQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 100, default: 10 }),
  offset: Type.Integer({ minimum: 0, default: 0 }),
  tag: Type.Optional(Type.String()),
});

// A deterministic inventory: every worker computes the same one.
const WORDS = ['anchor', 'basil', 'cobalt', 'dune', 'ember', 'fjord', 'garnet', 'harbor', 'indigo', 'juniper', 'kelp', 'lumen'];
const items = Array.from({ length: 240 }, (_, i) => ({
  id: i + 1,
  name: `${WORDS[i % WORDS.length]}-${WORDS[(i * 7) % WORDS.length]}-${i + 1}`,
  price: Math.round(((i * 7919) % 10007) / 3.7) / 100,
  tags: WORDS.filter((_, j) => (i + j) % 5 === 0).slice(0, 3),
}));
let nextId = items.length + 1;

app.register(async (api) => {
  api.get('/health', { schema: { response: { 200: Type.Object({ status: Type.String() }) } } }, async () => ({ status: 'ok' }));

  api.get('/items', {
    schema: { tags: ['items'], querystring: ListQuery, response: { 200: Type.Object({ total: Type.Integer(), items: Type.Array(Item) }) } },
  }, async (request) => {
    const { limit, offset, tag } = request.query;
    const list = tag ? items.filter((i) => i.tags.includes(tag)) : items;
    return { total: list.length, items: list.slice(offset, offset + limit) };
  });

  api.get('/items/:id', {
    schema: { tags: ['items'], params: Type.Object({ id: Type.Integer({ minimum: 1 }) }), response: { 200: Item } },
  }, async (request, reply) => {
    const item = items.find((i) => i.id === request.params.id);
    if (!item) return reply.notFound(`item ${request.params.id} does not exist`);
    return item;
  });

  // Creation does not change the shared inventory: every worker must answer alike.
  api.post('/items', { schema: { tags: ['items'], body: NewItem, response: { 201: Item } } }, async (request, reply) => {
    reply.code(201);
    return { id: nextId, ...request.body };
  });

  api.post('/feedback', {
    schema: { consumes: ['application/x-www-form-urlencoded'], body: Type.Object({ name: Type.String(), message: Type.String({ minLength: 3 }) }) },
  }, async (request) => ({ thanks: request.body.name, words: request.body.message.split(/\s+/).length }));

  // Some real work per request: statistics over the inventory, grouped and sorted.
  api.get('/reports/prices', { schema: { tags: ['reports'], querystring: Type.Object({ buckets: Type.Integer({ minimum: 1, maximum: 50, default: 10 }) }) } }, async (request) => {
    const { buckets } = request.query;
    const prices = items.map((i) => i.price).sort((a, b) => a - b);
    const max = prices[prices.length - 1];
    const histogram = Array.from({ length: buckets }, (_, b) => ({
      from: +((max / buckets) * b).toFixed(2),
      count: prices.filter((p) => Math.min(buckets - 1, Math.floor((p / max) * buckets)) === b).length,
    }));
    const byTag = {};
    for (const item of items) for (const t of item.tags) (byTag[t] ??= []).push(item.price);
    const tags = Object.entries(byTag).sort(([a], [b]) => a.localeCompare(b)).map(([tag, list]) => ({
      tag, count: list.length, mean: +(list.reduce((s, p) => s + p, 0) / list.length).toFixed(4),
    }));
    return { count: prices.length, median: prices[prices.length >> 1], histogram, tags };
  });

  api.get('/teapot', async (_request, reply) => reply.imateapot('short and stout'));
});

let closing = false;
process.once('SIGTERM', () => {
  if (closing) return;
  closing = true;
  app.close().then(() => {
    // End the logging thread after its last line, then leave.
    transport.once('close', () => process.exit(0));
    transport.end();
  }, (error) => {
    console.error(error);
    process.exit(1);
  });
});

app.listen({ port: Number(process.env.PORT ?? 0), host: process.env.HOST || '127.0.0.1' }).then((address) => {
  console.log(`listening on ${address}`);
}, (error) => {
  console.error(error);
  process.exit(1);
});
