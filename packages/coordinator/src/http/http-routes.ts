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

/**
 * `GET /v1/whoami`: who the caller is to this coordinator, `{kind, id, role,
 * tenant}` (tenant '' when it acts across tenants), established as every
 * call's caller is; for the dashboard to offer only what the role may do.
 */
function whoamiRoute(auth: AuthenticationOptions): HttpRoute {
  return {
    method: 'GET',
    path: '/v1/whoami',
    guard: operatorGuard('GET /v1/whoami', auth),
    handler: (request) => {
      const result = authenticate({ authorization: request.headers.authorization, certificate: request.peer }, auth);
      if ('refusal' in result) throw new UnauthenticatedError(result.refusal);
      const { kind, id, role, tenant } = result.principal;
      return { body: { kind, id, role, tenant: tenant ?? '' } };
    },
  };
}

/** The coordinator's HTTP routes: `/metrics` (viewer, cluster-wide), `/healthz` (open) and `/v1/whoami` (any caller). */
export function coordinatorHttpRoutes(registry: Registry, auth: AuthenticationOptions): HttpRoute[] {
  return [metricsRoute(registry, operatorGuard('GET /metrics', auth)), { method: 'GET', path: '/healthz', guard: openRoute, handler: () => ({ body: 'ok\n' }) }, whoamiRoute(auth)];
}
