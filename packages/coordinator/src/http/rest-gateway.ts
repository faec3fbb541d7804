import type { IncomingMessage, ServerResponse } from 'node:http';
import { Metadata, status, type Client, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { COORDINATOR_PROTO_FILE, ERROR_METADATA, grpcStatusName, HTTP_STATUS_OF_GRPC, PROTO_ROOT, type Logger } from '@virtfleet/shared';

/**
 * The operator API over HTTP/JSON, one to one onto the gRPC service: every
 * unary method is `POST /v1/<Method>` with the request message as its JSON
 * body, every server stream is `GET /v1/<Method>?<request fields>` answered
 * as Server-Sent Events. Calls go through the coordinator's own gRPC server
 * (as grpc-gateway does), so validation, authorization, audit and errors are
 * the gRPC API's: the caller's `authorization: Bearer` header travels with
 * the call, and a gRPC status comes back as its HTTP status with a JSON body
 * naming the code, the message and the field. Client streams (image import)
 * are gRPC only.
 */
export interface RestGateway {
  /** Answers a request under /v1/ or /openapi.json; false when the path is not the gateway's. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
  /** The OpenAPI 3 document of the routes. */
  readonly openApi: object;
}

export interface RestGatewayOptions {
  /** A client of this coordinator's own gRPC API. */
  client: Client;
  /** The most a request body may hold: the gRPC API's own message limit. */
  maxBodyBytes: number;
  /** Deadline of each unary call. @default 60000 */
  deadlineMs?: number;
  log: Logger;
}

const SERVICE = 'virtfleet.v1.Coordinator';
export const REST_PREFIX = '/v1/';
const KEEPALIVE_MS = 15_000;

/** What a failed call answers: `{ error: { code, message, field? } }`. */
export class HttpError extends Error {
  constructor(
    readonly grpcCode: status,
    message: string,
    readonly field?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
  get httpStatus(): number {
    return HTTP_STATUS_OF_GRPC[this.grpcCode] ?? 500;
  }
  body(): object {
    return { error: { code: grpcStatusName(this.grpcCode), message: this.message, ...(this.field ? { field: this.field } : {}) } };
  }
}

interface Route {
  method: string;
  /** `unary`: POST with a JSON body; `stream`: GET with query parameters, answered as Server-Sent Events. */
  kind: 'unary' | 'stream';
  request: protobuf.Type;
  response: protobuf.Type;
  comment: string | null;
}

let root: protobuf.Root | undefined;
/** The coordinator's proto as protobufjs types, for checking request bodies and describing them. */
export function coordinatorProtoRoot(): protobuf.Root {
  if (!root) {
    const r = new protobuf.Root();
    r.resolvePath = (_origin, target) => (target.startsWith('/') ? target : `${PROTO_ROOT}/${target}`);
    r.loadSync(COORDINATOR_PROTO_FILE, { keepCase: true });
    r.resolveAll();
    root = r;
  }
  return root;
}

export function restRoutes(): Map<string, Route> {
  const service = coordinatorProtoRoot().lookupService(SERVICE);
  const routes = new Map<string, Route>();
  for (const m of service.methodsArray) {
    if (m.requestStream) continue;
    routes.set(m.name, { method: m.name, kind: m.responseStream ? 'stream' : 'unary', request: m.resolvedRequestType!, response: m.resolvedResponseType!, comment: m.comment });
  }
  return routes;
}

/**
 * Checks a JSON value against a message type as the gRPC API would receive
 * it: objects only, known fields only, each of its type. Returns the message
 * object or throws an INVALID_ARGUMENT HttpError naming the field.
 */
export function checkMessage(type: protobuf.Type, value: unknown, path = ''): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError(status.INVALID_ARGUMENT, 'must be a JSON object', path || 'body');
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    // Own keys only: `__proto__` or `toString` would find Object.prototype's.
    const field = Object.hasOwn(type.fields, key) ? type.fields[key] : undefined;
    const at = path ? `${path}.${key}` : key;
    if (!field) throw new HttpError(status.INVALID_ARGUMENT, `unknown field (${type.name} has ${Object.keys(type.fields).join(', ') || 'no fields'})`, at);
    if (v === null) continue;
    if (field.map) {
      if (typeof v !== 'object' || Array.isArray(v)) throw new HttpError(status.INVALID_ARGUMENT, 'must be an object', at);
      out[key] = Object.fromEntries(Object.entries(v as object).map(([k, item]) => [k, checkScalarOrMessage(field, item, `${at}.${k}`)]));
    } else if (field.repeated) {
      if (!Array.isArray(v)) throw new HttpError(status.INVALID_ARGUMENT, 'must be an array', at);
      out[key] = v.map((item, i) => checkScalarOrMessage(field, item, `${at}[${i}]`));
    } else out[key] = checkScalarOrMessage(field, v, at);
  }
  return out;
}

