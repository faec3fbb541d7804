import { createServer as createPlainServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { status } from '@grpc/grpc-js';
import { z } from 'zod';
import { hostPortSchema } from './config.js';
import { grpcStatusName, UnauthenticatedError, VirtfleetError } from './errors.js';
import { identityOfPeer, type Identity } from './identity.js';
import type { Logger } from './logger.js';
import type { CertificateFiles, TlsMaterial } from './mtls.js';

/**
 * A daemon's `http` section: one HTTP(S) server for operator surfaces
 * (metrics now). HTTPS with the daemon's gRPC certificate whenever it has
 * `grpc.tls`; plaintext only when gRPC is (`grpc.insecure`) or `insecure`
 * says so by name.
 */
export function httpConfigSchema(defaultListen: string) {
  return z
    .object({
      /** Serve at all. @default true */
      enabled: z.boolean().default(true),
      /** host:port; port 0 takes a free one. */
      listen: hostPortSchema.default(defaultListen),
      /** Plaintext HTTP although gRPC has TLS, with a warning at start. @default false */
      insecure: z.boolean().optional(),
    })
    .strict()
    .default({ enabled: true, listen: defaultListen });
}

export type HttpConfig = z.output<ReturnType<typeof httpConfigSchema>>;

/** What a handler sees of a request. */
export interface HttpRequest {
  method: string;
  /** The path without its query string, e.g. `/metrics`. */
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  /**
   * The identity of the client certificate, when the client presented one
   * the cluster CA issued that is valid now (HTTPS only); undefined otherwise.
   */
  peer: Identity | undefined;
}

export interface HttpResponse {
  /** @default 200 */
  status?: number;
  /** @default 'application/json' for an object body, else 'text/plain; charset=utf-8' */
  contentType?: string;
  /** An object is sent as JSON. */
  body: string | Buffer | object;
}

/**
 * Decides whether the request may reach the handler: returns to let it
 * through, throws UnauthenticatedError (401) or PermissionDeniedError (403)
 * to refuse it, as every handler error is mapped (`httpStatusOf`).
 */
export type HttpGuard = (request: HttpRequest) => void | Promise<void>;

export interface HttpRoute {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** An exact path. */
  path: string;
  /** Who may call it. Every route says so: `openRoute` for anyone. */
  guard: HttpGuard;
  /** Throws a VirtfleetError (or anything else: 500) to fail the request. */
  handler: (request: HttpRequest) => HttpResponse | Promise<HttpResponse>;
}

/** The guard of a route anyone may call (health checks). */
export const openRoute: HttpGuard = () => undefined;

/**
 * The guard of a route for any holder of a certificate the cluster CA issued
 * (any role): 401 without one. Over plaintext (`tls` false) every caller passes.
 */
export function clientCertificateGuard(tls: boolean): HttpGuard {
  return (request) => {
    if (tls && !request.peer) throw new UnauthenticatedError('a client certificate issued by the cluster CA is required (for Prometheus, say: `virtfleet pki issue --role operator --name prometheus`)');
  };
}

/** HTTP status for each gRPC code, as google.rpc.Code documents them; anything unmapped is 500. */
export const HTTP_STATUS_OF_GRPC: Readonly<Partial<Record<status, number>>> = {
  [status.OK]: 200,
  [status.CANCELLED]: 499,
  [status.INVALID_ARGUMENT]: 400,
  [status.FAILED_PRECONDITION]: 400,
  [status.OUT_OF_RANGE]: 400,
  [status.UNAUTHENTICATED]: 401,
  [status.PERMISSION_DENIED]: 403,
  [status.NOT_FOUND]: 404,
  [status.ALREADY_EXISTS]: 409,
  [status.ABORTED]: 409,
  [status.RESOURCE_EXHAUSTED]: 429,
  [status.UNIMPLEMENTED]: 501,
  [status.UNAVAILABLE]: 503,
  [status.DEADLINE_EXCEEDED]: 504,
};


/** The HTTP status and JSON error body a thrown value becomes: a VirtfleetError by its gRPC code, anything else 500. */
export function httpErrorOf(err: unknown): { status: number; body: { error: { code: string; message: string } } } {
  if (err instanceof VirtfleetError) return { status: HTTP_STATUS_OF_GRPC[err.code] ?? 500, body: { error: { code: grpcStatusName(err.code), message: err.message } } };
  return { status: 500, body: { error: { code: 'INTERNAL', message: 'internal error' } } };
}

/** A response as the router answers it: its status set, and headers of its own (allow, www-authenticate). */
export type RoutedResponse = HttpResponse & { status: number; headers?: Record<string, string> };

/** A route table: exact method and path. */
export class HttpRouter {
  private readonly byPath = new Map<string, Map<string, HttpRoute>>();

  /** @throws Error when the method and path are taken already: two handlers for one route is a bug */
  constructor(routes: readonly HttpRoute[]) {
    for (const r of routes) {
      const methods = this.byPath.get(r.path) ?? new Map<string, HttpRoute>();
      if (methods.has(r.method)) throw new Error(`two routes for ${r.method} ${r.path}`);
      methods.set(r.method, r);
      this.byPath.set(r.path, methods);
    }
  }

  /** The route, or why there is none: 404 for an unknown path, 405 (with the methods it takes) for another method. */
  match(method: string, path: string): { route: HttpRoute } | { status: 404 } | { status: 405; allow: string[] } {
    const methods = this.byPath.get(path);
    if (!methods) return { status: 404 };
    const route = methods.get(method);
    return route ? { route } : { status: 405, allow: [...methods.keys()] };
  }

  /** Runs a request through its route: guard, handler, error mapping. Never throws. */
  async handle(request: HttpRequest): Promise<RoutedResponse> {
    const found = this.match(request.method, request.path);
    if ('status' in found) {
      const body = { error: { code: found.status === 404 ? 'NOT_FOUND' : 'METHOD_NOT_ALLOWED', message: found.status === 404 ? `no route ${request.path}` : `${request.path} takes ${'allow' in found ? found.allow.join(', ') : ''}` } };
      return { status: found.status, body, ...('allow' in found ? { headers: { allow: found.allow.join(', ') } } : {}) };
    }
    try {
      await found.route.guard(request);
      const response = await found.route.handler(request);
      return { ...response, status: response.status ?? 200 };
    } catch (err) {
      const mapped = httpErrorOf(err);
      return { ...mapped, ...(mapped.status === 401 ? { headers: { 'www-authenticate': 'Bearer realm="virtfleet"' } } : {}) };
    }
  }
}

export interface HttpServerOptions {
  /** host:port; port 0 takes a free one. */
  listen: string;
  routes: readonly HttpRoute[];
  /**
   * HTTPS with this certificate (renewals taken up as the gRPC server takes
   * them), asking for but not requiring a client certificate from its CA.
   * Plaintext when absent.
   */
  certificates: CertificateFiles | undefined;
  /**
   * Gets each request whose path no route has, with node's request and
   * response (a gateway that streams or matches prefixes, say); it answers
   * and resolves true, or resolves false to leave the 404 to the server. It
   * does its own authorization.
   */
  fallback?: (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;
  log: Logger;
}

export interface RunningHttpServer {
  /** The port bound (useful with port 0). */
  port: number;
  tls: boolean;
  close(): Promise<void>;
}

/** How long a client may take to send a request before it is cut off. */
const REQUEST_TIMEOUT_MS = 30_000;

const tlsOptions = (m: TlsMaterial) => ({ cert: m.cert, key: m.key, ca: m.ca, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' as const });

/** The identity of the request's client certificate: only one the server's CA verified (the handshake does not require it). */
function peerOf(req: IncomingMessage): Identity | undefined {
  const socket = req.socket as Partial<TLSSocket>;
  if (!socket.encrypted || socket.authorized !== true || !socket.getPeerCertificate) return undefined;
  return identityOfPeer(socket.getPeerCertificate());
}

/**
 * Starts node's HTTP or HTTPS server on `listen` with a route table. Refusals
 * (401, 403) are logged at warn, failures (5xx) at error.
 * @throws when the address cannot be bound (in use, not local)
 */
export async function startHttpServer(options: HttpServerOptions): Promise<RunningHttpServer> {
  const { certificates, log } = options;
  const router = new HttpRouter(options.routes);
  const respond = (req: IncomingMessage, res: ServerResponse, request: HttpRequest, response: RoutedResponse): void => {
    if (response.status === 401 || response.status === 403) log.warn({ method: request.method, path: request.path, status: response.status, remote: req.socket.remoteAddress, reason: (response.body as { error?: { message?: string } }).error?.message }, 'HTTP request refused');
    else if (response.status >= 500) log.error({ method: request.method, path: request.path, status: response.status }, 'HTTP request failed');
    const isObject = typeof response.body === 'object' && !Buffer.isBuffer(response.body);
    const body = isObject ? JSON.stringify(response.body) : (response.body as string | Buffer);
    res.writeHead(response.status, { 'content-type': response.contentType ?? (isObject ? 'application/json' : 'text/plain; charset=utf-8'), ...response.headers });
    res.end(body);
  };
  const serve = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://virtfleet');
    const request: HttpRequest = { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, headers: req.headers, peer: peerOf(req) };
    const { fallback } = options;
    const match = router.match(request.method, request.path);
    if (!fallback || !('status' in match) || match.status !== 404) {
      void router.handle(request).then((response) => respond(req, res, request, response));
      return;
    }
    fallback(req, res).then(
      (answered) => {
        if (!answered) respond(req, res, request, { status: 404, body: { error: { code: 'NOT_FOUND', message: `no route ${request.path}` } } });
      },
      (err: unknown) => {
        log.error({ method: request.method, path: request.path, err: err instanceof Error ? err.message : String(err) }, 'HTTP request failed');
        if (res.headersSent) res.destroy();
        else respond(req, res, request, { status: 500, body: { error: { code: 'INTERNAL', message: 'internal error' } } });
      },
    );
  };
  let server: Server;
  let renewed: ((update: unknown) => void) | undefined;
  if (certificates) {
    const tlsServer = createTlsServer(tlsOptions(certificates.current), serve);
    // A renewal of the files reaches new connections as it reaches the gRPC server's.
    renewed = () => tlsServer.setSecureContext(tlsOptions(certificates.current));
    certificates.addIdentityCertificateListener(renewed);
    server = tlsServer;
  } else {
    server = createPlainServer(serve);
  }
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  const at = options.listen.lastIndexOf(':');
  const host = options.listen.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const port = Number(options.listen.slice(at + 1));
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    if (renewed) certificates?.removeIdentityCertificateListener(renewed);
    throw err;
  }
  server.on('error', (err) => log.error({ err: err.message }, 'HTTP server error'));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    tls: certificates !== undefined,
    close: () =>
      new Promise<void>((resolve) => {
        if (renewed) certificates?.removeIdentityCertificateListener(renewed);
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
