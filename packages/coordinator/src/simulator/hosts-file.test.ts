import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, parseDocument } from '@virtfleet/shared';
import { parseHosts, simSnapshot } from './hosts-file.js';

const parse = (yaml: string) => parseHosts(parseDocument(yaml, 'hosts.yaml'), 'hosts.yaml');

describe('parseHosts: errors name the file, the entry and the field', () => {
  const cases: { name: string; yaml: string; message: string }[] = [
    { name: 'not a list', yaml: 'hosts: []', message: 'hosts.yaml: must be a list of hosts' },
    { name: 'an empty list', yaml: '[]', message: 'hosts.yaml: must list at least one host' },
    { name: 'missing vcpus', yaml: '- { id: a, vcpus: 1, memory_mib: 1024 }\n- { id: b, memory_mib: 1024 }', message: 'hosts.yaml: [1].vcpus: is required' },
    { name: 'vcpus as a string', yaml: '- { id: a, vcpus: four, memory_mib: 1024 }', message: 'hosts.yaml: [0].vcpus: must be a number' },
    { name: 'zero memory', yaml: '- { id: a, vcpus: 1, memory_mib: 0 }', message: 'hosts.yaml: [0].memory_mib: must be greater than 0' },
    { name: 'overcommit out of range', yaml: '- { id: a, vcpus: 1, memory_mib: 64, overcommit: { cpu: 100 } }', message: 'hosts.yaml: [0].overcommit.cpu: must be at most 64' },
    { name: 'negative reservation', yaml: '- { id: a, vcpus: 1, memory_mib: 64, reserved: { memory_mib: -1 } }', message: 'hosts.yaml: [0].reserved.memory_mib: must not be negative' },
    { name: 'an unknown kind', yaml: '- { id: a, vcpus: 1, memory_mib: 64, kinds: [container, unikernel] }', message: 'hosts.yaml: [0].kinds[1]: must be one of vm, container' },
    { name: 'a numeric label value', yaml: '- { id: a, vcpus: 1, memory_mib: 64, labels: { rack: 7 } }', message: 'hosts.yaml: [0].labels.rack: label values must be strings' },
    { name: 'an unknown field', yaml: '- { id: a, vcpus: 1, memory_mib: 64, gpus: 2 }', message: 'hosts.yaml: ' },
    { name: 'a missing id', yaml: '- { vcpus: 1, memory_mib: 64 }', message: 'hosts.yaml: [0].id: is required' },
    { name: 'a bad id', yaml: '- { id: "a.b", vcpus: 1, memory_mib: 64 }', message: 'hosts.yaml: [0].id: must be 1-63 letters' },
    { name: 'a duplicate id after expansion', yaml: '- { id: a-2, vcpus: 1, memory_mib: 64 }\n- { id: a, count: 3, vcpus: 1, memory_mib: 64 }', message: 'hosts.yaml: [1].id: duplicate host id a-2' },
    { name: 'a fractional count', yaml: '- { id: a, count: 1.5, vcpus: 1, memory_mib: 64 }', message: 'hosts.yaml: [0].count: must be a whole number' },
  ];
  it.each(cases)('$name', ({ yaml, message }) => {
    let err: unknown;
    try {
      parse(yaml);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    const { message: got } = err as InvalidArgumentError;
    expect(got.startsWith(message), `${got} should start with ${message}`).toBe(true);
  });

  it('names an unknown field', () => {
    expect(() => parse('- { id: a, vcpus: 1, memory_mib: 64, gpus: 2 }')).toThrow(/gpus/);
  });
});

describe('parseHosts and simSnapshot', () => {
  it('applies the defaults: 1000 GiB disk, no overcommit, nothing reserved, both kinds', () => {
    expect(parse('- { id: a, vcpus: 8, memory_mib: 16384 }')).toEqual([
      {
        id: 'a',
        capacity: { vcpus: 8, memoryMiB: 16384, diskGiB: 1000 },
        reserved: { vcpus: 0, memoryMiB: 0, diskGiB: 0 },
        overcommit: { cpu: 1, memory: 1 },
        labels: {},
        trustLevel: 0,
        features: [],
        kinds: ['vm', 'container'],
      },
    ]);
  });

  it('expands count to <id>-1 .. <id>-N', () => {
    expect(parse('- { id: edge, count: 3, vcpus: 4, memory_mib: 8192 }\n- { id: core, vcpus: 16, memory_mib: 65536 }').map((h) => h.id)).toEqual(['edge-1', 'edge-2', 'edge-3', 'core']);
  });

  it('builds an empty, schedulable snapshot: allocatable is (capacity - reserved) * overcommit, disk never overcommitted', () => {
    const [h] = parse(
      ['- id: a', '  vcpus: 10', '  memory_mib: 8192', '  disk_gib: 100', '  labels: { zone: a }', '  trust_level: 2', '  features: [tpm]', '  kinds: [container]', '  overcommit: { cpu: 2, memory: 1.5 }', '  reserved: { vcpus: 2, memory_mib: 2048, disk_gib: 10 }'].join('\n'),
    );
    const s = simSnapshot(h!);
    expect(s).toMatchObject({
      id: 'a',
      schedulable: true,
      capacity: { vcpus: 10, memoryMiB: 8192, diskGiB: 100 },
      allocatable: { vcpus: 16, memoryMiB: 9216, diskGiB: 90 },
      allocated: { vcpus: 0, memoryMiB: 0, diskGiB: 0 },
      labels: { zone: 'a' },
      trustLevel: 2,
      cpuUtilisation: 0,
      memoryAvailableMiB: 8192,
      workloadCount: 0,
    });
    expect([...s.kinds]).toEqual(['container']);
    expect([...s.features]).toEqual(['tpm']);
    expect(s.drivers.map((d) => [d.name, d.kinds, d.healthy])).toEqual([['docker', ['container'], true]]);
  });

  it('builds a fresh snapshot each time, so runs do not share bookings', () => {
    const [h] = parse('- { id: a, vcpus: 1, memory_mib: 64 }');
    const first = simSnapshot(h!);
    first.allocated.vcpus = 1;
    first.tenants.set('x', 1);
    expect(simSnapshot(h!)).toMatchObject({ allocated: { vcpus: 0 }, tenants: new Map() });
  });
});
