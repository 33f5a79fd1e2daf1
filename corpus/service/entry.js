'use strict';
// Service-style corpus: a backend API of many small CommonJS modules (about 1460 modules, 6.5 MB
// of source, 2500 resolutions: lodash and date-fns one-function files, "exports" maps, the AWS SDK's
// self-referencing submodules). Requiring this file loads all of it and does a little synchronous
// work with each library so that lazily required modules load too: an express app with middleware
// and routes (never listens), knex + objection models with query building (never connects), S3 and
// DynamoDB clients with fake credentials and commands (never sent), joi/ajv validation, dates,
// logging to a discarding stream, JWTs. No network, no output, nothing left on the event loop.
const { Writable } = require('stream');

const express = require('express');
const helmet = require('helmet');
const cors = require('cors');
const compression = require('compression');
const cookieParser = require('cookie-parser');
const morgan = require('morgan');
const createError = require('http-errors');
const dotenv = require('dotenv');
const _ = require('lodash');
const knexFactory = require('knex');
const { Model, ValidationError, raw, ref } = require('objection');
const pg = require('pg');
const Joi = require('joi');
const Ajv = require('ajv');
const addFormats = require('ajv-formats');
const dateFns = require('date-fns');
const { enGB } = require('date-fns/locale/en-GB');
const dayjs = require('dayjs');
const utc = require('dayjs/plugin/utc');
const { S3Client, PutObjectCommand, GetObjectCommand, ListObjectsV2Command } = require('@aws-sdk/client-s3');
const { DynamoDBClient, DescribeTableCommand } = require('@aws-sdk/client-dynamodb');
const { DynamoDBDocumentClient, PutCommand, QueryCommand } = require('@aws-sdk/lib-dynamodb');
const { marshall, unmarshall } = require('@aws-sdk/util-dynamodb');
const winston = require('winston');
const axios = require('axios');
const uuid = require('uuid');
const jwt = require('jsonwebtoken');

const sink = () => new Writable({ write(_chunk, _encoding, callback) { callback(); } });

// Configuration.
const env = dotenv.parse('DATABASE_URL=postgres://app:secret@127.0.0.1:1/app\nJWT_SECRET=not-a-secret\nAWS_REGION=eu-west-1\nPAGE_SIZE=25\n');
const config = _.defaults({ pageSize: Number(env.PAGE_SIZE) }, { region: env.AWS_REGION, jwtSecret: env.JWT_SECRET, pageSize: 10 });

// Logging.
const logger = winston.createLogger({
  level: 'info',
  format: winston.format.combine(
    winston.format.timestamp(),
    winston.format.errors({ stack: true }),
    winston.format.splat(),
    winston.format.metadata({ fillExcept: ['message', 'level', 'timestamp'] }),
    winston.format.json(),
  ),
  defaultMeta: { service: 'codeblob-service-corpus' },
  transports: [new winston.transports.Stream({ stream: sink() })],
});
logger.add(new winston.transports.Stream({ stream: sink(), format: winston.format.combine(winston.format.colorize(), winston.format.simple()) }));

// Database: knex (PostgreSQL dialect, never connected) and objection models.
const knex = knexFactory({ client: 'pg', connection: env.DATABASE_URL, pool: { min: 0, max: 4 } });
Model.knex(knex);

class Account extends Model {
  static get tableName() { return 'accounts'; }
  static get jsonSchema() {
    return {
      type: 'object',
      required: ['email', 'name'],
      properties: {
        id: { type: 'string', format: 'uuid' },
        email: { type: 'string', format: 'email' },
        name: { type: 'string', minLength: 1, maxLength: 200 },
        plan: { type: 'string', enum: ['free', 'pro', 'enterprise'] },
        createdAt: { type: 'string', format: 'date-time' },
      },
    };
  }
  static get relationMappings() {
    return {
      projects: { relation: Model.HasManyRelation, modelClass: Project, join: { from: 'accounts.id', to: 'projects.accountId' } },
      members: {
        relation: Model.ManyToManyRelation,
        modelClass: User,
        join: { from: 'accounts.id', through: { from: 'memberships.accountId', to: 'memberships.userId' }, to: 'users.id' },
      },
    };
  }
}
class User extends Model {
  static get tableName() { return 'users'; }
  static get relationMappings() {
    return { accounts: { relation: Model.ManyToManyRelation, modelClass: Account, join: { from: 'users.id', through: { from: 'memberships.userId', to: 'memberships.accountId' }, to: 'accounts.id' } } };
  }
}
class Project extends Model {
  static get tableName() { return 'projects'; }
  static get relationMappings() {
    return { account: { relation: Model.BelongsToOneRelation, modelClass: Account, join: { from: 'projects.accountId', to: 'accounts.id' } } };
  }
}

