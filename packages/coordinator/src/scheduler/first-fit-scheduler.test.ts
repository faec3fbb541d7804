import { describe, expect, it } from 'vitest';
import { parseWorkloadSpec } from '@virtfleet/shared';
import { FirstFitScheduler } from './first-fit-scheduler.js';
import { summariseRejections, type HostSnapshot } from './scheduler.js';

const docker = { name: 'docker', version: '1', kinds: ['container' as const], domain_types: [], healthy: true, detail: '' };
const libvirt = { name: 'libvirt', version: '9', kinds: ['vm' as const], domain_types: ['kvm'], healthy: true, detail: '' };

function host(id: string, overrides: Partial<HostSnapshot> = {}): HostSnapshot {
  return {
    id,
    up: true,
    capacity: { vcpus: 4, memoryMiB: 4096, diskGiB: 100 },
    allocated: { vcpus: 0, memoryMiB: 0, diskGiB: 0 },
    drivers: [docker, libvirt],
    labels: {},
    ...overrides,
  };
}

const container = (memory_mib: number, vcpus = 1, disk_gib = 0) =>
  parseWorkloadSpec({ name: 'w', kind: 'container', image: 'busybox', vcpus, memory_mib, disk_gib });

describe('FirstFitScheduler', () => {
  const scheduler = new FirstFitScheduler();
  const cases: { name: string; hosts: HostSnapshot[]; spec: ReturnType<typeof container>; want?: string; summary: string }[] = [
    { name: 'the first host in id order that fits', hosts: [host('b'), host('a')], spec: container(64), want: 'a', summary: 'placed on a (first fit)' },
    { name: 'skipping a down host', hosts: [host('a', { up: false }), host('b')], spec: container(64), want: 'b', summary: 'placed on b (first fit)' },
    {
      name: 'skipping a host without a healthy driver',
      hosts: [host('a', { drivers: [{ ...docker, healthy: false }, libvirt] }), host('b')],
      spec: container(64),
      want: 'b',
      summary: 'placed on b (first fit)',
    },
    {
      name: 'counting what is already allocated',
      hosts: [host('a', { allocated: { vcpus: 0, memoryMiB: 4000, diskGiB: 0 } }), host('b')],
      spec: container(128),
      want: 'b',
      summary: 'placed on b (first fit)',
    },
    { name: 'an exact fit', hosts: [host('a')], spec: container(4096, 4, 100), want: 'a', summary: 'placed on a (first fit)' },
    {
      name: 'nothing, explaining each reason',
      hosts: [host('a', { up: false }), host('b', { capacity: { vcpus: 4, memoryMiB: 100, diskGiB: 100 } }), host('c', { capacity: { vcpus: 4, memoryMiB: 100, diskGiB: 100 } }), host('d', { drivers: [libvirt] })],
      spec: container(512),
      summary: '4 hosts: 2 insufficient memory, 1 down, 1 no healthy driver for container',
    },
    { name: 'nothing on too few cpus', hosts: [host('a')], spec: container(64, 5), summary: '1 host: 1 insufficient cpu' },
    { name: 'nothing on too little disk', hosts: [host('a')], spec: container(64, 1, 101), summary: '1 host: 1 insufficient disk' },
    { name: 'nothing in an empty cluster', hosts: [], spec: container(64), summary: 'no hosts are registered' },
  ];

  it.each(cases)('chooses $name', ({ hosts, spec, want, summary }) => {
    const decision = scheduler.place({ workloadId: 'w-1', spec }, hosts);
    expect(decision.hostId).toBe(want);
    expect(decision.summary).toBe(summary);
    expect(decision.candidates).toHaveLength(hosts.length);
  });

  it('changes nothing in the snapshots it reads', () => {
    const hosts = [host('a')];
    const before = structuredClone(hosts);
    scheduler.place({ workloadId: 'w', spec: container(64) }, hosts);
    expect(hosts).toEqual(before);
  });
});

describe('summariseRejections', () => {
  it('orders reasons by count, then name', () => {
    expect(
      summariseRejections([
        { hostId: 'a', feasible: false, reason: 'z' },
        { hostId: 'b', feasible: false, reason: 'y' },
        { hostId: 'c', feasible: false, reason: 'y' },
        { hostId: 'd', feasible: false, reason: 'x' },
      ]),
    ).toBe('4 hosts: 2 y, 1 x, 1 z');
  });
});
