import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '@virtfleet/shared';
import { finalHosts, replay, testFleet, type TestHost, type TestWorkload } from './fleet.test-support.js';
import { planRebalance } from './planner.js';
import type { RebalanceGoal } from './rebalance.js';

const mib = (memory_mib: number, more: Record<string, unknown> = {}) => ({ memory_mib, ...more });
const hosts = (...ids: string[]): TestHost[] => ids;

interface Case {
  name: string;
  hosts: TestHost[];
  workloads: TestWorkload[];
  goal?: RebalanceGoal;
  want: {
    hostsUsedAfter: number;
    /** Exactly these moves, as [workload, from, to], in order. */
    moves?: [string, string, string][];
    moveCount?: number;
    /** Workloads that must not end on these hosts. */
    neverOn?: [string, string][];
    lowerBound?: number;
  };
}

const consolidate: Case[] = [
  {
    name: 'frees the hosts a known optimum frees, with the fewest moves',
    hosts: hosts('h1', 'h2', 'h3', 'h4'),
    workloads: [
      { id: 'a', host: 'h1', spec: mib(4096) },
      { id: 'b', host: 'h2', spec: mib(4096) },
      { id: 'c', host: 'h3', spec: mib(2048) },
      { id: 'd', host: 'h3', spec: mib(2048) },
      { id: 'e', host: 'h4', spec: mib(2048) },
    ],
    want: { hostsUsedAfter: 2, lowerBound: 2, moveCount: 2 },
  },
  {
    name: 'moves the one workload rather than the three',
    hosts: hosts('h1', 'h2'),
    workloads: [
      { id: 'a', host: 'h1', spec: mib(2048) },
      { id: 'b', host: 'h1', spec: mib(2048) },
      { id: 'c', host: 'h1', spec: mib(2048) },
      { id: 'd', host: 'h2', spec: mib(2048) },
    ],
    want: { hostsUsedAfter: 1, moves: [['d', 'h2', 'h1']] },
  },
  {
    name: 'no move when nothing fits together',
    hosts: hosts('h1', 'h2'),
    workloads: [
      { id: 'a', host: 'h1', spec: mib(6144) },
      { id: 'b', host: 'h2', spec: mib(6144) },
    ],
    want: { hostsUsedAfter: 2, moves: [] },
  },
  {
    name: 'CPU counts as much as memory',
    hosts: hosts('h1', 'h2', 'h3'),
    workloads: [
      { id: 'a', host: 'h1', spec: { vcpus: 4, memory_mib: 512 } },
      { id: 'b', host: 'h2', spec: { vcpus: 4, memory_mib: 512 } },
      { id: 'c', host: 'h3', spec: { vcpus: 4, memory_mib: 512 } },
    ],
    want: { hostsUsedAfter: 2, lowerBound: 2, moveCount: 1 },
  },
  {
    name: 'anti-affinity: members of one group never share a host',
    hosts: hosts('h1', 'h2', 'h3'),
    workloads: ['h1', 'h2', 'h3'].map((h, i) => ({ id: `db${i}`, host: h, spec: { security: { anti_affinity_group: 'db' } } })),
    want: { hostsUsedAfter: 3, moves: [] },
  },
  {
    name: 'anti-affinity: others join the members',
    hosts: hosts('h1', 'h2', 'h3'),
    workloads: [
      { id: 'db1', host: 'h1', spec: { security: { anti_affinity_group: 'db' } } },
      { id: 'db2', host: 'h2', spec: { security: { anti_affinity_group: 'db' } } },
      { id: 'x', host: 'h3' },
    ],
    want: { hostsUsedAfter: 2, moveCount: 1 },
  },
  {
    name: 'dedicated isolation: nothing joins a dedicated workload',
    hosts: hosts('h1', 'h2', 'h3'),
    workloads: [
      { id: 'ded', host: 'h1', spec: { security: { isolation: 'dedicated' } } },
      { id: 'x', host: 'h2' },
      { id: 'y', host: 'h3' },
    ],
    want: { hostsUsedAfter: 2, moveCount: 1, neverOn: [['x', 'h1'], ['y', 'h1']] },
  },
  {
    name: 'tenant isolation: another tenant never joins, its own may',
    hosts: hosts('h1', 'h2', 'h3'),
    workloads: [
      { id: 'iso', host: 'h1', spec: { tenant: 'a', security: { isolation: 'tenant' } } },
      { id: 'other', host: 'h2', spec: { tenant: 'b' } },
      { id: 'own', host: 'h3', spec: { tenant: 'a' } },
    ],
    want: { hostsUsedAfter: 2, moveCount: 1, neverOn: [['other', 'h1'], ['iso', 'h2']] },
  },
  {
    name: 'trust level: a workload that needs trust never goes below it, even when moving it would be one move instead of three',
    hosts: [{ id: 'secure', trustLevel: 3 }, 'h1'],
    workloads: [
      { id: 's', host: 'secure', spec: mib(2048, { security: { min_trust_level: 3 } }) },
      ...['x', 'y', 'z'].map((id) => ({ id, host: 'h1', spec: mib(1024) })),
    ],
    want: { hostsUsedAfter: 1, moves: [['x', 'h1', 'secure'], ['y', 'h1', 'secure'], ['z', 'h1', 'secure']] },
  },
  {
    name: 'host selector: a workload stays on hosts with its labels, even when moving it would be one move instead of three',
    hosts: [
      { id: 'za', labels: { zone: 'a' } },
      { id: 'zb', labels: { zone: 'b' } },
    ],
    workloads: [
      { id: 'sel', host: 'za', spec: mib(2048, { host_selector: { zone: 'a' } }) },
      ...['x', 'y', 'z'].map((id) => ({ id, host: 'zb', spec: mib(1024) })),
    ],
    want: { hostsUsedAfter: 1, moves: [['x', 'zb', 'za'], ['y', 'zb', 'za'], ['z', 'zb', 'za']] },
  },
  {
    name: 'a cordoned host never receives, even when that would be one move instead of three, but may be emptied',
    hosts: [{ id: 'cordoned', schedulable: false, unschedulableReason: 'cordoned' }, 'h1'],
    workloads: [
      ...['c1', 'c2', 'c3'].map((id) => ({ id, host: 'cordoned', spec: mib(1024) })),
      { id: 'x', host: 'h1', spec: mib(2048) },
    ],
    want: { hostsUsedAfter: 1, moves: [['c1', 'cordoned', 'h1'], ['c2', 'cordoned', 'h1'], ['c3', 'cordoned', 'h1']] },
  },
  {
    name: 'a pinned workload stays and keeps its host in use',
    hosts: hosts('h1', 'h2'),
    workloads: [
      { id: 'p', host: 'h1', pinned: 'stopped' },
      { id: 'x', host: 'h2' },
    ],
    want: { hostsUsedAfter: 1, moves: [['x', 'h2', 'h1']] },
  },
  {
    name: 'published ports: two workloads on one host port stay apart',
    hosts: hosts('h1', 'h2'),
    workloads: [
      { id: 'a', host: 'h1', spec: { ports: [{ host_port: 8080, port: 80 }] } },
      { id: 'b', host: 'h2', spec: { ports: [{ host_port: 8080, port: 80 }] } },
    ],
    want: { hostsUsedAfter: 2, moves: [] },
  },
  {
    name: 'idle hosts are not used',
    hosts: hosts('h1', 'h2', 'idle'),
    workloads: [
      { id: 'a', host: 'h1', spec: mib(5000) },
      { id: 'b', host: 'h2', spec: mib(5000) },
    ],
    want: { hostsUsedAfter: 2, moves: [] },
  },
];