const accountId = uuid.v4();
const account = Account.fromJson({ id: accountId, email: 'ops@example.com', name: 'Example', plan: 'pro', createdAt: new Date(0).toISOString() });
let invalidAccount = null;
try { Account.fromJson({ email: 'not-an-email' }); } catch (err) { if (err instanceof ValidationError) invalidAccount = err.type; else throw err; }
const queries = [
  Account.query().joinRelated('[projects, members]').where('accounts.plan', 'pro').orderBy('accounts.createdAt', 'desc').limit(config.pageSize).toKnexQuery().toString(),
  Account.relatedQuery('members').for(accountId).where('users.email', 'like', '%@example.com').toKnexQuery().toString(),
  Project.query().select('projects.*', raw('count(*) over () as total')).where(ref('projects.accountId'), accountId).toKnexQuery().toString(),
  knex('users').insert({ id: uuid.v4(), email: 'a@example.com' }).onConflict('email').merge().returning('*').toString(),
  knex.schema.createTable('audit_log', (t) => { t.uuid('id').primary(); t.jsonb('payload'); t.timestamps(true, true); t.index(['created_at']); }).toString(),
];
const pgTypes = pg.types.getTypeParser(1184)('2024-02-29 12:00:00+00');

// Validation.
const createAccountBody = Joi.object({
  email: Joi.string().email({ tlds: false }).required(),
  name: Joi.string().min(1).max(200).required(),
  plan: Joi.string().valid('free', 'pro', 'enterprise').default('free'),
  tags: Joi.array().items(Joi.string().alphanum()).max(10),
});
const joiResult = createAccountBody.validate({ email: 'dev@example.com', name: 'Dev', tags: ['a1', 'b2'] });
const ajv = new Ajv({ allErrors: true, coerceTypes: true });
addFormats(ajv);
const validateQuery = ajv.compile({
  type: 'object',
  properties: { page: { type: 'integer', minimum: 1, default: 1 }, since: { type: 'string', format: 'date' }, q: { type: 'string', maxLength: 100 } },
  additionalProperties: false,
});
const ajvResult = validateQuery({ page: '2', since: '2024-01-31' });

// Dates.
dayjs.extend(utc);
const when = new Date(Date.UTC(2024, 0, 31, 10, 0, 0));
const dates = {
  iso: dateFns.formatISO(when),
  formatted: dateFns.format(dateFns.addMonths(when, 1), 'PPPP', { locale: enGB }),
  distance: dateFns.formatDistanceStrict(when, dateFns.addDays(when, 45)),
  weekEnd: dateFns.endOfWeek(when, { weekStartsOn: 1 }).toISOString(),
  parsed: dateFns.isValid(dateFns.parseISO('2024-02-29')),
  interval: dateFns.eachDayOfInterval({ start: when, end: dateFns.addDays(when, 3) }).length,
  day: dayjs.utc(when).add(1, 'week').format('YYYY-MM-DD'),
};

