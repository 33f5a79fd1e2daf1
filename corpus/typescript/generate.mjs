#!/usr/bin/env node
// Writes the TypeScript service's own sources into <dir>/src (default: beside this file): an HTTP
// server in .ts as Node runs it (type stripping: erasable syntax only, `import type`, `.ts`
// specifiers) over find-my-way (routing), zod (validation), pino (logging) and dayjs (dates).
// ENTITIES resources, each with its types, validation schemas, an in-memory service and its
// routes, plus a shared lib/: 4 × ENTITIES + 9 files. Deterministic: the same files every time.
// Usage: node generate.mjs [dir] [entities]
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = resolve(process.argv[2] ?? dirname(fileURLToPath(import.meta.url)));
const ENTITIES = Number(process.argv[3] ?? 40);
const NOUNS = ['account', 'invoice', 'order', 'product', 'customer', 'shipment', 'payment', 'refund', 'coupon', 'review',
  'ticket', 'agent', 'team', 'project', 'task', 'comment', 'tag', 'category', 'warehouse', 'supplier',
  'contract', 'quote', 'lead', 'campaign', 'subscriber', 'plan', 'feature', 'webhook', 'session', 'device',
  'region', 'store', 'employee', 'shift', 'payroll', 'expense', 'budget', 'report', 'audit', 'policy',
  'claim', 'vehicle', 'route', 'driver', 'booking', 'room', 'guest', 'event', 'venue', 'sponsor'];
const pascal = (s) => s[0].toUpperCase() + s.slice(1);

const files = new Map();
const put = (name, lines) => files.set(name, lines.join('\n') + '\n');

put('src/lib/config.ts', [
  'export interface Config {',
  '  readonly port: number;',
  '  readonly host: string;',
  "  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug';",
  '  readonly pageSize: number;',
  '}',
  '',
  'export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {',
  "  const port = Number(env.PORT ?? 0);",
  "  if (!Number.isInteger(port) || port < 0) throw new Error(`PORT must be a port number, got ${env.PORT as string}`);",
  "  return { port, host: env.HOST ?? '127.0.0.1', logLevel: (env.LOG_LEVEL as Config['logLevel'] | undefined) ?? 'warn', pageSize: 20 };",
  '}',
]);
put('src/lib/errors.ts', [
  'export class HttpError extends Error {',
  '  readonly status: number;',
  '  readonly details: unknown;',
  '  constructor(status: number, message: string, details?: unknown) {',
  '    super(message);',
  '    this.status = status;',
  '    this.details = details;',
  '  }',
  '}',
  "export const notFound = (what: string): HttpError => new HttpError(404, `${what} not found`);",
  "export const badRequest = (details: unknown): HttpError => new HttpError(400, 'invalid request', details);",
]);
put('src/lib/logger.ts', [
  "import pino from 'pino';",
  "import type { Config } from './config.ts';",
  'export type Logger = pino.Logger;',
  "export function createLogger(config: Config): Logger {",
  "  return pino({ level: config.logLevel, base: { service: 'ts-corpus' } });",
  '}',
]);
put('src/lib/http.ts', [
  "import type { IncomingMessage, ServerResponse } from 'node:http';",
  "import { HttpError } from './errors.ts';",
  '',
  'export type Params = Record<string, string | undefined>;',
  'export type Handler = (req: IncomingMessage, res: ServerResponse, params: Params, body: unknown) => Promise<unknown> | unknown;',
  '',
  'export function send(res: ServerResponse, status: number, payload: unknown): void {',
  '  const body = JSON.stringify(payload);',
  "  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });",
  '  res.end(body);',
  '}',
  '',
  'export async function readBody(req: IncomingMessage): Promise<unknown> {',
  "  if (req.method === 'GET' || req.method === 'DELETE') return undefined;",
  '  const chunks: Buffer[] = [];',
  '  for await (const chunk of req) chunks.push(chunk as Buffer);',
  '  if (chunks.length === 0) return undefined;',
  '  try {',
  "    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;",
  '  } catch {',
  "    throw new HttpError(400, 'body is not JSON');",
  '  }',
  '}',
  '',
  'export function wrap(handler: Handler) {',
  '  return async (req: IncomingMessage, res: ServerResponse, params: Params): Promise<void> => {',
  '    try {',
  '      const result = await handler(req, res, params, await readBody(req));',
  '      if (!res.headersSent) send(res, result === undefined ? 204 : 200, result ?? null);',
  '    } catch (error) {',
  '      const e = error instanceof HttpError ? error : new HttpError(500, (error as Error).message);',
  '      send(res, e.status, { error: e.message, details: e.details ?? null });',
  '    }',
  '  };',
  '}',
]);
put('src/lib/pagination.ts', [
  'export interface Page<T> { readonly items: readonly T[]; readonly total: number; readonly next: number | null }',
  'export function paginate<T>(all: readonly T[], offset: number, size: number): Page<T> {',
  '  const items = all.slice(offset, offset + size);',
  '  return { items, total: all.length, next: offset + size < all.length ? offset + size : null };',
  '}',
  "export function pageParams(url: string | undefined): { offset: number; size: number } {",
  "  const q = new URL(url ?? '/', 'http://x').searchParams;",
  "  return { offset: Math.max(0, Number(q.get('offset') ?? 0) || 0), size: Math.min(100, Math.max(1, Number(q.get('size') ?? 20) || 20)) };",
  '}',
]);
put('src/lib/ids.ts', [
  'let counter = 0;',
  "export type Id = string & { readonly __brand: 'Id' };",
  "export function nextId(prefix: string): Id {",
  '  counter += 1;',
  "  return `${prefix}_${counter.toString(36).padStart(6, '0')}` as Id;",
  '}',
]);
put('src/lib/time.ts', [
  "import dayjs from 'dayjs';",
  'export type Timestamp = string;',
  'export const now = (): Timestamp => dayjs().toISOString();',
  "export const ageInDays = (t: Timestamp): number => dayjs().diff(dayjs(t), 'day');",
]);
put('src/lib/repository.ts', [
  "import type { Id } from './ids.ts';",
  'export interface Entity { readonly id: Id; readonly createdAt: string; updatedAt: string }',
  '/** An in-memory table: what a real service would keep in a database. */',
  'export class Repository<T extends Entity> {',
  '  readonly #rows = new Map<Id, T>();',
  '  all(): T[] { return [...this.#rows.values()]; }',
  '  get(id: Id): T | undefined { return this.#rows.get(id); }',
  '  put(row: T): T { this.#rows.set(row.id, row); return row; }',
  '  delete(id: Id): boolean { return this.#rows.delete(id); }',
  '  get size(): number { return this.#rows.size; }',
  '}',
]);