const balance: Case[] = [
  {
    name: 'balance: moves load off the busiest host',
    goal: 'balance',
    hosts: hosts('h1', 'h2', 'h3'),
    workloads: [
      ...[1, 2, 3, 4].map((i) => ({ id: `a${i}`, host: 'h1', spec: mib(1536) })),
      { id: 'b', host: 'h2', spec: mib(1536) },
      { id: 'c', host: 'h3', spec: mib(1536) },
    ],
    want: { hostsUsedAfter: 3, moveCount: 2 },
  },
  {
    name: 'balance: no move on a balanced fleet',
    goal: 'balance',
    hosts: hosts('h1', 'h2'),
    workloads: [
      { id: 'a', host: 'h1', spec: mib(2048) },
      { id: 'b', host: 'h2', spec: mib(2048) },
    ],
    want: { hostsUsedAfter: 2, moves: [] },
  },
  {
    name: 'balance: never puts a workload on an idle host',
    goal: 'balance',
    hosts: hosts('h1', 'h2', 'idle'),
    workloads: [
      ...[1, 2, 3].map((i) => ({ id: `a${i}`, host: 'h1', spec: mib(2048) })),
      { id: 'b', host: 'h2', spec: mib(1024) },
    ],
    want: { hostsUsedAfter: 2, moveCount: 1, neverOn: [['a1', 'idle'], ['a2', 'idle'], ['a3', 'idle']] },
  },
  {
    name: 'balance: respects anti-affinity',
    goal: 'balance',
    hosts: hosts('h1', 'h2'),
    workloads: [
      { id: 'a-web', host: 'h1', spec: mib(2048, { security: { anti_affinity_group: 'web' } }) },
      { id: 'db1', host: 'h1', spec: mib(2048, { security: { anti_affinity_group: 'db' } }) },
      { id: 'db2', host: 'h1', spec: mib(2048, { security: { anti_affinity_group: 'db' } }) },
      { id: 'other', host: 'h2', spec: mib(512, { security: { anti_affinity_group: 'web' } }) },
    ],
    want: { hostsUsedAfter: 2, moves: [['db1', 'h1', 'h2']], neverOn: [['a-web', 'h2']] },
  },
];