const INTEGER = /^-?\d+$/;
function checkScalarOrMessage(field: protobuf.Field, v: unknown, at: string): unknown {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return checkMessage(resolved, v, at);
  if (resolved instanceof protobuf.Enum) {
    if (typeof v !== 'string' || !Object.hasOwn(resolved.values, v)) throw new HttpError(status.INVALID_ARGUMENT, `must be one of ${Object.keys(resolved.values).join(', ')}`, at);
    return v;
  }
  switch (field.type) {
    case 'string':
      if (typeof v !== 'string') throw new HttpError(status.INVALID_ARGUMENT, 'must be a string', at);
      return v;
    case 'bool':
      if (typeof v !== 'boolean') throw new HttpError(status.INVALID_ARGUMENT, 'must be true or false', at);
      return v;
    case 'double':
    case 'float':
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new HttpError(status.INVALID_ARGUMENT, 'must be a number', at);
      return v;
    case 'bytes':
      if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) throw new HttpError(status.INVALID_ARGUMENT, 'must be base64', at);
      return Buffer.from(v, 'base64');
    default: {
      // Integers: 64-bit ones travel as decimal strings (as the API answers them), 32-bit ones as numbers or strings.
      const text = typeof v === 'number' && Number.isSafeInteger(v) ? String(v) : typeof v === 'string' && INTEGER.test(v) ? v : undefined;
      if (text === undefined) throw new HttpError(status.INVALID_ARGUMENT, 'must be an integer (a decimal string for 64-bit fields)', at);
      const n = BigInt(text);
      const [min, max] = INTEGER_RANGE[field.type] ?? [-(2n ** 63n), 2n ** 64n - 1n];
      if (n < min || n > max) throw new HttpError(status.INVALID_ARGUMENT, `must be between ${min} and ${max}`, at);
      return field.type.endsWith('64') ? text : Number(text);
    }
  }
}
const INTEGER_RANGE: Record<string, [bigint, bigint]> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};

/** A stream's request from query parameters: each a field of the request by name, typed as the field is. */
export function queryMessage(type: protobuf.Type, query: URLSearchParams): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  for (const [key, value] of query) {
    const field = Object.hasOwn(type.fields, key) ? type.fields[key] : undefined;
    if (!field) throw new HttpError(status.INVALID_ARGUMENT, `unknown query parameter (${type.name} has ${Object.keys(type.fields).join(', ')})`, key);
    raw[key] = field.type === 'bool' ? (value === 'true' ? true : value === 'false' ? false : value) : ['double', 'float'].includes(field.type) && value !== '' ? Number(value) : value;
  }
  return checkMessage(type, raw);
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new HttpError(status.RESOURCE_EXHAUSTED, `the body is larger than ${limit} bytes (grpc.maxMessageBytes)`, 'body'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function metadataOf(req: IncomingMessage): Metadata {
  const md = new Metadata();
  const authorization = req.headers.authorization;
  if (authorization !== undefined) md.set('authorization', authorization);
  return md;
}

function fromServiceError(err: ServiceError): HttpError {
  const field = err.metadata?.get(ERROR_METADATA.field)[0];
  const leader = err.metadata?.get(ERROR_METADATA.notLeader)[0];
  return new HttpError(err.code, err.details || err.message, typeof field === 'string' ? field : undefined, leader ? { 'x-virtfleet-not-leader': 'true' } : {});
}

export function sendJson(res: ServerResponse, httpStatus: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(httpStatus, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers });
  res.end(text);
}

