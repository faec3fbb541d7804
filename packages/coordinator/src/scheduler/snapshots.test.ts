import { describe, expect, it } from 'vitest';
import { parseWorkloadSpec, WorkloadView, type Telemetry, type WorkloadState } from '@virtfleet/shared';
import type { Host } from '../hosts/host.js';
import type { Workload } from '../workloads/workload.js';
import { schedulableFilter } from './filters/schedulable.js';
import { testTelemetry } from '../hosts/telemetry.test-support.js';
import { HostBookings } from './host-bookings.js';
import { buildSnapshots as buildFromBookings, snapshotOf } from './snapshots.js';

const buildSnapshots = (hosts: Host[], workloads: Workload[]) => buildFromBookings(hosts, HostBookings.of(workloads));

function telemetry(hostId: string, fields: Partial<Telemetry> = {}): Telemetry {
  return testTelemetry(hostId, {
    time: new Date(0).toISOString(),
    labels: { zone: 'a' },
    drivers: [
      { name: 'libvirt', version: '1', kinds: ['vm'], domain_types: ['kvm'], healthy: true, detail: '' },
      { name: 'docker', version: '1', kinds: ['container'], domain_types: [], healthy: false, detail: 'daemon unreachable' },
    ],
    capacity: { vcpus: 16, memory_mib: 32768, disk_gib: 500 },
    reserved: { vcpus: 2, memory_mib: 2048, disk_gib: 20 },
    overcommit: { cpu: 4, memory: 1.5 },
    trust_level: 2,
    features: ['secure-boot'],
    host: { cpu_count: 16, cpu_utilisation: 0.9, load1: 0, load5: 0, load15: 0, memory_total_mib: 32768, memory_used_mib: 12288, memory_available_mib: 20480, storage: [] },
    ...fields,
  }) as Telemetry;
}

const hostOf = (id: string, fields: Partial<Host> = {}, t: Partial<Telemetry> = {}): Host => ({
  id,
  status: 'up',
  lastSeenMs: 0,
  telemetry: telemetry(id, t),
  workloads: new WorkloadView(),
  cpuUtilisationSmoothed: 0.25,
  cordoned: false,
  ...fields,
});

let n = 0;
function workload(hostId: string, state: WorkloadState, spec: Record<string, unknown> = {}): Workload {
  n++;
  return {
    id: `w${n}`,
    spec: parseWorkloadSpec({ name: `w${n}`, kind: 'vm', vcpus: 2, memory_mib: 1024, disk_gib: 10, ...spec }),
    hostId,
    desiredState: 'running',
    state,
    message: '',
    driverRef: '',
    requestId: `r${n}`,
    arrivalSeq: n,
    arrivalMs: 0,
    createdAt: '',
    updatedAt: '',
  };
}

