import { describe, expect, it } from 'vitest';
import { parseWorkloadSpec, type DriverInfo } from '@virtfleet/shared';
import { FILTERS } from '../catalog.js';
import type { FilterPlugin, FilterResult } from '../plugins.js';
import type { HostSnapshot } from '../scheduler.js';
import { antiAffinityFilter } from './anti-affinity.js';
import { avoidHostsFilter } from './avoid-hosts.js';
import { driverFilter } from './driver.js';
import { networkFilter } from './network.js';
import { portsFilter } from './ports.js';
import { featuresFilter } from './features.js';
import { hostSelectorFilter } from './host-selector.js';
import { isolationFilter } from './isolation.js';
import { performanceFilter } from './performance.js';
import { resourcesFilter } from './resources.js';
import { schedulableFilter } from './schedulable.js';
import { trustLevelFilter } from './trust-level.js';
import { hostSnapshot } from '../host-snapshot.test-support.js';

const driver = (name: string, kind: 'vm' | 'container', healthy = true): DriverInfo => ({ name, version: '1', kinds: [kind], domain_types: [], healthy, detail: '' });

function host(overrides: Partial<HostSnapshot> = {}): HostSnapshot {
  return hostSnapshot('h1', {
    capacity: { vcpus: 8, memoryMiB: 16384, diskGiB: 100 },
    allocatable: { vcpus: 8, memoryMiB: 16384, diskGiB: 100 },
    drivers: [driver('libvirt', 'vm'), driver('docker', 'container')],
    labels: { zone: 'a' },
    memoryAvailableMiB: 16384,
    ...overrides,
  });
}

const spec = (overrides: Record<string, unknown> = {}) => parseWorkloadSpec({ name: 'w', kind: 'vm', vcpus: 1, memory_mib: 1024, ...overrides });
const container = (overrides: Record<string, unknown> = {}) => spec({ kind: 'container', image: 'busybox:latest', ...overrides });

interface Case {
  name: string;
  spec: ReturnType<typeof spec>;
  host: HostSnapshot;
  /** The request's avoidHosts. */
  avoid?: string[];
  want: FilterResult;
}

const OK: FilterResult = { status: 'ok' };
const unschedulable = (reason: string): FilterResult => ({ status: 'unschedulable', reason });
const unresolvable = (reason: string): FilterResult => ({ status: 'unresolvable', reason });

