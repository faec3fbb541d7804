import { metricsRoute, openRoute, PermissionDeniedError, UnauthenticatedError, type HttpGuard, type HttpRoute } from '@virtfleet/shared';
import type { Registry } from 'prom-client';
import { HTTP_ROUTE_ACCESS } from '../auth/access.js';
import { authenticate, authorize, type AuthenticationOptions } from '../auth/authorization.js';

/**
 * The guard of a coordinator route (`METHOD /path` in HTTP_ROUTE_ACCESS):
 * the caller is established and checked exactly as on the gRPC API, from
 * its `authorization: Bearer` header or its operator client certificate.
 * 401 when it cannot be, 403 when its role or tenant does not allow the route.
 */
export function operatorGuard(route: string, auth: AuthenticationOptions): HttpGuard {
  const access = HTTP_ROUTE_ACCESS[route];
  return (request) => {
    const result = authenticate({ authorization: request.headers.authorization, certificate: request.peer }, auth);
    if ('refusal' in result) throw new UnauthenticatedError(result.refusal);
    const denied = authorize(result.principal, access, route);
    if (denied) throw new PermissionDeniedError(denied);
  };
}

/** The coordinator's HTTP routes: `/metrics` (viewer, cluster-wide) and `/healthz` (open). */
export function coordinatorHttpRoutes(registry: Registry, auth: AuthenticationOptions): HttpRoute[] {
  return [metricsRoute(registry, operatorGuard('GET /metrics', auth)), { method: 'GET', path: '/healthz', guard: openRoute, handler: () => ({ body: 'ok\n' }) }];
}
