import { describe, expect, it } from 'vitest';
import { FleetState } from './fleet-state.js';
import { testFleet, type TestHost, type TestWorkload } from './fleet.test-support.js';
import { sequenceMoves } from './sequence.js';

interface Case {
  name: string;
  hosts: TestHost[];
  workloads: TestWorkload[];
  /** Where each workload must end. */
  to: Record<string, string>;
  /** The moves, as [workload, from, to]; undefined when no order exists. */
  want: [string, string, string][] | undefined;
}

const big = (id: string, host: string): TestWorkload => ({ id, host, spec: { memory_mib: 6000 } });

const cases: Case[] = [
  {
    name: 'a move waits until the workload it replaces has left',
    hosts: ['a', 'b', 'c'],
    workloads: [big('x', 'a'), big('y', 'b')],
    to: { x: 'b', y: 'c' },
    want: [
      ['y', 'b', 'c'],
      ['x', 'a', 'b'],
    ],
  },
  {
    name: 'two full hosts swap through a third host that has room',
    hosts: ['a', 'b', 'c'],
    workloads: [big('x', 'a'), big('y', 'b')],
    to: { x: 'b', y: 'a' },
    want: [
      ['x', 'a', 'c'],
      ['y', 'b', 'a'],
      ['x', 'c', 'b'],
    ],
  },
  {
    name: 'no order exists when no third host has room',
    hosts: ['a', 'b'],
    workloads: [big('x', 'a'), big('y', 'b')],
    to: { x: 'b', y: 'a' },
    want: undefined,
  },
  {
    name: 'anti-affinity: a member waits until the other member has left',
    hosts: ['a', 'b', 'c'],
    workloads: [
      { id: 'm1', host: 'a', spec: { security: { anti_affinity_group: 'g' } } },
      { id: 'm2', host: 'b', spec: { security: { anti_affinity_group: 'g' } } },
    ],
    to: { m1: 'b', m2: 'c' },
    want: [
      ['m2', 'b', 'c'],
      ['m1', 'a', 'b'],
    ],
  },
];

describe('sequenceMoves', () => {
  it.each(cases)('$name', (c) => {
    const state = new FleetState(testFleet(c.hosts, c.workloads));
    const index = (id: string) => state.hosts.findIndex((h) => h.id === id);
    const from = Int32Array.from(state.items, (item) => item.origin);
    const to = Int32Array.from(state.items, (item) => index(c.to[item.workload.id] ?? state.hosts[item.origin]!.id));
    const steps = sequenceMoves(state, from, to);
    expect(steps?.map((s) => [state.items[s.item]!.workload.id, state.hosts[s.from]!.id, state.hosts[s.to]!.id])).toEqual(c.want);
  });
});
