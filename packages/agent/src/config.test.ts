import { describe, expect, it } from 'vitest';
import { InvalidFieldsError, parseOrThrow } from '@virtfleet/shared';
import { agentConfigSchema } from './config.js';

/** Plaintext unless a case says otherwise: these cases are about other keys. */
const parse = (input: Record<string, unknown>) => parseOrThrow(agentConfigSchema, { hostId: 'sim', ...input, grpc: { insecure: true, ...(input.grpc as object | undefined) }, nats: { anonymous: true, ...(input.nats as object | undefined) } }, 'agent.yaml:');
const TLS_PER_HOST = { cert: '/pki/agent-{host}.crt', key: '/pki/agent-{host}.key', ca: '/pki/ca.crt' };

describe('agent config: simulate', () => {
  const accepted = [
    { name: 'absent: one real host', input: {}, want: undefined },
    { name: 'hosts only; the prefix defaults to hostId', input: { simulate: { hosts: 1000 } }, want: { hosts: 1000 } },
    { name: 'with a prefix', input: { simulate: { hosts: 5000, idPrefix: 'load' }, drivers: { fake: { vcpus: 8 } } }, want: { hosts: 5000, idPrefix: 'load' } },
    { name: 'docker present but disabled', input: { simulate: { hosts: 2 }, drivers: { docker: { enabled: false } } }, want: { hosts: 2 } },
    { name: 'the last port fits', input: { simulate: { hosts: 36 }, grpc: { listen: '127.0.0.1:65500' } }, want: { hosts: 36 } },
  ];
  for (const c of accepted) {
    it(`accepts ${c.name}`, () => {
      expect(parse(c.input).simulate).toEqual(c.want);
    });
  }

  const rejected = [
    { name: 'zero hosts', input: { simulate: { hosts: 0 } }, field: 'simulate.hosts', reason: />=1/ },
    { name: 'a fraction of a host', input: { simulate: { hosts: 2.5 } }, field: 'simulate.hosts', reason: /expected int/ },
    { name: 'more than 10,000 hosts', input: { simulate: { hosts: 10_001 } }, field: 'simulate.hosts', reason: /<=10000/ },
    { name: 'no host count', input: { simulate: {} }, field: 'simulate.hosts', reason: /required/ },
    { name: 'an unknown key', input: { simulate: { hosts: 1, vcpus: 4 } }, field: 'simulate.vcpus', reason: /unknown field/ },
    { name: 'a prefix with a dot', input: { simulate: { hosts: 1, idPrefix: 'a.b' } }, field: 'simulate.idPrefix', reason: /letters, digits/ },
    { name: 'a prefix too long for the ids', input: { simulate: { hosts: 1000, idPrefix: 'p'.repeat(60) } }, field: 'simulate.idPrefix', reason: /at most 63 characters/ },
    { name: 'the fencer process', input: { simulate: { hosts: 1 }, fencing: { fencer: { enabled: true } } }, field: 'fencing.fencer.enabled', reason: /not supported with simulate/ },
    { name: 'one advertised address', input: { simulate: { hosts: 1 }, grpc: { advertise: 'h:7101' } }, field: 'grpc.advertise', reason: /own port/ },
    { name: 'docker enabled', input: { simulate: { hosts: 1 }, drivers: { docker: { enabled: true } } }, field: 'drivers.docker.enabled', reason: /only the fake driver/ },
    { name: 'libvirt enabled', input: { simulate: { hosts: 1 }, drivers: { libvirt: {} } }, field: 'drivers.libvirt.enabled', reason: /only the fake driver/ },
    { name: 'the fake driver disabled', input: { simulate: { hosts: 1 }, drivers: { fake: { enabled: false } } }, field: 'drivers.fake.enabled', reason: /cannot be disabled/ },
    { name: 'ports past 65535', input: { simulate: { hosts: 37 }, grpc: { listen: '127.0.0.1:65500' } }, field: 'grpc.listen', reason: /65500-65536, past 65535/ },
    { name: 'one certificate for every simulated host', input: { simulate: { hosts: 2 }, grpc: { insecure: undefined, tls: { cert: '/pki/a.crt', key: '/pki/a.key', ca: '/pki/ca.crt' } } }, field: 'grpc.tls', reason: /its own certificate: put \{host\}/ },
    { name: 'neither tls nor insecure', input: { grpc: { insecure: undefined } }, field: 'grpc.tls', reason: /required: gRPC links use mutual TLS/ },
    { name: 'both tls and insecure', input: { grpc: { tls: TLS_PER_HOST } }, field: 'grpc.insecure', reason: /either tls or insecure/ },
    { name: 'tls without its CA', input: { grpc: { insecure: undefined, tls: { cert: '/a', key: '/b' } } }, field: 'grpc.tls.ca', reason: /is required/ },
  ];
  for (const c of rejected) {
    it(`rejects ${c.name}, naming ${c.field}`, () => {
      let error: unknown;
      try {
        parse(c.input);
      } catch (err) {
        error = err;
      }
      expect(error, 'the config was accepted').toBeInstanceOf(InvalidFieldsError);
      const problems = (error as InvalidFieldsError).problems;
      expect(problems.map((p) => p.field)).toContain(c.field);
      expect(problems.find((p) => p.field === c.field)?.reason).toMatch(c.reason);
      expect((error as Error).message).toContain('agent.yaml');
    });
  }
});

