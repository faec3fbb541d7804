import type { HostSnapshot } from './scheduler.js';

/** An up, empty host of 8 vCPUs, 8 GiB and 100 GiB with both kinds, no overcommit; tests override what they examine. */
export function hostSnapshot(id: string, overrides: Partial<HostSnapshot> = {}): HostSnapshot {
  return {
    id,
    schedulable: true,
    capacity: { vcpus: 8, memoryMiB: 8192, diskGiB: 100 },
    allocatable: { vcpus: 8, memoryMiB: 8192, diskGiB: 100 },
    allocated: { vcpus: 0, memoryMiB: 0, diskGiB: 0 },
    overcommit: { cpu: 1, memory: 1 },
    drivers: [{ name: 'fake', version: '1', kinds: ['vm', 'container'], domain_types: [], healthy: true, detail: '' }],
    kinds: new Set(['vm', 'container']),
    labels: {},
    trustLevel: 0,
    features: new Set(),
    cpuUtilisation: 0,
    memoryAvailableMiB: 8192,
    workloadCount: 0,
    maxWorkloads: 10_000,
    tenants: new Map(),
    images: new Set(),
    networks: new Set(),
    antiAffinityGroups: new Set(),
    ports: new Set(),
    isolation: undefined,
    ...overrides,
  };
}
