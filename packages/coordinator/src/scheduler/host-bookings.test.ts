import { describe, expect, it } from 'vitest';
import type { WorkloadState } from '@virtfleet/shared';
import { holdsResources, type Workload } from '../workloads/workload.js';
import { testWorkload } from '../workloads/workload.test-support.js';
import { hostSnapshot } from './host-snapshot.test-support.js';
import { HostBookings } from './host-bookings.js';
import { assume, type HostSnapshot, type ResourceVector } from './scheduler.js';

const blank = (id: string): HostSnapshot => hostSnapshot(id, { memoryAvailableMiB: 65536 });

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

/** Equal but for float noise: the scratch sums carry it, the bookings (summed in milli-CPUs) do not. */
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
      const drawn = testWorkload(
        id,
        { hostId: hosts[random(4)]!, state: states[random(states.length)]!, arrivalSeq: step },
        {
          vcpus: (1 + random(300)) / 100,
          memory_mib: 8 + random(500),
          tenant: tenants[random(2)],
          security: { isolation: isolations[random(4)], ...(random(3) === 0 ? { anti_affinity_group: `g${random(3)}` } : {}) },
          ...(random(4) === 0 ? { kind: 'container', image: 'busybox', ports: [{ host_port: 8000 + random(3), port: 80 }] } : {}),
        },
      );
      // A workload's spec never changes; only where and how it runs.
      const after: Workload = before ? { ...drawn, spec: before.spec } : drawn;
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
        expect(got.ports).toEqual(want.ports);
        expect(got.isolation?.level).toBe(want.isolation?.level);
      }
    }
  });

  it('hands each snapshot its own maps, so a pass that assumes placements leaves the bookings as they were', () => {
    const w = testWorkload('w1', {}, { kind: 'vm', image: undefined, vcpus: 2, memory_mib: 512, tenant: 't' });
    const bookings = HostBookings.of([w]);
    assume(applied(bookings, 'h1'), { ...w.spec, tenant: 'other', security: { ...w.spec.security, anti_affinity_group: 'x' } });
    const again = applied(bookings, 'h1');
    expect(again.allocated).toEqual({ vcpus: 2, memoryMiB: 512, diskGiB: 0 });
    expect(again.tenants).toEqual(new Map([['t', 1]]));
    expect(again.antiAffinityGroups).toEqual(new Set());
  });

  it('books a migrating workload on its target as well, until the migration ends', () => {
    const bookings = new HostBookings();
    const w = testWorkload('w1', { hostId: 'h1', state: 'running' }, { memory_mib: 512, vcpus: 2 });
    bookings.change(undefined, w);
    const migrating: Workload = { ...w, migration: { id: 'm1', sourceHostId: 'h1', targetHostId: 'h2', mode: 'live', phase: 'transferring', startedAt: '', maxDowntimeMs: 0, bandwidthMiBs: 0, requestId: '' } };
    bookings.change(w, migrating);
    expect([applied(bookings, 'h1').allocated, applied(bookings, 'h2').allocated]).toEqual([
      { vcpus: 2, memoryMiB: 512, diskGiB: 0 },
      { vcpus: 2, memoryMiB: 512, diskGiB: 0 },
    ]);
    const moved: Workload = { ...w, hostId: 'h2' };
    bookings.change(migrating, moved);
    expect([applied(bookings, 'h1').workloadCount, applied(bookings, 'h2').workloadCount]).toEqual([0, 1]);
    expect(applied(bookings, 'h2').allocated).toEqual({ vcpus: 2, memoryMiB: 512, diskGiB: 0 });
  });
});