const cases: Record<string, { plugin: FilterPlugin; cases: Case[] }> = {
  schedulable: {
    plugin: schedulableFilter,
    cases: [
      { name: 'up host', spec: spec(), host: host(), want: OK },
      { name: 'down host', spec: spec(), host: host({ schedulable: false, unschedulableReason: 'down' }), want: unschedulable('down') },
      { name: 'not schedulable, no reason given', spec: spec(), host: host({ schedulable: false }), want: unschedulable('down') },
      { name: 'not schedulable for another reason', spec: spec(), host: host({ schedulable: false, unschedulableReason: 'draining' }), want: unschedulable('draining') },
    ],
  },
  'avoid-hosts': {
    plugin: avoidHostsFilter,
    cases: [
      { name: 'nothing to avoid', spec: spec(), host: host(), want: OK },
      { name: 'another host to avoid', spec: spec(), host: host(), avoid: ['h2'], want: OK },
      { name: 'the host being left', spec: spec(), host: host(), avoid: ['h2', 'h1'], want: unschedulable('being left by this workload') },
      { name: 'a host selector naming it does not override', spec: spec({ host_selector: { zone: 'a' } }), host: host(), avoid: ['h1'], want: unschedulable('being left by this workload') },
    ],
  },
  ports: {
    plugin: portsFilter,
    cases: [
      { name: 'no ports', spec: container(), host: host({ ports: new Set(['tcp/80']) }), want: OK },
      { name: 'free ports', spec: container({ ports: [{ host_port: 8080, port: 80 }] }), host: host({ ports: new Set(['tcp/80', 'udp/8080']) }), want: OK },
      { name: 'a taken port', spec: container({ ports: [{ host_port: 53, port: 53, protocol: 'udp' }] }), host: host({ ports: new Set(['udp/53']) }), want: unschedulable('udp port 53 taken') },
    ],
  },
  network: {
    plugin: networkFilter,
    cases: [
      { name: 'no network asked', spec: spec(), host: host(), want: OK },
      { name: 'none asked', spec: spec({ network: 'none' }), host: host(), want: OK },
      { name: 'a network the host offers', spec: spec({ network: 'default' }), host: host({ networks: new Set(['default']) }), want: OK },
      { name: 'a network the host lacks', spec: spec({ network: 'backend' }), host: host({ networks: new Set(['default']) }), want: unresolvable('no network backend') },
    ],
  },
  driver: {
    plugin: driverFilter,
    cases: [
      { name: 'healthy vm driver', spec: spec(), host: host(), want: OK },
      { name: 'healthy container driver', spec: container(), host: host(), want: OK },
      {
        name: 'vm driver present but unhealthy',
        spec: spec(),
        host: host({ drivers: [driver('libvirt', 'vm', false), driver('docker', 'container')], kinds: new Set(['container']) }),
        want: unschedulable('vm driver unhealthy'),
      },
      { name: 'no vm driver at all', spec: spec(), host: host({ drivers: [driver('docker', 'container')], kinds: new Set(['container']) }), want: unresolvable('no vm driver') },
      { name: 'no container driver at all', spec: container(), host: host({ drivers: [driver('libvirt', 'vm')], kinds: new Set(['vm']) }), want: unresolvable('no container driver') },
      { name: 'no drivers', spec: container(), host: host({ drivers: [], kinds: new Set() }), want: unresolvable('no container driver') },
      { name: 'a domain type the vm driver offers', spec: spec({ domain_type: 'qemu' }), host: host({ drivers: [{ ...driver('libvirt', 'vm'), domain_types: ['qemu', 'kvm'] }] }), want: OK },
      { name: 'a domain type no vm driver offers', spec: spec({ domain_type: 'kvm' }), host: host({ drivers: [{ ...driver('libvirt', 'vm'), domain_types: ['qemu'] }] }), want: unresolvable('no kvm domain type') },
      { name: 'a domain type only a container driver lists', spec: spec({ domain_type: 'qemu' }), host: host({ drivers: [driver('libvirt', 'vm'), { ...driver('docker', 'container'), domain_types: ['qemu'] }] }), want: unresolvable('no qemu domain type') },
    ],
  },
  'trust-level': {
    plugin: trustLevelFilter,
    cases: [
      { name: 'no demand', spec: spec(), host: host({ trustLevel: 0 }), want: OK },
      { name: 'exactly the level', spec: spec({ security: { min_trust_level: 2 } }), host: host({ trustLevel: 2 }), want: OK },
      { name: 'above the level', spec: spec({ security: { min_trust_level: 2 } }), host: host({ trustLevel: 3 }), want: OK },
      { name: 'below the level', spec: spec({ security: { min_trust_level: 2 } }), host: host({ trustLevel: 1 }), want: unresolvable('trust level below 2') },
    ],
  },
  features: {
    plugin: featuresFilter,
    cases: [
      { name: 'none required', spec: spec(), host: host(), want: OK },
      {
        name: 'all present',
        spec: spec({ security: { required_features: ['secure-boot', 'encrypted-storage'] } }),
        host: host({ features: new Set(['encrypted-storage', 'secure-boot', 'sev']) }),
        want: OK,
      },
      {
        name: 'one missing',
        spec: spec({ security: { required_features: ['encrypted-storage', 'secure-boot'] } }),
        host: host({ features: new Set(['encrypted-storage']) }),
        want: unresolvable('missing feature secure-boot'),
      },
      {
        name: 'the first missing one in the spec order is named',
        spec: spec({ security: { required_features: ['secure-boot', 'encrypted-storage'] } }),
        host: host(),
        want: unresolvable('missing feature secure-boot'),
      },
    ],
  },
  'host-selector': {
    plugin: hostSelectorFilter,
    cases: [
      { name: 'no selector', spec: spec(), host: host({ labels: {} }), want: OK },
      { name: 'matching label', spec: spec({ host_selector: { zone: 'a' } }), host: host({ labels: { zone: 'a', rack: 'r1' } }), want: OK },
      { name: 'different value', spec: spec({ host_selector: { zone: 'b' } }), host: host({ labels: { zone: 'a' } }), want: unresolvable('label zone≠b') },
      { name: 'label absent', spec: spec({ host_selector: { zone: 'a', rack: 'r1' } }), host: host({ labels: { zone: 'a' } }), want: unresolvable('label rack≠r1') },
    ],
  },
  resources: {
    plugin: resourcesFilter,
    cases: [
      { name: 'empty host', spec: spec({ vcpus: 2, memory_mib: 2048, disk_gib: 10 }), host: host(), want: OK },
      { name: 'one workload below its most', spec: spec({ vcpus: 1 }), host: host({ workloadCount: 2, maxWorkloads: 3 }), want: OK },
      { name: 'data disks count with the root disk', spec: spec({ disk_gib: 60, disks: [{ name: 'a', size_gib: 30 }, { name: 'b', size_gib: 10 }] }), host: host(), want: OK },
      { name: 'data disks past the free disk', spec: spec({ disk_gib: 60, disks: [{ name: 'a', size_gib: 30 }] }), host: host({ allocated: { vcpus: 0, memoryMiB: 0, diskGiB: 20 } }), want: unschedulable('insufficient disk') },
      { name: 'data disks past the whole disk', spec: spec({ disks: [{ name: 'a', size_gib: 101 }] }), host: host(), want: unresolvable('insufficient disk') },
      { name: 'at the most workloads it takes', spec: spec({ vcpus: 1 }), host: host({ workloadCount: 3, maxWorkloads: 3 }), want: unschedulable('holds the most workloads it takes') },
      {
        name: 'fits exactly',
        spec: spec({ vcpus: 2, memory_mib: 2048, disk_gib: 10 }),
        host: host({ allocated: { vcpus: 6, memoryMiB: 14336, diskGiB: 90 } }),
        want: OK,
      },
      {
        name: 'cpu taken by placed workloads',
        spec: spec({ vcpus: 3 }),
        host: host({ allocated: { vcpus: 6, memoryMiB: 0, diskGiB: 0 } }),
        want: unschedulable('insufficient cpu'),
      },
      {
        name: 'memory taken by placed workloads',
        spec: spec({ memory_mib: 4096 }),
        host: host({ allocated: { vcpus: 0, memoryMiB: 14336, diskGiB: 0 } }),
        want: unschedulable('insufficient memory'),
      },
      {
        name: 'disk taken by placed workloads',
        spec: spec({ disk_gib: 20 }),
        host: host({ allocated: { vcpus: 0, memoryMiB: 0, diskGiB: 90 } }),
        want: unschedulable('insufficient disk'),
      },
      { name: 'more cpu than the host offers', spec: spec({ vcpus: 9 }), host: host(), want: unresolvable('insufficient cpu') },
      { name: 'more memory than the host offers', spec: spec({ memory_mib: 16385 }), host: host(), want: unresolvable('insufficient memory') },
      { name: 'more disk than the host offers', spec: spec({ disk_gib: 101 }), host: host(), want: unresolvable('insufficient disk') },
      {
        name: 'overcommitted allocatable is what counts',
        spec: spec({ vcpus: 16 }),
        host: host({ allocatable: { vcpus: 32, memoryMiB: 16384, diskGiB: 100 }, allocated: { vcpus: 16, memoryMiB: 0, diskGiB: 0 } }),
        want: OK,
      },
      {
        name: 'a demand larger than the whole host is unresolvable even when another resource is merely full',
        spec: spec({ vcpus: 1, memory_mib: 32768 }),
        host: host({ allocated: { vcpus: 8, memoryMiB: 0, diskGiB: 0 } }),
        want: unresolvable('insufficient memory'),
      },
    ],
  },
  'anti-affinity': {
    plugin: antiAffinityFilter,
    cases: [
      { name: 'no group', spec: spec(), host: host({ antiAffinityGroups: new Set(['db']) }), want: OK },
      { name: 'group absent from host', spec: spec({ security: { anti_affinity_group: 'db' } }), host: host({ antiAffinityGroups: new Set(['web']) }), want: OK },
      {
        name: 'group already on host',
        spec: spec({ security: { anti_affinity_group: 'db' } }),
        host: host({ antiAffinityGroups: new Set(['web', 'db']) }),
        want: unschedulable('anti-affinity group db present'),
      },
    ],
  },
  isolation: {
    plugin: isolationFilter,
    cases: [
      { name: 'shared on an empty host', spec: spec(), host: host(), want: OK },
      { name: 'shared among other tenants', spec: spec({ tenant: 'a' }), host: host({ workloadCount: 2, tenants: new Map([['b', 2]]) }), want: OK },
      { name: 'dedicated on an empty host', spec: spec({ security: { isolation: 'dedicated' } }), host: host(), want: OK },
      {
        name: 'dedicated on a busy host',
        spec: spec({ security: { isolation: 'dedicated' } }),
        host: host({ workloadCount: 1, tenants: new Map([['default', 1]]) }),
        want: unschedulable('not empty (dedicated requested)'),
      },
      {
        name: 'anything on a dedicated host',
        spec: spec(),
        host: host({ workloadCount: 1, tenants: new Map([['default', 1]]), isolation: { level: 'dedicated', tenant: 'default' } }),
        want: unschedulable('dedicated to another workload'),
      },
      {
        name: 'tenant-isolated among other tenants',
        spec: spec({ tenant: 'a', security: { isolation: 'tenant' } }),
        host: host({ workloadCount: 2, tenants: new Map([['a', 1], ['b', 1]]) }),
        want: unschedulable('runs other tenants'),
      },
      {
        name: 'tenant-isolated among its own tenant',
        spec: spec({ tenant: 'a', security: { isolation: 'tenant' } }),
        host: host({ workloadCount: 2, tenants: new Map([['a', 2]]) }),
        want: OK,
      },
      {
        name: 'shared on a host isolated for another tenant',
        spec: spec({ tenant: 'b' }),
        host: host({ workloadCount: 1, tenants: new Map([['a', 1]]), isolation: { level: 'tenant', tenant: 'a' } }),
        want: unschedulable('isolated for another tenant'),
      },
      {
        name: 'tenant-isolated on a host isolated for another tenant',
        spec: spec({ tenant: 'b', security: { isolation: 'tenant' } }),
        host: host({ workloadCount: 1, tenants: new Map([['a', 1]]), isolation: { level: 'tenant', tenant: 'a' } }),
        want: unschedulable('isolated for another tenant'),
      },
      {
        name: 'shared on a host isolated for its own tenant',
        spec: spec({ tenant: 'a' }),
        host: host({ workloadCount: 1, tenants: new Map([['a', 1]]), isolation: { level: 'tenant', tenant: 'a' } }),
        want: OK,
      },
    ],
  },
  performance: {
    plugin: performanceFilter,
    cases: [
      { name: 'standard latency tolerates any load', spec: spec(), host: host({ cpuUtilisation: 0.99 }), want: OK },
      { name: 'low latency at exactly 0.6', spec: spec({ performance: { latency_class: 'low' } }), host: host({ cpuUtilisation: 0.6 }), want: OK },
      { name: 'low latency above 0.6', spec: spec({ performance: { latency_class: 'low' } }), host: host({ cpuUtilisation: 0.61 }), want: unschedulable('cpu utilisation above 0.6') },
      {
        name: 'stated maximum',
        spec: spec({ performance: { max_host_cpu_utilisation: 0.5 } }),
        host: host({ cpuUtilisation: 0.55 }),
        want: unschedulable('cpu utilisation above 0.5'),
      },
      {
        name: 'low latency caps a looser stated maximum',
        spec: spec({ performance: { latency_class: 'low', max_host_cpu_utilisation: 0.8 } }),
        host: host({ cpuUtilisation: 0.7 }),
        want: unschedulable('cpu utilisation above 0.6'),
      },
      {
        name: 'a tighter stated maximum wins over low latency',
        spec: spec({ performance: { latency_class: 'low', max_host_cpu_utilisation: 0.3 } }),
        host: host({ cpuUtilisation: 0.4 }),
        want: unschedulable('cpu utilisation above 0.3'),
      },
      {
        name: 'headroom covered exactly',
        spec: spec({ memory_mib: 1024, performance: { memory_headroom_mib: 2048 } }),
        host: host({ memoryAvailableMiB: 3072 }),
        want: OK,
      },
      {
        name: 'headroom short by 1 MiB',
        spec: spec({ memory_mib: 1024, performance: { memory_headroom_mib: 2048 } }),
        host: host({ memoryAvailableMiB: 3071 }),
        want: unschedulable('insufficient memory headroom'),
      },
      {
        name: 'headroom beyond what even an idle host has',
        spec: spec({ memory_mib: 1024, performance: { memory_headroom_mib: 16384 } }),
        host: host({ memoryAvailableMiB: 16384 }),
        want: unresolvable('insufficient memory headroom'),
      },
      {
        name: 'headroom beyond the host is unresolvable even when the load is merely too high',
        spec: spec({ memory_mib: 1024, performance: { latency_class: 'low', memory_headroom_mib: 16384 } }),
        host: host({ cpuUtilisation: 0.9 }),
        want: unresolvable('insufficient memory headroom'),
      },
      { name: 'no headroom asked: measured memory is not checked', spec: spec({ memory_mib: 1024 }), host: host({ memoryAvailableMiB: 0 }), want: OK },
    ],
  },
};

describe('filters', () => {
  for (const [name, { plugin, cases: table }] of Object.entries(cases)) {
    describe(name, () => {
      it('is registered under its name', () => {
        expect(plugin.name).toBe(name);
        expect(FILTERS.get(name)).toBe(plugin);
      });
      it.each(table)('$name', (c) => {
        expect(plugin.filter({ workloadId: 'w1', spec: c.spec, ...(c.avoid ? { avoidHosts: c.avoid } : {}) }, c.host)).toEqual(c.want);
      });
    });
  }

  it('run cheapest first, measured load last', () => {
    expect(FILTERS.names()).toEqual(['schedulable', 'avoid-hosts', 'driver', 'network', 'trust-level', 'features', 'host-selector', 'resources', 'ports', 'anti-affinity', 'isolation', 'performance']);
  });

  it('cover every registered filter in this file', () => {
    expect(Object.keys(cases).sort()).toEqual(FILTERS.names().sort());
  });
});