export function createRestGateway(options: RestGatewayOptions): RestGateway {
  const routes = restRoutes();
  const openApi = openApiDocument(routes);
  const deadlineMs = options.deadlineMs ?? 60_000;
  const client = options.client as Client & Record<string, (...args: unknown[]) => unknown>;

  const unary = (route: Route, message: object, md: Metadata) =>
    new Promise<unknown>((resolve, reject) => {
      client[route.method]!(message, md, { deadline: new Date(Date.now() + deadlineMs) }, (err: ServiceError | null, reply: unknown) => (err ? reject(fromServiceError(err)) : resolve(reply)));
    });

  const stream = (route: Route, message: Record<string, unknown>, req: IncomingMessage, res: ServerResponse) => {
    // Resumable: an EventSource that reconnects sends the last sequence it saw.
    const lastEventId = req.headers['last-event-id'];
    if (typeof lastEventId === 'string' && route.request.fields.since_seq) {
      if (!/^\d{1,19}$/.test(lastEventId)) throw new HttpError(status.INVALID_ARGUMENT, 'must be the sequence of an event', 'Last-Event-ID');
      // Resuming: what follows that event, whatever the first request asked to start from.
      message.since_seq = String(BigInt(lastEventId) + 1n);
      delete message.from_start;
      delete message.since_time;
    }
    const call = client[route.method]!(message, metadataOf(req)) as ClientReadableStream<Record<string, unknown>>;
    let started = false;
    const start = () => {
      if (started) return;
      started = true;
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      res.write(': virtfleet\n\n');
    };
    // A quiet stream still sends its headers in time: grpc-js sends none before the first message.
    const keepAlive = setInterval(() => {
      start();
      res.write(': keep-alive\n\n');
    }, KEEPALIVE_MS);
    call.on('metadata', start);
    call.on('data', (item: Record<string, unknown>) => {
      start();
      const id = typeof item.sequence === 'string' ? `id: ${item.sequence}\n` : '';
      const event = typeof item.type === 'string' ? `event: ${item.type}\n` : '';
      res.write(`${id}${event}data: ${JSON.stringify(item)}\n\n`);
    });
    call.on('error', (err: ServiceError) => {
      clearInterval(keepAlive);
      if (err.code === status.CANCELLED) return;
      const failure = fromServiceError(err);
      if (!started) {
        started = true;
        return sendJson(res, failure.httpStatus, failure.body(), failure.headers);
      }
      res.end(`event: error\ndata: ${JSON.stringify(failure.body())}\n\n`);
    });
    call.on('end', () => {
      clearInterval(keepAlive);
      if (res.writableEnded) return;
      start();
      res.end();
    });
    res.on('close', () => {
      clearInterval(keepAlive);
      call.cancel();
    });
  };

  return {
    openApi,
    async handle(req, res) {
      const url = new URL(req.url ?? '/', 'http://virtfleet');
      if (url.pathname === '/openapi.json') {
        if (req.method !== 'GET') sendJson(res, 405, new HttpError(status.UNIMPLEMENTED, 'GET only').body(), { allow: 'GET' });
        else sendJson(res, 200, openApi);
        return true;
      }
      if (!url.pathname.startsWith(REST_PREFIX)) return false;
      try {
        const route = routes.get(url.pathname.slice(REST_PREFIX.length));
        if (!route) throw new HttpError(status.NOT_FOUND, `no such method: ${url.pathname} (the methods are under ${REST_PREFIX}; see /openapi.json)`, 'path');
        const wanted = route.kind === 'unary' ? 'POST' : 'GET';
        if (req.method !== wanted) {
          sendJson(res, 405, new HttpError(status.UNIMPLEMENTED, `${url.pathname} takes ${wanted}`).body(), { allow: wanted });
          return true;
        }
        if (route.kind === 'stream') {
          stream(route, queryMessage(route.request, url.searchParams), req, res);
          return true;
        }
        const text = await readBody(req, options.maxBodyBytes);
        let body: unknown = {};
        if (text.trim() !== '') {
          try {
            body = JSON.parse(text);
          } catch (err) {
            throw new HttpError(status.INVALID_ARGUMENT, `malformed JSON: ${(err as Error).message}`, 'body');
          }
        }
        const reply = await unary(route, checkMessage(route.request, body), metadataOf(req));
        sendJson(res, 200, reply);
      } catch (err) {
        const failure = err instanceof HttpError ? err : new HttpError(status.INTERNAL, (err as Error).message);
        if (!(err instanceof HttpError)) options.log.error({ err: (err as Error).message, path: url.pathname }, 'REST call failed');
        if (!res.headersSent) sendJson(res, failure.httpStatus, failure.body(), failure.headers);
      }
      return true;
    },
  };
}

