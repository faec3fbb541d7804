import { describe, expect, it } from 'vitest';
import type { WorkloadTelemetry } from './telemetry.js';
import { WorkloadDeltaEncoder, WorkloadView } from './telemetry-delta.js';

const workload = (id: string, overrides: Partial<WorkloadTelemetry> = {}): WorkloadTelemetry => ({
  workload_id: id,
  name: id,
  kind: 'container',
  state: 'running',
  driver: 'fake',
  driver_ref: `ref-${id}`,
  cpu_percent: 10,
  memory_used_mib: 100,
  ...overrides,
});

/** An encoder on a clock the test moves, and the message seq it is at. */
function encoder(fullEveryMs = 10_000) {
  let clock = 0;
  let seq = 0;
  const enc = new WorkloadDeltaEncoder(fullEveryMs, () => clock);
  return {
    next(list: WorkloadTelemetry[], advanceMs = 1000) {
      clock += advanceMs;
      const s = seq++;
      return { boot_id: 'b', seq: s, ...enc.encode(s, list) };
    },
    reset: () => enc.reset(),
  };
}

describe('WorkloadDeltaEncoder', () => {
  const base = [workload('a'), workload('b'), workload('c')];
  const cases: { name: string; next: WorkloadTelemetry[]; carried: string[]; removed: string[] }[] = [
    { name: 'nothing changed: an empty delta', next: base, carried: [], removed: [] },
    { name: 'a state change', next: [workload('a', { state: 'stopped' }), workload('b'), workload('c')], carried: ['a'], removed: [] },
    { name: 'a new driver ref (recreated)', next: [workload('a'), workload('b', { driver_ref: 'other' }), workload('c')], carried: ['b'], removed: [] },
    { name: 'an address given (DHCP)', next: [workload('a'), workload('b', { addresses: ['10.253.0.9'] }), workload('c')], carried: ['b'], removed: [] },
    { name: 'a new workload', next: [...base, workload('d')], carried: ['d'], removed: [] },
    { name: 'a workload gone', next: [workload('a'), workload('c')], carried: [], removed: ['b'] },
    { name: 'CPU moved by less than a step', next: [workload('a', { cpu_percent: 10.9 }), workload('b'), workload('c')], carried: [], removed: [] },
    { name: 'CPU moved by a step', next: [workload('a', { cpu_percent: 11 }), workload('b'), workload('c')], carried: ['a'], removed: [] },
    { name: 'memory moved by under 2 %', next: [workload('a', { memory_used_mib: 101.9 }), workload('b'), workload('c')], carried: [], removed: [] },
    { name: 'memory moved by 2 %', next: [workload('a', { memory_used_mib: 102 }), workload('b'), workload('c')], carried: ['a'], removed: [] },
  ];
  it.each(cases)('$name', ({ next, carried, removed }) => {
    const e = encoder();
    expect(e.next(base)).toMatchObject({ kind: 'full', part: { workloads: base } });
    const delta = e.next(next);
    expect(delta.kind).toBe('delta');
    expect(delta.part.workloads_base_seq).toBe(0);
    expect(delta.part.workloads.map((w) => w.workload_id)).toEqual(carried);
    expect(delta.part.workloads_removed).toEqual(removed);
  });

  it('sends the whole list again once fullEveryMs has passed, and after a reset', () => {
    const e = encoder(3000);
    expect(e.next(base).kind).toBe('full');
    expect(e.next(base).kind).toBe('delta');
    expect(e.next(base).kind).toBe('delta');
    expect(e.next(base).kind).toBe('full');
    e.reset();
    expect(e.next(base).kind).toBe('full');
  });

  it('measures usage steps from the value last sent, so slow drift is sent eventually', () => {
    const e = encoder();
    e.next(base);
    expect(e.next([workload('a', { cpu_percent: 10.6 }), workload('b'), workload('c')]).part.workloads).toEqual([]);
    expect(e.next([workload('a', { cpu_percent: 11.2 }), workload('b'), workload('c')]).part.workloads.map((w) => w.workload_id)).toEqual(['a']);
  });
});

describe('WorkloadView', () => {
  /** A random walk over a host's workloads: adds, removals, state and usage changes. */
  function* walk(seed: number, steps: number): Generator<WorkloadTelemetry[]> {
    let x = seed;
    const random = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let list: WorkloadTelemetry[] = [];
    let nextId = 0;
    const states = ['creating', 'running', 'stopped', 'paused', 'failed'] as const;
    for (let i = 0; i < steps; i++) {
      if (random() < 0.5) list.push(workload(`w${nextId++}`));
      if (list.length > 0 && random() < 0.3) list.splice(Math.floor(random() * list.length), 1);
      list = list.map((w) => (random() < 0.2 ? { ...w, state: states[Math.floor(random() * states.length)]!, cpu_percent: random() * 100 } : w));
      yield list;
    }
  }

  it.each([1, 2, 3, 4, 5])('rebuilds the host list exactly from full lists and deltas (walk %i)', (seed) => {
    const e = encoder(7000);
    const view = new WorkloadView();
    for (const list of walk(seed, 200)) {
      const message = e.next(list);
      view.apply({ ...message.part, boot_id: message.boot_id, seq: message.seq });
      expect(view.complete).toBe(true);
      // Usage is sent by steps, so compare what the coordinator acts on.
      const identity = (w: WorkloadTelemetry) => `${w.workload_id}:${w.state}:${w.driver_ref}`;
      expect([...view.values()].map(identity).sort()).toEqual(list.map(identity).sort());
    }
  });

  it('is incomplete after a missed message, a restart of the agent, or a delta before any full list, until the next full list', () => {
    const e = encoder(5000);
    const view = new WorkloadView();
    const full = e.next([workload('a')]);
    view.apply({ ...full.part, boot_id: 'b', seq: full.seq });
    expect(view.complete).toBe(true);
    e.next([workload('a'), workload('b')]); // lost in transit
    const after = e.next([workload('a'), workload('b'), workload('c')]);
    expect(view.apply({ ...after.part, boot_id: 'b', seq: after.seq }).map((w) => w.workload_id)).toEqual(['c']);
    expect(view.complete).toBe(false);
    const later = e.next([workload('a'), workload('b'), workload('c')]);
    view.apply({ ...later.part, boot_id: 'b', seq: later.seq });
    expect(view.complete).toBe(false);
    const nextFull = e.next([workload('a'), workload('b')], 5000);
    expect(nextFull.kind).toBe('full');
    view.apply({ ...nextFull.part, boot_id: 'b', seq: nextFull.seq });
    expect(view.complete).toBe(true);
    expect([...view.values()].map((w) => w.workload_id)).toEqual(['a', 'b']);

    // Same seq numbers from a new agent run do not continue the old one.
    view.apply({ workloads: [], workloads_base_seq: nextFull.seq, workloads_removed: [], boot_id: 'b2', seq: nextFull.seq + 1 });
    expect(view.complete).toBe(false);

    const fresh = new WorkloadView();
    fresh.apply({ workloads: [workload('a')], workloads_base_seq: 0, workloads_removed: [], boot_id: 'b', seq: 1 });
    expect(fresh.complete).toBe(false);
  });
});
