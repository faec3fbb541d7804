import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { checkMessage, coordinatorProtoRoot, HttpError, openApiDocument, queryMessage, restRoutes } from './rest-gateway.js';

const type = (name: string) => coordinatorProtoRoot().lookupType(`virtfleet.v1.${name}`);
const refusal = (f: () => unknown) => {
  try {
    f();
  } catch (err) {
    if (err instanceof HttpError) return { http: err.httpStatus, code: err.grpcCode, field: err.field, message: err.message };
    throw err;
  }
  throw new Error('not refused');
};

describe('REST gateway: request bodies', () => {
  it.each([
    { name: 'a submit', msg: 'SubmitWorkloadRequest', body: { request_id: 'r1', spec: { name: 'web', kind: 'container', vcpus: 0.5, memory_mib: 64, labels: { app: 'web' } } } },
    { name: 'an empty list request', msg: 'ListWorkloadsRequest', body: {} },
    { name: 'a 64-bit field as a decimal string', msg: 'WatchEventsRequest', body: { since_seq: '18446744073709551615' } },
    { name: 'a null field (left at its default)', msg: 'ListWorkloadsRequest', body: { page_token: null } },
  ])('takes $name', ({ msg, body }) => {
    expect(() => checkMessage(type(msg), body)).not.toThrow();
  });

  it.each([
    { name: 'an array body', msg: 'SubmitWorkloadRequest', body: [], field: 'body', reason: /JSON object/ },
    { name: 'an unknown field', msg: 'SubmitWorkloadRequest', body: { requestid: 'x' }, field: 'requestid', reason: /unknown field/ },
    { name: 'an unknown nested field', msg: 'SubmitWorkloadRequest', body: { spec: { name: 'x', memroy: 1 } }, field: 'spec.memroy', reason: /unknown field/ },
    { name: 'a string where a number goes', msg: 'SubmitWorkloadRequest', body: { spec: { vcpus: '2' } }, field: 'spec.vcpus', reason: /number/ },
    { name: 'a number where a string goes', msg: 'GetWorkloadRequest', body: { id: 7 }, field: 'id', reason: /string/ },
    { name: 'a uint64 past its range', msg: 'WatchEventsRequest', body: { since_seq: '18446744073709551616' }, field: 'since_seq', reason: /between/ },
    { name: 'a negative uint64', msg: 'WatchEventsRequest', body: { since_seq: '-1' }, field: 'since_seq', reason: /between/ },
    { name: 'an integer in exponent form', msg: 'WatchEventsRequest', body: { since_seq: '1e3' }, field: 'since_seq', reason: /integer/ },
    { name: 'a map that is a list', msg: 'SubmitWorkloadRequest', body: { spec: { labels: ['a'] } }, field: 'spec.labels', reason: /object/ },
    { name: 'a map value of the wrong type', msg: 'SubmitWorkloadRequest', body: { spec: { labels: { a: 1 } } }, field: 'spec.labels.a', reason: /string/ },
    { name: 'a prototype key', msg: 'ListWorkloadsRequest', body: JSON.parse('{"__proto__": {"x": 1}}') as unknown, field: '__proto__', reason: /unknown field/ },
    { name: 'an inherited key', msg: 'ListWorkloadsRequest', body: { toString: 'x' }, field: 'toString', reason: /unknown field/ },
  ])('refuses $name with 400 naming $field', ({ msg, body, field, reason }) => {
    const r = refusal(() => checkMessage(type(msg), body));
    expect([r.http, r.code, r.field]).toEqual([400, status.INVALID_ARGUMENT, field]);
    expect(r.message).toMatch(reason);
  });

  it('reads a stream request from query parameters, typed as its fields', () => {
    expect(queryMessage(type('WatchEventsRequest'), new URLSearchParams('follow=true&since_seq=5&type_prefix=io.virtfleet.host'))).toEqual({ follow: true, since_seq: '5', type_prefix: 'io.virtfleet.host' });
    expect(refusal(() => queryMessage(type('WatchEventsRequest'), new URLSearchParams('follow=yes'))).field).toBe('follow');
    expect(refusal(() => queryMessage(type('WatchEventsRequest'), new URLSearchParams('from=0'))).field).toBe('from');
  });
});

describe('REST gateway: routes and OpenAPI', () => {
  const routes = restRoutes();
  it('maps every unary method to POST and every server stream to GET; client streams stay gRPC only', () => {
    const service = coordinatorProtoRoot().lookupService('virtfleet.v1.Coordinator');
    const expected = service.methodsArray.map((m) => [m.name, m.requestStream ? undefined : m.responseStream ? 'stream' : 'unary']);
    expect(service.methodsArray.map((m) => [m.name, routes.get(m.name)?.kind])).toEqual(expected);
    expect(routes.get('WatchEvents')?.kind).toBe('stream');
  });

  it('describes each route, with a schema for every message it names', () => {
    const doc = openApiDocument(routes) as { paths: Record<string, Record<string, unknown>>; components: { schemas: Record<string, unknown> } };
    expect(Object.keys(doc.paths)).toHaveLength(routes.size);
    expect(Object.keys(doc.paths['/v1/SubmitWorkload']!)).toEqual(['post']);
    expect(Object.keys(doc.paths['/v1/WatchEvents']!)).toEqual(['get']);
    const refs = JSON.stringify(doc).match(/#\/components\/schemas\/[\w.]+/g) ?? [];
    for (const r of new Set(refs)) expect(doc.components.schemas[r.slice('#/components/schemas/'.length)], r).toBeDefined();
    expect(doc.components.schemas['virtfleet.v1.WorkloadSpec']).toMatchObject({ type: 'object', additionalProperties: false });
  });
});