/** The OpenAPI 3.0 document: a path per method, a schema per message, bearer tokens. */
export function openApiDocument(routes: Map<string, Route>): object {
  const schemas: Record<string, object> = {};
  const ref = (type: protobuf.Type | protobuf.Enum): object => {
    const name = type.fullName.replace(/^\./, '');
    if (!schemas[name]) {
      schemas[name] = {};
      schemas[name] = type instanceof protobuf.Enum ? { type: 'string', enum: Object.keys(type.values) } : messageSchema(type);
    }
    return { $ref: `#/components/schemas/${name}` };
  };
  const scalar = (field: protobuf.Field): object => {
    if (field.resolvedType) return ref(field.resolvedType as protobuf.Type | protobuf.Enum);
    switch (field.type) {
      case 'string':
        return { type: 'string' };
      case 'bool':
        return { type: 'boolean' };
      case 'double':
      case 'float':
        return { type: 'number' };
      case 'bytes':
        return { type: 'string', format: 'byte' };
      default:
        return field.type.endsWith('64') ? { type: 'string', format: field.type, pattern: '^-?[0-9]+$' } : { type: 'integer', format: field.type };
    }
  };
  const messageSchema = (type: protobuf.Type): object => ({
    type: 'object',
    additionalProperties: false,
    ...(type.comment ? { description: type.comment } : {}),
    properties: Object.fromEntries(
      type.fieldsArray.map((f) => {
        const base = scalar(f);
        const schema = f.map ? { type: 'object', additionalProperties: base } : f.repeated ? { type: 'array', items: base } : base;
        return [f.name, f.comment ? { ...schema, description: f.comment } : schema];
      }),
    ),
  });
  const errorResponse = { description: 'the gRPC status as HTTP: 400 INVALID_ARGUMENT/FAILED_PRECONDITION, 401, 403, 404, 409 ALREADY_EXISTS, 429, 503 UNAVAILABLE (a follower: the leader is named)', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
  const paths: Record<string, object> = {};
  for (const route of routes.values()) {
    const operation = {
      operationId: route.method,
      ...(route.comment ? { description: route.comment } : {}),
      security: [{ bearer: [] }],
      responses: {
        200:
          route.kind === 'unary'
            ? { description: route.response.name, content: { 'application/json': { schema: ref(route.response) } } }
            : { description: `a Server-Sent Events stream of ${route.response.name} (data: JSON; id: its sequence where it has one, for Last-Event-ID)`, content: { 'text/event-stream': { schema: ref(route.response) } } },
        default: errorResponse,
      },
    };
    paths[`${REST_PREFIX}${route.method}`] =
      route.kind === 'unary'
        ? { post: { ...operation, requestBody: { required: false, content: { 'application/json': { schema: ref(route.request) } } } } }
        : { get: { ...operation, parameters: route.request.fieldsArray.map((f) => ({ name: f.name, in: 'query', required: false, schema: scalar(f), ...(f.comment ? { description: f.comment } : {}) })) } };
  }
  schemas.Error = {
    type: 'object',
    properties: { error: { type: 'object', properties: { code: { type: 'string', description: 'the gRPC status name' }, message: { type: 'string' }, field: { type: 'string', description: 'the request field at fault, when one is' } }, required: ['code', 'message'] } },
  };
  return {
    openapi: '3.0.3',
    info: { title: 'virtfleet coordinator', version: 'v1', description: `The ${SERVICE} gRPC service over HTTP/JSON, one to one: POST ${REST_PREFIX}<Method> with the request as JSON; streams as Server-Sent Events.` },
    paths,
    components: { schemas, securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'a token from `virtfleet token create`' } } },
  };
}