const entities = NOUNS.slice(0, ENTITIES);
for (const [i, noun] of entities.entries()) {
  const P = pascal(noun);
  const related = entities[(i + 1) % entities.length];
  put(`src/types/${noun}.ts`, [
    "import type { Entity } from '../lib/repository.ts';",
    "import type { Id } from '../lib/ids.ts';",
    `export type ${P}Status = 'draft' | 'active' | 'archived';`,
    `export interface ${P} extends Entity {`,
    '  name: string;',
    `  status: ${P}Status;`,
    '  amount: number;',
    '  tags: string[];',
    `  ${related}Id?: Id;`,
    '  notes?: string;',
    '}',
    `export type New${P} = Pick<${P}, 'name' | 'amount' | 'tags'> & Partial<Pick<${P}, 'status' | 'notes'>>;`,
    `export type ${P}Patch = Partial<New${P}>;`,
    `export interface ${P}Summary { readonly id: Id; readonly name: string; readonly ageDays: number }`,
  ]);
  put(`src/validation/${noun}.ts`, [
    "import { z } from 'zod';",
    `import type { New${P}, ${P}Patch } from '../types/${noun}.ts';`,
    "import { badRequest } from '../lib/errors.ts';",
    `export const new${P}Schema = z.object({`,
    '  name: z.string().min(1).max(200),',
    `  amount: z.number().nonnegative().max(${(i + 1) * 1000}),`,
    '  tags: z.array(z.string().max(40)).max(20),',
    "  status: z.enum(['draft', 'active', 'archived']).optional(),",
    '  notes: z.string().max(2000).optional(),',
    '});',
    `export const ${noun}PatchSchema = new${P}Schema.partial();`,
    `export function parseNew${P}(body: unknown): New${P} {`,
    `  const r = new${P}Schema.safeParse(body);`,
    '  if (!r.success) throw badRequest(r.error.issues);',
    '  return r.data;',
    '}',
    `export function parse${P}Patch(body: unknown): ${P}Patch {`,
    `  const r = ${noun}PatchSchema.safeParse(body);`,
    '  if (!r.success) throw badRequest(r.error.issues);',
    '  return r.data;',
    '}',
  ]);
  put(`src/services/${noun}-service.ts`, [
    `import type { ${P}, New${P}, ${P}Patch, ${P}Summary } from '../types/${noun}.ts';`,
    "import type { Logger } from '../lib/logger.ts';",
    "import { Repository } from '../lib/repository.ts';",
    "import { nextId, type Id } from '../lib/ids.ts';",
    "import { now, ageInDays } from '../lib/time.ts';",
    "import { notFound } from '../lib/errors.ts';",
    "import { paginate, type Page } from '../lib/pagination.ts';",
    `export class ${P}Service {`,
    `  readonly #repo = new Repository<${P}>();`,
    '  readonly #log: Logger;',
    '  constructor(log: Logger) {',
    `    this.#log = log.child({ service: '${noun}' });`,
    '  }',
    `  list(offset: number, size: number): Page<${P}> {`,
    '    return paginate(this.#repo.all(), offset, size);',
    '  }',
    `  get(id: string): ${P} {`,
    '    const row = this.#repo.get(id as Id);',
    `    if (!row) throw notFound('${noun} ' + id);`,
    '    return row;',
    '  }',
    `  create(input: New${P}): ${P} {`,
    '    const at = now();',
    `    const row: ${P} = { id: nextId('${noun.slice(0, 3)}'), createdAt: at, updatedAt: at, status: input.status ?? 'draft', ...input };`,
    `    this.#log.debug({ id: row.id }, 'created ${noun}');`,
    '    return this.#repo.put(row);',
    '  }',
    `  update(id: string, patch: ${P}Patch): ${P} {`,
    '    const row = { ...this.get(id), ...patch, updatedAt: now() };',
    '    return this.#repo.put(row);',
    '  }',
    '  remove(id: string): void {',
    `    if (!this.#repo.delete(id as Id)) throw notFound('${noun} ' + id);`,
    '  }',
    `  summaries(): ${P}Summary[] {`,
    '    return this.#repo.all().map((r) => ({ id: r.id, name: r.name, ageDays: ageInDays(r.createdAt) }));',
    '  }',
    '  total(): number {',
    '    return this.#repo.all().reduce((sum, r) => sum + r.amount, 0);',
    '  }',
    '}',
  ]);
  put(`src/routes/${noun}-routes.ts`, [
    "import type { Router } from '../router.ts';",
    `import type { ${P}Service } from '../services/${noun}-service.ts';`,
    `import { parseNew${P}, parse${P}Patch } from '../validation/${noun}.ts';`,
    "import { wrap } from '../lib/http.ts';",
    "import { pageParams } from '../lib/pagination.ts';",
    `export function register${P}Routes(router: Router, service: ${P}Service): void {`,
    `  router.on('GET', '/${noun}s', wrap((req) => { const { offset, size } = pageParams(req.url); return service.list(offset, size); }));`,
    `  router.on('GET', '/${noun}s/summary', wrap(() => ({ count: service.summaries().length, total: service.total() })));`,
    `  router.on('GET', '/${noun}s/:id', wrap((_req, _res, params) => service.get(params.id!)));`,
    `  router.on('POST', '/${noun}s', wrap((_req, res, _params, body) => { res.statusCode = 201; return service.create(parseNew${P}(body)); }));`,
    `  router.on('PATCH', '/${noun}s/:id', wrap((_req, _res, params, body) => service.update(params.id!, parse${P}Patch(body))));`,
    `  router.on('DELETE', '/${noun}s/:id', wrap((_req, _res, params) => { service.remove(params.id!); return undefined; }));`,
    '}',
  ]);
}
put('src/router.ts', [
  "import findMyWay from 'find-my-way';",
  "import type { IncomingMessage, ServerResponse } from 'node:http';",
  "import { send } from './lib/http.ts';",
  'export type Router = ReturnType<typeof createRouter>;',
  'export function createRouter() {',
  "  return findMyWay<findMyWay.HTTPVersion.V1>({ ignoreTrailingSlash: true, defaultRoute: (_req: IncomingMessage, res: ServerResponse) => send(res, 404, { error: 'no such route' }) });",
  '}',
]);
put('src/app.ts', [
  "import { createRouter, type Router } from './router.ts';",
  "import type { Logger } from './lib/logger.ts';",
  ...entities.map((n) => `import { ${pascal(n)}Service } from './services/${n}-service.ts';\nimport { register${pascal(n)}Routes } from './routes/${n}-routes.ts';`),
  'export function createApp(log: Logger): Router {',
  '  const router = createRouter();',
  ...entities.map((n) => `  register${pascal(n)}Routes(router, new ${pascal(n)}Service(log));`),
  "  router.on('GET', '/health', (_req, res) => { res.end('ok'); });",
  '  return router;',
  '}',
]);
put('server.ts', [
  "import { createServer } from 'node:http';",
  "import { loadConfig } from './src/lib/config.ts';",
  "import { createLogger } from './src/lib/logger.ts';",
  "import { createApp } from './src/app.ts';",
  'const config = loadConfig();',
  'const log = createLogger(config);',
  'const router = createApp(log);',
  'const server = createServer((req, res) => router.lookup(req, res));',
  'server.listen(config.port, config.host, () => {',
  '  const address = server.address();',
  "  log.info({ address }, 'listening');",
  "  if (process.env.PRINT_PORT) console.log(typeof address === 'object' && address ? address.port : address);",
  '});',
]);

rmSync(join(dir, 'src'), { recursive: true, force: true });
for (const [name, text] of files) {
  mkdirSync(dirname(join(dir, name)), { recursive: true });
  writeFileSync(join(dir, name), text);
}
console.log(`generated ${files.size} .ts files in ${dir}`);
