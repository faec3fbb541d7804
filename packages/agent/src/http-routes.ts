import { clientCertificateGuard, metricsRoute, openRoute, type HttpRoute } from '@virtfleet/shared';
import type { Registry } from 'prom-client';

/**
 * The agent's HTTP routes: `/metrics` for any client certificate from the
 * cluster CA (an operator certificate for Prometheus, say; anyone over
 * plaintext), `/healthz` open.
 */
export function agentHttpRoutes(registry: Registry, tls: boolean): HttpRoute[] {
  return [metricsRoute(registry, clientCertificateGuard(tls)), { method: 'GET', path: '/healthz', guard: openRoute, handler: () => ({ body: 'ok\n' }) }];
}