describe('buildSnapshots', () => {
  it('offers (capacity - reserved) × overcommit ratio, disk never overcommitted', () => {
    const [s] = buildSnapshots([hostOf('h1')], []);
    expect(s!.capacity).toEqual({ vcpus: 16, memoryMiB: 32768, diskGiB: 500 });
    expect(s!.allocatable).toEqual({ vcpus: (16 - 2) * 4, memoryMiB: (32768 - 2048) * 1.5, diskGiB: 500 - 20 });
    expect(s!.overcommit).toEqual({ cpu: 4, memory: 1.5 });
    expect(s!.allocated).toEqual({ vcpus: 0, memoryMiB: 0, diskGiB: 0 });
  });

  it('offers nothing, not a negative amount, when more is reserved than the host has', () => {
    const [s] = buildSnapshots([hostOf('h1', {}, { reserved: { vcpus: 32, memory_mib: 65536, disk_gib: 1000 } })], []);
    expect(s!.allocatable).toEqual({ vcpus: 0, memoryMiB: 0, diskGiB: 0 });
  });

  it('copies the host facts the filters read', () => {
    const [s] = buildSnapshots([hostOf('h1')], []);
    expect(s).toMatchObject({ id: 'h1', schedulable: true, labels: { zone: 'a' }, trustLevel: 2, cpuUtilisation: 0.25, memoryAvailableMiB: 20480, workloadCount: 0 });
    expect(s!.unschedulableReason).toBeUndefined();
    expect('unschedulableReason' in s!).toBe(false);
    expect([...s!.features]).toEqual(['secure-boot']);
    // Only healthy drivers offer their kinds; the unhealthy one stays listed for the driver filter's reason.
    expect([...s!.kinds]).toEqual(['vm']);
    expect(s!.drivers.map((d) => d.name)).toEqual(['libvirt', 'docker']);
    expect(s!.isolation).toBeUndefined();
  });

  it('uses the smoothed cpu utilisation, not the last sample', () => {
    expect(snapshotOf(hostOf('h1', { cpuUtilisationSmoothed: 0.4 })).cpuUtilisation).toBe(0.4);
  });

  it('books the workloads that hold resources on each host, and only those', () => {
    const workloads = [
      workload('h1', 'running', { tenant: 'a' }),
      workload('h1', 'creating', { tenant: 'b', vcpus: 1, memory_mib: 512, disk_gib: 5 }),
      workload('h1', 'stopped', { tenant: 'a' }), // a stopped workload keeps its place
      workload('h1', 'unknown', { tenant: 'a' }), // so does one on a host that went down
      workload('h1', 'deleted', { vcpus: 100 }),
      workload('h1', 'failed', { vcpus: 100 }),
      workload('', 'pending', { vcpus: 100 }),
      workload('h2', 'running', { vcpus: 3, memory_mib: 2048, disk_gib: 0 }),
      workload('gone', 'running', { vcpus: 100 }), // on a host the registry does not know
    ];
    const [h1, h2] = buildSnapshots([hostOf('h1'), hostOf('h2')], workloads);
    expect(h1!.allocated).toEqual({ vcpus: 2 + 1 + 2 + 2, memoryMiB: 1024 + 512 + 1024 + 1024, diskGiB: 10 + 5 + 10 + 10 });
    expect(h1!.workloadCount).toBe(4);
    expect(h1!.tenants).toEqual(new Map([['a', 3], ['b', 1]]));
    expect(h2!.allocated).toEqual({ vcpus: 3, memoryMiB: 2048, diskGiB: 0 });
    expect(h2!.tenants).toEqual(new Map([['default', 1]]));
  });

  it('does not count measured memory twice: the host reports what its workloads use', () => {
    const [s] = buildSnapshots([hostOf('h1')], [workload('h1', 'running', { memory_mib: 4096 }), workload('h1', 'running', { memory_mib: 2048 })]);
    expect(s!.memoryAvailableMiB).toBe(20480);
    expect(s!.allocated.memoryMiB).toBe(6144);
  });

  it('records anti-affinity groups and isolation from the workloads placed', () => {
    const [h1, h2] = buildSnapshots(
      [hostOf('h1'), hostOf('h2')],
      [
        workload('h1', 'running', { tenant: 'a', security: { anti_affinity_group: 'db' } }),
        workload('h1', 'running', { tenant: 'a', security: { isolation: 'tenant', anti_affinity_group: 'web' } }),
        workload('h2', 'running', { tenant: 'b', security: { isolation: 'dedicated' } }),
      ],
    );
    expect(h1!.antiAffinityGroups).toEqual(new Set(['db', 'web']));
    expect(h1!.isolation).toEqual({ level: 'tenant', tenant: 'a' });
    expect(h2!.isolation).toEqual({ level: 'dedicated', tenant: 'b' });
  });

  it('makes a down host unschedulable, with the reason the summary counts', () => {
    const [s] = buildSnapshots([hostOf('h1', { status: 'down' })], []);
    expect(s!.schedulable).toBe(false);
    expect(s!.unschedulableReason).toBe('down');
    expect(schedulableFilter.filter({ workloadId: 'w', spec: workload('h1', 'pending').spec }, s!)).toEqual({ status: 'unschedulable', reason: 'down' });
  });

  it.each([
    [{ status: 'up', cordoned: true }, 'cordoned'],
    [{ status: 'down', cordoned: true }, 'down'],
  ] as const)('makes host %o unschedulable as %s', (fields, reason) => {
    const [s] = buildSnapshots([hostOf('h1', fields)], []);
    expect(s!.schedulable).toBe(false);
    expect(s!.unschedulableReason).toBe(reason);
  });

  it('keeps each host separate: building does not share mutable state between snapshots', () => {
    const [a, b] = buildSnapshots([hostOf('h1'), hostOf('h2')], [workload('h1', 'running', { security: { anti_affinity_group: 'db' } })]);
    expect(b!.antiAffinityGroups.size).toBe(0);
    expect(b!.tenants.size).toBe(0);
    expect(a!.allocated).not.toBe(b!.allocated);
  });
});
