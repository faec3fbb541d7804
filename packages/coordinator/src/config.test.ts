import { describe, expect, it } from 'vitest';
import { loadCoordinatorConfig } from './config.js';

const load = (id: string, overrides: Record<string, unknown> = {}) => loadCoordinatorConfig(undefined, { id, grpc: { insecure: true }, nats: { anonymous: true }, ...overrides });

describe('coordinator config: id', () => {
  // The id ends the fencing probe's KV key; an id NATS refuses there would keep fence-first VMs of a dead host from ever moving.
  it.each(['c1', 'coordinator-1', 'a.b', 'node_7.dc-2', 'x'.repeat(63)])('accepts %j', (id) => {
    expect(load(id).id).toBe(id);
  });
  it.each(['.', '..', 'a.', '.a', 'a..b', 'a b', 'a/b', 'a*', '', 'x'.repeat(64)])('refuses %j, naming id', (id) => {
    expect(() => load(id)).toThrow(/(^|\s)id: must be 1-63 letters, digits, "_" or "-", in parts joined by single dots/);
  });
});

describe('coordinator config: grpc.maxMessageBytes', () => {
  const withLimit = (maxMessageBytes: unknown) => load('c1', { grpc: { insecure: true, maxMessageBytes } });
  it.each([
    { name: 'absent: grpc-js’s 4 MiB', value: undefined, want: 4_194_304 },
    { name: 'the least, 2 MiB', value: 2_097_152, want: 2_097_152 },
    { name: 'the most, 64 MiB', value: 67_108_864, want: 67_108_864 },
  ])('accepts $name', ({ value, want }) => {
    expect(withLimit(value).grpc.maxMessageBytes).toBe(want);
  });
  it.each([
    { name: 'below 2 MiB (1 MiB state pieces would not fit)', value: 65_536, reason: /must be at least 2097152/ },
    { name: 'above 64 MiB', value: 67_108_865, reason: /must be at most 67108864/ },
    { name: 'a fraction', value: 4_194_304.5, reason: /whole number of bytes/ },
    { name: 'a string', value: '4MiB', reason: /expected number/ },
  ])('refuses $name, naming grpc.maxMessageBytes', ({ value, reason }) => {
    expect(() => withLimit(value)).toThrow(
      expect.objectContaining({ problems: expect.arrayContaining([expect.objectContaining({ field: 'grpc.maxMessageBytes', reason: expect.stringMatching(reason) })]) }),
    );
  });
});

describe('coordinator config: http', () => {
  it.each([
    { name: 'absent: on, 127.0.0.1:7180', http: undefined, want: { enabled: true, listen: '127.0.0.1:7180' } },
    { name: 'another address', http: { listen: '0.0.0.0:9180' }, want: { enabled: true, listen: '0.0.0.0:9180' } },
    { name: 'off', http: { enabled: false }, want: { enabled: false, listen: '127.0.0.1:7180' } },
    { name: 'plaintext by name', http: { insecure: true, listen: 'localhost:8080' }, want: { enabled: true, listen: 'localhost:8080', insecure: true } },
  ])('accepts $name', ({ http, want }) => {
    expect(load('c1', http === undefined ? {} : { http }).http).toEqual(want);
  });
  it.each([
    { name: 'no port', http: { listen: 'localhost' }, field: 'http.listen', reason: /must be host:port/ },
    { name: 'a path', http: { listen: '127.0.0.1:7180/metrics' }, field: 'http.listen', reason: /must be host:port/ },
    { name: 'insecure as a string', http: { insecure: 'true' }, field: 'http.insecure', reason: /expected boolean/ },
    { name: 'an unknown key', http: { tls: {} }, field: 'http.tls', reason: /unknown field/ },
  ])('refuses $name, naming $field', ({ http, field, reason }) => {
    expect(() => load('c1', { http })).toThrow(expect.objectContaining({ problems: expect.arrayContaining([expect.objectContaining({ field, reason: expect.stringMatching(reason) })]) }));
  });
});