describe('agent config: grpc.maxMessageBytes', () => {
  it.each([
    { name: 'absent: grpc-js’s 4 MiB', grpc: {}, want: 4_194_304 },
    { name: 'the least, 2 MiB', grpc: { maxMessageBytes: 2_097_152 }, want: 2_097_152 },
    { name: 'the most, 64 MiB', grpc: { maxMessageBytes: 67_108_864 }, want: 67_108_864 },
  ])('accepts $name', ({ grpc, want }) => {
    expect(parse({ grpc }).grpc.maxMessageBytes).toBe(want);
  });
  it.each([
    { name: 'below 2 MiB (1 MiB state pieces would not fit)', value: 65_536, reason: /must be at least 2097152/ },
    { name: 'above 64 MiB', value: 67_108_865, reason: /must be at most 67108864/ },
    { name: 'a fraction', value: 4_194_304.5, reason: /whole number of bytes/ },
    { name: 'a string', value: '4MiB', reason: /expected number/ },
  ])('refuses $name, naming grpc.maxMessageBytes', ({ value, reason }) => {
    expect(() => parse({ grpc: { maxMessageBytes: value } })).toThrow(
      expect.objectContaining({ problems: expect.arrayContaining([expect.objectContaining({ field: 'grpc.maxMessageBytes', reason: expect.stringMatching(reason) })]) }),
    );
  });
});

describe('agent config: http', () => {
  it.each([
    { name: 'absent: on, 127.0.0.1:7181', http: undefined, want: { enabled: true, listen: '127.0.0.1:7181' } },
    { name: 'another address', http: { listen: '0.0.0.0:9181' }, want: { enabled: true, listen: '0.0.0.0:9181' } },
    { name: 'a free port', http: { listen: '127.0.0.1:0' }, want: { enabled: true, listen: '127.0.0.1:0' } },
    { name: 'an IPv6 address', http: { listen: '[::1]:7181' }, want: { enabled: true, listen: '[::1]:7181' } },
    { name: 'off', http: { enabled: false }, want: { enabled: false, listen: '127.0.0.1:7181' } },
    { name: 'plaintext by name', http: { insecure: true }, want: { enabled: true, listen: '127.0.0.1:7181', insecure: true } },
  ])('accepts $name', ({ http, want }) => {
    expect(parse(http === undefined ? {} : { http }).http).toEqual(want);
  });
  it.each([
    { name: 'no port', http: { listen: '127.0.0.1' }, field: 'http.listen', reason: /must be host:port/ },
    { name: 'a URL', http: { listen: 'http://127.0.0.1:7181' }, field: 'http.listen', reason: /must be host:port/ },
    { name: 'enabled as a string', http: { enabled: 'yes' }, field: 'http.enabled', reason: /expected boolean/ },
    { name: 'an unknown key', http: { port: 7181 }, field: 'http.port', reason: /unknown field/ },
  ])('refuses $name, naming $field', ({ http, field, reason }) => {
    expect(() => parse({ http })).toThrow(expect.objectContaining({ problems: expect.arrayContaining([expect.objectContaining({ field, reason: expect.stringMatching(reason) })]) }));
  });
});