describe('planRebalance', () => {
  it.each([...consolidate, ...balance])('$name', (c) => {
    const input = testFleet(c.hosts, c.workloads);
    const plan = planRebalance(input, { goal: c.goal ?? 'consolidate' });
    expect(replay(input, plan), 'every move passes every filter when its turn comes').toEqual([]);
    const { neverOn = [], ...want } = c.want;
    expect({
      hostsUsedAfter: plan.hostsUsedAfter,
      moves: plan.moves.map((m) => [m.workloadId, m.from, m.to]),
      moveCount: plan.moves.length,
      lowerBound: plan.hostsLowerBound,
    }).toMatchObject(want);
    const where = finalHosts(input, plan);
    expect(neverOn.filter(([workload, host]) => where.get(workload) === host), 'workloads that must not end where they did').toEqual([]);
  });

  it('reports the hosts freed and the utilisation before and after', () => {
    const input = testFleet(hosts('h1', 'h2'), [
      { id: 'a', host: 'h1', spec: mib(2048) },
      { id: 'b', host: 'h2', spec: mib(2048) },
    ]);
    const plan = planRebalance(input, { goal: 'consolidate' });
    expect(plan.gain.hostsFreed).toBe(1);
    expect(plan.gain.freedHosts).toHaveLength(1);
    expect([plan.hostsUsedBefore, plan.hostsUsedAfter]).toEqual([2, 1]);
    expect(plan.gain.memory.before).toEqual({ max: 0.25, mean: 0.25, stddev: 0 });
    expect(plan.gain.memory.after).toEqual({ max: 0.5, mean: 0.5, stddev: 0 });
  });

  it('balance lowers the spread of memory utilisation and its maximum', () => {
    const input = testFleet(hosts('h1', 'h2', 'h3', 'h4'), [
      ...[1, 2, 3, 4, 5].map((i) => ({ id: `a${i}`, host: 'h1', spec: mib(1200) })),
      ...[1, 2, 3].map((i) => ({ id: `b${i}`, host: 'h2', spec: mib(1200) })),
      { id: 'c', host: 'h3', spec: mib(1200) },
      { id: 'd', host: 'h4', spec: mib(1200) },
    ]);
    const plan = planRebalance(input, { goal: 'balance' });
    expect(replay(input, plan)).toEqual([]);
    expect(plan.gain.memory.after.stddev).toBeLessThan(plan.gain.memory.before.stddev / 2);
    expect(plan.gain.memory.after.max).toBeLessThan(plan.gain.memory.before.max);
    expect(plan.hostsUsedAfter).toBe(plan.hostsUsedBefore);
  });

  it('lists the pinned workloads with their reasons', () => {
    const input = testFleet(hosts('h1', 'h2'), [
      { id: 'p', host: 'h1', pinned: 'stopped: only running and paused workloads move' },
      { id: 'x', host: 'h2' },
    ]);
    expect(planRebalance(input, { goal: 'consolidate' }).pinned).toEqual([{ workloadId: 'p', name: 'p', hostId: 'h1', reason: 'stopped: only running and paused workloads move' }]);
  });

  it('changes nothing in its input', () => {
    const input = testFleet(hosts('h1', 'h2', 'h3'), [
      { id: 'a', host: 'h1', spec: mib(2048, { security: { anti_affinity_group: 'g' } }) },
      { id: 'b', host: 'h2', spec: mib(2048) },
      { id: 'c', host: 'h3', spec: mib(2048) },
    ]);
    const before = structuredClone(input);
    planRebalance(input, { goal: 'consolidate' });
    planRebalance(input, { goal: 'balance' });
    expect(input).toEqual(before);
  });

  it('is deterministic: the same plan every time, whatever order the input lists hosts and workloads in', () => {
    const ids = Array.from({ length: 12 }, (_, i) => `h${String(i).padStart(2, '0')}`);
    const workloads = Array.from({ length: 30 }, (_, i) => ({ id: `w${i}`, host: ids[(i * 7) % 12]!, spec: mib(512 + ((i * 733) % 2048)) }));
    const first = planRebalance(testFleet(ids, workloads), { goal: 'consolidate' });
    const again = planRebalance(testFleet(ids, workloads), { goal: 'consolidate' });
    const reversed = planRebalance(testFleet([...ids].reverse(), [...workloads].reverse()), { goal: 'consolidate' });
    expect(first.hostsUsedAfter).toBeLessThan(first.hostsUsedBefore);
    expect(again).toEqual(first);
    expect(reversed).toEqual(first);
  });

  it('refuses an input whose workloads do not match the hosts\' bookings', () => {
    const input = testFleet(hosts('h1'), [{ id: 'a', host: 'h1' }]);
    expect(() => planRebalance({ ...input, workloads: [] }, { goal: 'consolidate' })).toThrow(InvalidArgumentError);
    expect(() => planRebalance({ ...input, workloads: [] }, { goal: 'consolidate' })).toThrow(/host h1 books 1 workload\(s\) but 0 are listed/);
  });

  it('refuses an unknown goal', () => {
    expect(() => planRebalance(testFleet(hosts('h1'), []), { goal: 'shuffle' as RebalanceGoal })).toThrow(/goal: must be one of consolidate, balance/);
  });
});
