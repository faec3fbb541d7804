import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError, UnauthenticatedError, UnavailableError } from './errors.js';
import { clientCertificateGuard, httpErrorOf, HttpRouter, openRoute, startHttpServer, type HttpRequest, type HttpRoute } from './http-server.js';
import { createLogger } from './logger.js';

const log = createLogger('test', 'silent');
const request = (method: string, path: string, peer?: HttpRequest['peer']): HttpRequest => ({ method, path, query: new URLSearchParams(), headers: {}, peer });
const fail = (err: unknown) => () => {
  throw err;
};

const routes: HttpRoute[] = [
  { method: 'GET', path: '/open', guard: openRoute, handler: () => ({ body: 'hello' }) },
  { method: 'POST', path: '/open', guard: openRoute, handler: () => ({ status: 201, body: { made: true } }) },
  { method: 'GET', path: '/unauthenticated', guard: fail(new UnauthenticatedError('who are you')), handler: () => ({ body: 'secret' }) },
  { method: 'GET', path: '/forbidden', guard: fail(new PermissionDeniedError('not you')), handler: () => ({ body: 'secret' }) },
  { method: 'GET', path: '/missing', guard: openRoute, handler: fail(new NotFoundError('workload', 'w1')) },
  { method: 'GET', path: '/bug', guard: openRoute, handler: fail(new Error('a stack trace with secrets')) },
];

describe('HttpRouter', () => {
  const router = new HttpRouter(routes);
  const error = (code: string, message: string | RegExp) => ({ error: { code, message: typeof message === 'string' ? message : expect.stringMatching(message) } });
  // A refused request never reaches the handler, whose body is 'secret'.
  it.each([
    { name: 'a route', method: 'GET', path: '/open', want: { status: 200, body: 'hello' } },
    { name: 'another method on the same path, an object body', method: 'POST', path: '/open', want: { status: 201, body: { made: true } } },
    { name: 'an unknown path', method: 'GET', path: '/nowhere', want: { status: 404, body: error('NOT_FOUND', 'no route /nowhere') } },
    { name: 'a method the path does not take, saying which it takes', method: 'DELETE', path: '/open', want: { status: 405, body: error('METHOD_NOT_ALLOWED', /takes GET, POST/), headers: { allow: 'GET, POST' } } },
    { name: 'a guard that does not know the caller', method: 'GET', path: '/unauthenticated', want: { status: 401, body: error('UNAUTHENTICATED', 'who are you'), headers: { 'www-authenticate': 'Bearer realm="virtfleet"' } } },
    { name: 'a guard that knows and refuses the caller', method: 'GET', path: '/forbidden', want: { status: 403, body: error('PERMISSION_DENIED', 'not you') } },
    { name: 'a handler’s typed error', method: 'GET', path: '/missing', want: { status: 404, body: error('NOT_FOUND', /w1/) } },
    { name: 'a handler’s bug, without its message', method: 'GET', path: '/bug', want: { status: 500, body: error('INTERNAL', 'internal error') } },
  ])('answers $name', async ({ method, path, want }) => {
    expect(await router.handle(request(method, path))).toEqual(want);
  });

  it('refuses two routes for one method and path', () => {
    expect(() => new HttpRouter([routes[0]!, routes[0]!])).toThrow(/two routes for GET \/open/);
  });
});

describe('httpErrorOf', () => {
  it.each([
    { err: new InvalidArgumentError('spec.name', 'required'), status: 400, code: 'INVALID_ARGUMENT' },
    { err: new FailedPreconditionError('stopped'), status: 400, code: 'FAILED_PRECONDITION' },
    { err: new UnauthenticatedError('no token'), status: 401, code: 'UNAUTHENTICATED' },
    { err: new PermissionDeniedError('viewer'), status: 403, code: 'PERMISSION_DENIED' },
    { err: new NotFoundError('host', 'h1'), status: 404, code: 'NOT_FOUND' },
    { err: new UnavailableError('no leader'), status: 503, code: 'UNAVAILABLE' },
    { err: 'a string', status: 500, code: 'INTERNAL' },
  ])('maps $code to $status', ({ err, status, code }) => {
    expect(httpErrorOf(err)).toMatchObject({ status, body: { error: { code } } });
  });
});

describe('clientCertificateGuard', () => {
  it.each([
    { name: 'plaintext: anyone', tls: false, peer: undefined, refused: false },
    { name: 'TLS without a certificate from the CA', tls: true, peer: undefined, refused: true },
    { name: 'TLS with an operator certificate', tls: true, peer: { role: 'operator' as const, name: 'prometheus' }, refused: false },
    { name: 'TLS with a coordinator certificate (any role)', tls: true, peer: { role: 'coordinator' as const, name: 'c1' }, refused: false },
  ])('$name', async ({ tls, peer, refused }) => {
    let thrown: unknown;
    try {
      await clientCertificateGuard(tls)(request('GET', '/metrics', peer));
    } catch (err) {
      thrown = err;
    }
    expect(thrown instanceof UnauthenticatedError).toBe(refused);
  });
});

describe('startHttpServer (plaintext)', () => {
  it('serves its routes on a free port and closes', async () => {
    const server = await startHttpServer({ listen: '127.0.0.1:0', routes, certificates: undefined, log });
    try {
      expect(server.tls).toBe(false);
      const ok = await fetch(`http://127.0.0.1:${server.port}/open?x=1`);
      expect([ok.status, ok.headers.get('content-type'), await ok.text()]).toEqual([200, 'text/plain; charset=utf-8', 'hello']);
      const made = await fetch(`http://127.0.0.1:${server.port}/open`, { method: 'POST' });
      expect([made.status, made.headers.get('content-type'), await made.json()]).toEqual([201, 'application/json', { made: true }]);
      const refused = await fetch(`http://127.0.0.1:${server.port}/unauthenticated`);
      expect([refused.status, refused.headers.get('www-authenticate')]).toEqual([401, 'Bearer realm="virtfleet"']);
    } finally {
      await server.close();
    }
  });

  it('hands a path no route has to the fallback, which may leave it to a 404', async () => {
    const fallback = async (req: { url?: string }, res: { end(body: string): void }) => {
      if (!req.url?.startsWith('/v1/')) return false;
      res.end('gateway');
      return true;
    };
    const server = await startHttpServer({ listen: '127.0.0.1:0', routes, certificates: undefined, log, fallback: fallback as never });
    try {
      const answers = await Promise.all(['/v1/ListHosts', '/elsewhere', '/open'].map(async (path) => {
        const r = await fetch(`http://127.0.0.1:${server.port}${path}`);
        return [r.status, await r.text()];
      }));
      expect(answers).toEqual([[200, 'gateway'], [404, '{"error":{"code":"NOT_FOUND","message":"no route /elsewhere"}}'], [200, 'hello']]);
    } finally {
      await server.close();
    }
  });

  it('fails to start on an address in use', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as { port: number }).port;
    try {
      await expect(startHttpServer({ listen: `127.0.0.1:${port}`, routes, certificates: undefined, log })).rejects.toThrow(/EADDRINUSE/);
    } finally {
      holder.close();
    }
  });
});
