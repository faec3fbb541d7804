import { HttpRouter, type HttpRequest, type Identity } from '@virtfleet/shared';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { AccessRole } from '../auth/access.js';
import { authorize, type AuthenticationOptions } from '../auth/authorization.js';
import type { Principal } from '../auth/principal.js';
import { coordinatorHttpRoutes } from './http-routes.js';

/** Tokens as the registry answers them: `vft_<role>[_<tenant>]` is known, anything else is not. */
const tokens: AuthenticationOptions['tokens'] = {
  authenticate: (bearer) => {
    const m = /^vft_(viewer|operator|admin)(?:_([a-z]+))?$/.exec(bearer);
    if (!m) return { refusal: 'the bearer token is not one this cluster issued' };
    return { principal: { kind: 'token', id: `t-${m[1]}`, role: m[1] as AccessRole, ...(m[2] ? { tenant: m[2] } : {}) } };
  },
};

const operator = (name: string): Identity => ({ role: 'operator', name });

describe('the coordinator’s HTTP routes', () => {
  const registry = new Registry();
  const cases: { name: string; path?: string; authorization?: string; peer?: Identity; anonymousRole?: AccessRole; status: number; reason?: RegExp }[] = [
    { name: 'nothing presented', status: 401, reason: /a bearer token is required/ },
    { name: 'a header that is not a bearer token', authorization: 'Basic dXNlcjpwYXNz', status: 401, reason: /must be "Bearer <token>"/ },
    { name: 'a token the cluster did not issue', authorization: 'Bearer vft_nobody', status: 401, reason: /not one this cluster issued/ },
    { name: 'a viewer token', authorization: 'Bearer vft_viewer', status: 200 },
    { name: 'an admin token', authorization: 'bearer vft_admin', status: 200 },
    { name: 'a tenant’s token: metrics are cluster-wide', authorization: 'Bearer vft_viewer_blue', status: 403, reason: /token t-viewer \(viewer of tenant blue\) may not call GET \/metrics: it acts across tenants/ },
    { name: 'an operator certificate listed in certificateRoles', peer: operator('prometheus'), status: 200 },
    { name: 'an operator certificate not listed', peer: operator('mallory'), status: 401, reason: /a bearer token is required/ },
    { name: 'an agent certificate with a listed name: only operators map', peer: { role: 'agent', name: 'prometheus' }, status: 401, reason: /a bearer token is required/ },
    { name: 'a bad token beside a listed certificate: the token decides', authorization: 'Bearer vft_nobody', peer: operator('prometheus'), status: 401, reason: /not one this cluster issued/ },
    { name: 'nothing, with auth.anonymousRole viewer', anonymousRole: 'viewer', status: 200 },
    { name: 'the health check, open', path: '/healthz', status: 200 },
  ];
  it.each(cases)('GET /metrics: $name → $status', async ({ path, authorization, peer, anonymousRole, status, reason }) => {
    const router = new HttpRouter(coordinatorHttpRoutes(registry, { tokens, certificateRoles: { prometheus: { role: 'viewer' } }, ...(anonymousRole ? { anonymousRole } : {}) }));
    const request: HttpRequest = { method: 'GET', path: path ?? '/metrics', query: new URLSearchParams(), headers: authorization ? { authorization } : {}, peer };
    const response = await router.handle(request);
    expect(response.status, JSON.stringify(response.body)).toBe(status);
    expect((response.body as { error?: { message: string } }).error?.message ?? '').toMatch(reason ?? /^$/);
  });
});

describe('GET /v1/whoami', () => {
  const registry = new Registry();
  it.each([
    { name: 'a viewer token', authorization: 'Bearer vft_viewer', status: 200, body: { kind: 'token', id: 't-viewer', role: 'viewer', tenant: '' } },
    { name: 'an admin token', authorization: 'Bearer vft_admin', status: 200, body: { kind: 'token', id: 't-admin', role: 'admin', tenant: '' } },
    { name: 'a tenant’s operator token', authorization: 'Bearer vft_operator_blue', status: 200, body: { kind: 'token', id: 't-operator', role: 'operator', tenant: 'blue' } },
    { name: 'an operator certificate listed in certificateRoles', peer: operator('prometheus'), status: 200, body: { kind: 'certificate', id: 'prometheus', role: 'viewer', tenant: '' } },
    { name: 'nothing, with auth.anonymousRole viewer', anonymousRole: 'viewer' as const, status: 200, body: { kind: 'anonymous', id: '', role: 'viewer', tenant: '' } },
    { name: 'nothing presented', status: 401, body: { error: { code: 'UNAUTHENTICATED', message: expect.stringMatching(/a bearer token is required/) as unknown } } },
    { name: 'a token the cluster did not issue', authorization: 'Bearer vft_nobody', status: 401, body: { error: { code: 'UNAUTHENTICATED', message: expect.stringMatching(/not one this cluster issued/) as unknown } } },
  ])('$name → $status', async ({ authorization, peer, anonymousRole, status, body }) => {
    const router = new HttpRouter(coordinatorHttpRoutes(registry, { tokens, certificateRoles: { prometheus: { role: 'viewer' } }, ...(anonymousRole ? { anonymousRole } : {}) }));
    const response = await router.handle({ method: 'GET', path: '/v1/whoami', query: new URLSearchParams(), headers: authorization ? { authorization } : {}, peer });
    expect([response.status, response.body]).toEqual([status, body]);
  });
});

describe('authorize', () => {
  const viewer: Principal = { kind: 'token', id: 't1', role: 'viewer' };
  it.each([
    { name: 'a role high enough', principal: viewer, access: { role: 'viewer', mutating: false, tenantScoped: false } as const, want: undefined },
    { name: 'a role too low', principal: viewer, access: { role: 'operator', mutating: true, tenantScoped: true } as const, want: /token t1 \(viewer\) may not call X: it takes the operator role/ },
    { name: 'nothing listed for it', principal: viewer, access: undefined, want: /X is not open to any caller/ },
  ])('$name', ({ principal, access, want }) => {
    expect(authorize(principal, access, 'X') ?? '').toMatch(want ?? /^$/);
  });
});
