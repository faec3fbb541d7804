import { describe, expect, it } from 'vitest';
import { testWorkload } from '../workloads/workload.test-support.js';
import type { Workload } from '../workloads/workload.js';
import { resourcesFilter } from './filters/resources.js';
import { HostBookings } from './host-bookings.js';
import { hostSnapshot } from './host-snapshot.test-support.js';
import { addCpus, fromMilliCpus, milliExact, toMilliCpus } from './milli-cpus.js';
import { assume, release, type HostSnapshot } from './scheduler.js';

/** The exact decimal sum, as a person writes it: whole milli-CPUs, then one division. */
const exactSum = (vcpus: readonly number[]) => vcpus.reduce((a, v) => a + Math.round(v * 1000), 0) / 1000;

const container = (id: string, vcpus: number, state: Workload['state'] = 'running') => testWorkload(id, { state }, { vcpus, memory_mib: 64 });

// Fractional containers coming and going: as floats, these sums drift (0.1 + 0.2 - 0.1 - 0.2 is 2.8e-17, not 0).
const cycles = [
  { name: 'tenths', vcpus: [0.1, 0.2, 0.3], rounds: 1_000 },
  { name: 'hundredths', vcpus: [0.01, 0.07, 0.13, 0.29, 0.33], rounds: 500 },
  { name: 'thousandths beside wholes', vcpus: [0.015, 0.333, 0.6, 1, 2.5], rounds: 500 },
  { name: 'many small ones', vcpus: Array.from({ length: 40 }, (_, i) => (i % 9) / 10 + 0.01), rounds: 50 },
];

describe('fractional vCPU sums are exact', () => {
  it.each(cycles)('assume/release of $name, $rounds times, returns to exactly 0', ({ vcpus, rounds }) => {
    const s: HostSnapshot = hostSnapshot('h1', { allocatable: { vcpus: 1000, memoryMiB: 1 << 20, diskGiB: 100 } });
    const specs = vcpus.map((v, i) => container(`w${i}`, v).spec);
    for (let round = 0; round < rounds; round++) {
      specs.forEach((spec) => assume(s, spec));
      expect(s.allocated.vcpus).toBe(exactSum(vcpus));
      // Leave in another order than they came.
      const left = [...specs];
      while (left.length > 0) {
        const [spec] = left.splice(round % left.length, 1);
        release(s, spec!, left);
      }
      expect(s.allocated.vcpus, `after round ${round + 1}`).toBe(0);
    }
  });

  it.each(cycles)('HostBookings of $name, $rounds times, beside a 1-vCPU workload that stays, books exactly 1 again', ({ vcpus, rounds }) => {
    const bookings = new HostBookings();
    bookings.change(undefined, container('anchor', 1));
    const applied = () => {
      const s = hostSnapshot('h1');
      bookings.applyTo(s);
      return s;
    };
    const stopped = vcpus.filter((_, i) => i % 2 === 1);
    for (let round = 0; round < rounds; round++) {
      // Every other one stopped: it keeps its booking and is counted in held by stopped as well.
      const ws = vcpus.map((v, i) => container(`r${round}-${i}`, v, i % 2 === 1 ? 'stopped' : 'running'));
      ws.forEach((w) => bookings.change(undefined, w));
      expect(applied().allocated.vcpus).toBe(exactSum([1, ...vcpus]));
      expect(applied().heldByStopped?.vcpus ?? 0).toBe(exactSum(stopped));
      ws.reverse().forEach((w) => bookings.change(w, undefined));
      expect(applied().allocated.vcpus, `after round ${round + 1}`).toBe(1);
      expect(applied().heldByStopped).toBeUndefined();
    }
  });

  // Booked through the real path (HostBookings, then assume), judged by the real filter.
  it.each([
    { name: '0.2 booked, 0.1 more fits 0.3', booked: [0.2], allocatable: 0.3, ask: 0.1, want: 'ok' },
    { name: '0.1 + 0.2 booked, 0.3 more fits 0.6', booked: [0.1, 0.2], allocatable: 0.6, ask: 0.3, want: 'ok' },
    { name: '0.7 + 0.1 booked, 0.2 more fits 1', booked: [0.7, 0.1], allocatable: 1, ask: 0.2, want: 'ok' },
    { name: '0.7 + 0.2 booked, 0.11 more does not fit 1', booked: [0.7, 0.2], allocatable: 1, ask: 0.11, want: 'unschedulable' },
    { name: 'ten times 0.1 booked, nothing more fits 1', booked: Array(10).fill(0.1), allocatable: 1, ask: 0.01, want: 'unschedulable' },
  ])('resources filter: $name', ({ booked, allocatable, ask, want }) => {
    const bookings = HostBookings.of(booked.slice(0, 1).map((v, i) => container(`b${i}`, v)));
    const s = hostSnapshot('h1', { allocatable: { vcpus: allocatable, memoryMiB: 8192, diskGiB: 100 } });
    bookings.applyTo(s);
    for (const v of booked.slice(1)) assume(s, container('x', v).spec);
    expect(resourcesFilter.filter({ workloadId: 'new', spec: container('new', ask).spec }, s).status).toBe(want);
  });

  it.each([
    [0.1, 100],
    [0.30000000000000004, 300],
    [3.619999999999966, 3620],
    [1024, 1_024_000],
  ])('%d vCPUs is %i milli-CPUs', (vcpus, milli) => {
    expect(toMilliCpus(vcpus)).toBe(milli);
    expect(fromMilliCpus(milli)).toBe(Number((milli / 1000).toString()));
  });

  it('adds and takes away exactly, and squares off products such as (8 - 0.5) × 1.1', () => {
    expect(addCpus(0.1, 0.2)).toBe(0.3);
    expect(addCpus(0.3, 0.1, -1)).toBe(0.2);
    expect(milliExact((8 - 0.5) * 1.1)).toBe(8.25);
  });
});
