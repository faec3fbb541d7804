import { describe, expect, it } from 'vitest';
import { agentConfigSchema } from '../config.js';
import { simulatedHostConfigs } from './fleet.js';

const config = (input: Record<string, unknown>) => agentConfigSchema.parse({ hostId: 'box', stateDir: '/var/lib/sim', ...input, grpc: { insecure: true, ...(input.grpc as object | undefined) }, nats: { anonymous: true } });

describe('simulatedHostConfigs', () => {
  const cases = [
    {
      name: 'ids from hostId, padded to the count, consecutive ports',
      input: { simulate: { hosts: 12 }, grpc: { listen: '127.0.0.1:7200' } },
      want: { count: 12, first: { hostId: 'box-01', listen: '127.0.0.1:7200', stateDir: '/var/lib/sim/box-01' }, last: { hostId: 'box-12', listen: '127.0.0.1:7211', stateDir: '/var/lib/sim/box-12' } },
    },
    {
      name: 'a prefix, and port 0 for a free port each',
      input: { simulate: { hosts: 1000, idPrefix: 'load' }, grpc: { listen: '0.0.0.0:0' } },
      want: { count: 1000, first: { hostId: 'load-0001', listen: '0.0.0.0:0', stateDir: '/var/lib/sim/load-0001' }, last: { hostId: 'load-1000', listen: '0.0.0.0:0', stateDir: '/var/lib/sim/load-1000' } },
    },
    {
      name: 'an IPv6 listen address',
      input: { simulate: { hosts: 2 }, grpc: { listen: '[::1]:9000' } },
      want: { count: 2, first: { hostId: 'box-1', listen: '[::1]:9000', stateDir: '/var/lib/sim/box-1' }, last: { hostId: 'box-2', listen: '[::1]:9001', stateDir: '/var/lib/sim/box-2' } },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const hosts = simulatedHostConfigs(config(c.input));
      const view = (h: (typeof hosts)[number] | undefined) => ({ hostId: h?.hostId, listen: h?.grpc.listen, stateDir: h?.stateDir });
      expect(hosts).toHaveLength(c.want.count);
      expect(view(hosts[0])).toEqual(c.want.first);
      expect(view(hosts.at(-1))).toEqual(c.want.last);
      expect(new Set(hosts.map((h) => h.hostId)).size, 'host ids are unique').toBe(c.want.count);
    });
  }

  it('gives each host the fake driver only, with the fleet’s fake section, and no simulate of its own', () => {
    const hosts = simulatedHostConfigs(config({ simulate: { hosts: 3 }, drivers: { fake: { vcpus: 8, memoryMiB: 16_384 }, docker: { enabled: false } } }));
    for (const h of hosts) {
      expect(Object.keys(h.drivers)).toEqual(['fake']);
      expect(h.drivers.fake).toMatchObject({ enabled: true, vcpus: 8, memoryMiB: 16_384 });
      expect(h.simulate).toBeUndefined();
      expect(() => agentConfigSchema.parse(h), `${h.hostId}'s config is valid on its own`).not.toThrow();
    }
  });

  it('gives each host its own certificate: {host} in the paths becomes its id', () => {
    const hosts = simulatedHostConfigs(config({ simulate: { hosts: 2 }, grpc: { insecure: undefined, tls: { cert: '/pki/agent-{host}.crt', key: '/pki/agent-{host}.key', ca: '/pki/ca.crt' } } }));
    expect(hosts.map((h) => h.grpc.tls)).toEqual([
      { cert: '/pki/agent-box-1.crt', key: '/pki/agent-box-1.key', ca: '/pki/ca.crt' },
      { cert: '/pki/agent-box-2.crt', key: '/pki/agent-box-2.key', ca: '/pki/ca.crt' },
    ]);
  });

  it('defaults the fake driver when the config has none', () => {
    const [h] = simulatedHostConfigs(config({ simulate: { hosts: 1 } }));
    expect(h?.drivers.fake).toMatchObject({ enabled: true, vcpus: 64, memoryMiB: 262_144 });
  });
});
