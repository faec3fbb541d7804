import { describe, expect, it } from 'vitest';
import { parseWorkloadSpec, type WorkloadState } from '@virtfleet/shared';
import { holdsResources, type Workload } from '../workloads/workload.js';
import { HostBookings } from './host-bookings.js';
import { assume, type HostSnapshot, type ResourceVector } from './scheduler.js';

const blank = (id: string): HostSnapshot => ({
  id,
  schedulable: true,
  capacity: { vcpus: 64, memoryMiB: 65536, diskGiB: 1000 },
  allocatable: { vcpus: 64, memoryMiB: 65536, diskGiB: 1000 },
  allocated: { vcpus: 0, memoryMiB: 0, diskGiB: 0 },
  overcommit: { cpu: 1, memory: 1 },
  drivers: [],
  kinds: new Set(['vm', 'container']),
  labels: {},
  trustLevel: 0,
  features: new Set(),
  cpuUtilisation: 0,
  memoryAvailableMiB: 65536,
  workloadCount: 0,
  tenants: new Map(),
  antiAffinityGroups: new Set(),
  isolation: undefined,
});

/** The bookings the old way: every workload assumed onto a fresh snapshot, in store order. */
function fromScratch(id: string, workloads: Iterable<Workload>): HostSnapshot {
  const s = blank(id);
  for (const w of workloads) {
    if (w.hostId !== id || !holdsResources(w)) continue;
    assume(s, w.spec);
    if (w.state === 'stopped') {
      const held = s.heldByStopped ?? { vcpus: 0, memoryMiB: 0, diskGiB: 0 };
      s.heldByStopped = { vcpus: held.vcpus + w.spec.vcpus, memoryMiB: held.memoryMiB + w.spec.memory_mib, diskGiB: held.diskGiB + w.spec.disk_gib };
    }
  }
  s.memoryAvailableMiB = 65536;
  return s;
}

/** Equal but for float noise: the scratch sums carry it, the bookings round it off. */
function expectClose(got: ResourceVector, want: ResourceVector): void {
  expect(got.vcpus).toBeCloseTo(want.vcpus, 9);
  expect(got.memoryMiB).toBeCloseTo(want.memoryMiB, 9);
  expect(got.diskGiB).toBeCloseTo(want.diskGiB, 9);
}

const applied = (bookings: HostBookings, id: string) => {
  const s = blank(id);
  bookings.applyTo(s);
  return s;
};

describe('HostBookings', () => {
  it('after any sequence of changes equals booking every workload from scratch', () => {
    // A seeded walk through creates, moves, stops, failures and deletes on three hosts.
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const hosts = ['h1', 'h2', 'h3', ''];
    const states: WorkloadState[] = ['pending', 'creating', 'running', 'stopped', 'paused', 'failed', 'unknown', 'deleted'];
    const tenants = ['a', 'b'];
    const isolations = ['shared', 'shared', 'tenant', 'dedicated'] as const;
    const store = new Map<string, Workload>();
    const bookings = new HostBookings();
    for (let step = 0; step < 3_000; step++) {
      const id = `w${random(60)}`;
      const before = store.get(id);
      if (before && random(10) === 0) {
        store.delete(id);
        bookings.change(before, undefined);
        continue;
      }
      const after: Workload = {
        id,
        spec: before?.spec ?? parseWorkloadSpec({
          name: id,
          kind: 'container',
          image: 'i',
          vcpus: (1 + random(300)) / 100,
          memory_mib: 8 + random(500),
          tenant: tenants[random(2)],
          security: { isolation: isolations[random(4)], ...(random(3) === 0 ? { anti_affinity_group: `g${random(3)}` } : {}) },
        }),
        hostId: hosts[random(4)]!,
        desiredState: 'running',
        state: states[random(states.length)]!,
        message: '',
        driverRef: '',
        requestId: '',
        arrivalSeq: step,
        arrivalMs: 0,
        createdAt: '',
        updatedAt: '',
      };
      store.set(id, after);
      bookings.change(before, after);
      for (const h of ['h1', 'h2', 'h3']) {
        const want = fromScratch(h, store.values());
        const got = applied(bookings, h);
        expectClose(got.allocated, want.allocated);
        expect(got.heldByStopped === undefined).toBe(want.heldByStopped === undefined);
        if (want.heldByStopped) expectClose(got.heldByStopped!, want.heldByStopped);
        expect(got.workloadCount).toBe(want.workloadCount);
        expect(got.tenants).toEqual(want.tenants);
        expect(got.antiAffinityGroups).toEqual(want.antiAffinityGroups);
        expect(got.isolation?.level).toBe(want.isolation?.level);
      }
    }
  });

  it('hands each snapshot its own maps, so a pass that assumes placements leaves the bookings as they were', () => {
    const w: Workload = {
      id: 'w1',
      spec: parseWorkloadSpec({ name: 'w1', kind: 'vm', vcpus: 2, memory_mib: 512, tenant: 't' }),
      hostId: 'h1',
      desiredState: 'running',
      state: 'running',
      message: '',
      driverRef: '',
      requestId: '',
      arrivalSeq: 1,
      arrivalMs: 0,
      createdAt: '',
      updatedAt: '',
    };
    const bookings = HostBookings.of([w]);
    assume(applied(bookings, 'h1'), { ...w.spec, tenant: 'other', security: { ...w.spec.security, anti_affinity_group: 'x' } });
    const again = applied(bookings, 'h1');
    expect(again.allocated).toEqual({ vcpus: 2, memoryMiB: 512, diskGiB: 0 });
    expect(again.tenants).toEqual(new Map([['t', 1]]));
    expect(again.antiAffinityGroups).toEqual(new Set());
  });
});