// AWS: S3 and DynamoDB clients with fake credentials; commands are built, never sent. The SDK
// warns once on Node 20 that its future versions need Node 22; a deployed service turns that off.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const awsConfig = { region: config.region, credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' }, maxAttempts: 2 };
const s3 = new S3Client({ ...awsConfig, forcePathStyle: true });
const ddb = new DynamoDBClient(awsConfig);
const doc = DynamoDBDocumentClient.from(ddb, { marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: true } });
const commands = [
  new PutObjectCommand({ Bucket: 'uploads', Key: `accounts/${accountId}/avatar.png`, Body: 'x', ContentType: 'image/png' }),
  new GetObjectCommand({ Bucket: 'uploads', Key: 'a' }),
  new ListObjectsV2Command({ Bucket: 'uploads', Prefix: 'accounts/' }),
  new DescribeTableCommand({ TableName: 'sessions' }),
  new PutCommand({ TableName: 'sessions', Item: { pk: `ACCOUNT#${accountId}`, sk: 'SESSION', ttl: 1700000000, scopes: new Set(['read']) } }),
  new QueryCommand({ TableName: 'sessions', KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': 'x' } }),
];
const item = unmarshall(marshall({ id: accountId, n: 1, list: [1, 'a', null], nested: { ok: true } }, { removeUndefinedValues: true }));

// HTTP client for outbound calls (configured, never used).
const api = axios.create({ baseURL: 'https://api.example.invalid/v1', timeout: 2000, headers: { 'x-service': 'corpus' } });
api.interceptors.request.use((req) => { req.headers.set('x-request-id', uuid.v4()); return req; });
const outboundUri = api.getUri({ url: '/accounts', params: { page: 2, q: 'a b' } });

// Auth.
const token = jwt.sign({ sub: accountId, scope: 'read write' }, config.jwtSecret, { algorithm: 'HS256', expiresIn: '1h', issuer: 'corpus' });
const claims = jwt.verify(token, config.jwtSecret, { algorithms: ['HS256'], issuer: 'corpus' });

// The express app: middleware and routes (never listens).
const app = express();
app.disable('x-powered-by');
app.set('trust proxy', 1);
app.use(helmet());
app.use(cors({ origin: ['https://app.example.com'], credentials: true }));
app.use(compression());
app.use(cookieParser(config.jwtSecret));
app.use(morgan('combined', { stream: sink() }));
app.use(express.json({ limit: '1mb' }));
app.use(express.urlencoded({ extended: true }));

function authenticate(req, _res, next) {
  const header = req.get('authorization') || '';
  try {
    req.user = jwt.verify(header.replace(/^Bearer /, ''), config.jwtSecret, { algorithms: ['HS256'] });
    next();
  } catch {
    next(createError(401, 'invalid token'));
  }
}

const accounts = express.Router();
accounts.get('/', async (req, res) => {
  if (!validateQuery(req.query)) throw createError(400, ajv.errorsText(validateQuery.errors));
  res.json(await Account.query().page(req.query.page - 1, config.pageSize));
});
accounts.post('/', async (req, res) => {
  const { value, error } = createAccountBody.validate(req.body);
  if (error) throw createError(422, error.message);
  const created = await Account.query().insert({ id: uuid.v4(), ...value, createdAt: new Date().toISOString() });
  await doc.send(new PutCommand({ TableName: 'audit', Item: { pk: created.id, at: dates.iso } }));
  logger.info('account created %s', created.id);
  res.status(201).json(created);
});
accounts.get('/:id', async (req, res) => {
  if (!uuid.validate(req.params.id)) throw createError(404);
  const found = await Account.query().findById(req.params.id).withGraphFetched('projects');
  if (!found) throw createError(404);
  res.json(found);
});
accounts.put('/:id/avatar', async (req, res) => {
  await s3.send(new PutObjectCommand({ Bucket: 'uploads', Key: `accounts/${req.params.id}/avatar.png`, Body: req.body }));
  res.sendStatus(204);
});
app.get('/healthz', (_req, res) => res.json({ ok: true, at: dayjs().toISOString() }));
app.use('/v1/accounts', authenticate, accounts);
app.use((_req, _res, next) => next(createError(404)));
app.use((err, _req, res, _next) => {
  logger.error(err.message, { status: err.status });
  res.status(err.status || 500).json({ error: err.expose ? err.message : 'internal error' });
});

logger.info('service corpus loaded', { queries: queries.length, commands: commands.length });

const summary = {
  config,
  account: account.$toJson(),
  invalidAccount,
  queries,
  pgTypes: pgTypes instanceof Date,
  joi: !joiResult.error,
  ajv: ajvResult,
  dates,
  item,
  outboundUri,
  claims: _.pick(claims, ['sub', 'scope', 'iss']),
  routes: app.router.stack.length,
  commands: commands.map((c) => c.constructor.name),
};

// No pool, no connection: release knex's (empty) pool so nothing is left for the event loop.
knex.destroy();

module.exports = { app, knex, models: { Account, User, Project }, s3, ddb, doc, logger, api, summary };
