import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, parseWorkloadSpec } from '@virtfleet/shared';
import type { PlacementPolicy, QueuePolicy } from '../scheduler/catalog.js';
import type { SimHost } from './hosts-file.js';
import { percentile, simulate, type SimulationOptions, type SimulationResult } from './simulator.js';
import type { Arrival } from './trace.js';

/** A container arriving at `time` that runs `runtime` seconds; 1 vcpu and 64 MiB unless `fields` say otherwise. */
function job(name: string, time: number, runtime: number, fields: Record<string, unknown> = {}): Arrival {
  return { time, runtime, spec: parseWorkloadSpec({ name, kind: 'container', image: 'sim:latest', vcpus: 1, memory_mib: 64, expected_runtime_seconds: runtime, ...fields }) };
}

function host(id: string, vcpus: number, memoryMiB: number, extra: Partial<SimHost> = {}): SimHost {
  return {
    id,
    capacity: { vcpus, memoryMiB, diskGiB: 1000 },
    reserved: { vcpus: 0, memoryMiB: 0, diskGiB: 0 },
    overcommit: { cpu: 1, memory: 1 },
    labels: {},
    trustLevel: 0,
    features: [],
    kinds: ['vm', 'container'],
    ...extra,
  };
}

function run(options: Partial<SimulationOptions> & Pick<SimulationOptions, 'arrivals' | 'hosts'>): SimulationResult {
  return simulate({ queuePolicy: 'fcfs', placement: 'binpack', ...options });
}

/** Per job name: [start, wait, response]. */
function timings(result: SimulationResult): Record<string, [number | undefined, number | undefined, number | undefined]> {
  return Object.fromEntries(result.job_results.map((j) => [j.name, [j.start, j.wait, j.response]]));
}

const oneCpu = [host('h1', 1, 1024)];
const burst = (priorities: [number, number, number] = [50, 50, 50]) => [
  job('a', 0, 24, { priority: priorities[0] }),
  job('b', 0, 3, { priority: priorities[1] }),
  job('c', 0, 3, { priority: priorities[2] }),
];

describe('simulate: hand-computed schedules on one host that runs one job at a time', () => {
  const cases: {
    name: string;
    queuePolicy: QueuePolicy;
    arrivals: Arrival[];
    agingPerMinute?: number;
    /** [start, wait, response] per job. */
    want: Record<string, [number, number, number]>;
    waiting: { mean: number; p50: number; p95: number };
    response: { mean: number; p50: number; p95: number };
    makespan: number;
  }[] = [
    {
      name: 'FCFS runs 24, 3, 3 in arrival order: waits 0, 24, 27',
      queuePolicy: 'fcfs',
      arrivals: burst(),
      want: { a: [0, 0, 24], b: [24, 24, 27], c: [27, 27, 30] },
      waiting: { mean: 17, p50: 24, p95: 27 },
      response: { mean: 27, p50: 27, p95: 30 },
      makespan: 30,
    },
    {
      name: 'SJF runs the two 3s first: waits 0, 3, 6',
      queuePolicy: 'sjf',
      arrivals: burst(),
      want: { b: [0, 0, 3], c: [3, 3, 6], a: [6, 6, 30] },
      waiting: { mean: 3, p50: 3, p95: 6 },
      response: { mean: 13, p50: 6, p95: 30 },
      makespan: 30,
    },
    {
      name: 'priority 10, 50, 90 runs c, b, a',
      queuePolicy: 'priority',
      arrivals: burst([10, 50, 90]),
      want: { c: [0, 0, 3], b: [3, 3, 6], a: [6, 6, 30] },
      waiting: { mean: 3, p50: 3, p95: 6 },
      response: { mean: 13, p50: 6, p95: 30 },
      makespan: 30,
    },
    {
      name: 'priority 50, 10, 90 runs c, a, b: the long job ahead of a short one',
      queuePolicy: 'priority',
      arrivals: burst([50, 10, 90]),
      want: { c: [0, 0, 3], a: [3, 3, 27], b: [27, 27, 30] },
      waiting: { mean: 10, p50: 3, p95: 27 },
      response: { mean: 20, p50: 27, p95: 30 },
      makespan: 30,
    },
    {
      // At t=100 (aging 1 point per second): l = 0 + 99, h1 = 50 + 10, h2 = 95 + 5. h2 runs, then l (109 vs 70), then h1.
      name: 'aging: a low-priority job waiting since t=1 overtakes a later priority-50 arrival',
      queuePolicy: 'priority',
      agingPerMinute: 60,
      arrivals: [job('blocker', 0, 100, { priority: 100 }), job('l', 1, 10, { priority: 0 }), job('h1', 90, 10, { priority: 50 }), job('h2', 95, 10, { priority: 95 })],
      want: { blocker: [0, 0, 100], h2: [100, 5, 15], l: [110, 109, 119], h1: [120, 30, 40] },
      waiting: { mean: 36, p50: 5, p95: 109 },
      response: { mean: 68.5, p50: 40, p95: 119 },
      makespan: 130,
    },
    {
      name: 'the same without aging: l waits for both higher priorities',
      queuePolicy: 'priority',
      agingPerMinute: 0,
      arrivals: [job('blocker', 0, 100, { priority: 100 }), job('l', 1, 10, { priority: 0 }), job('h1', 90, 10, { priority: 50 }), job('h2', 95, 10, { priority: 95 })],
      want: { blocker: [0, 0, 100], h2: [100, 5, 15], h1: [110, 20, 30], l: [120, 119, 129] },
      waiting: { mean: 36, p50: 5, p95: 119 },
      response: { mean: 68.5, p50: 30, p95: 129 },
      makespan: 130,
    },
  ];

  it.each(cases)('$name', ({ queuePolicy, arrivals, agingPerMinute, want, waiting, response, makespan }) => {
    const result = run({ arrivals, hosts: oneCpu, queuePolicy, ...(agingPerMinute === undefined ? {} : { agingPerMinute }) });
    expect(timings(result)).toEqual(want);
    expect(result.waiting).toEqual(waiting);
    expect(result.response).toEqual(response);
    expect(result.makespan).toBe(makespan);
    expect({ placed: result.placed, rejected: result.rejected, unplaced: result.unplaced }).toEqual({ placed: arrivals.length, rejected: 0, unplaced: 0 });
  });
});

describe('simulate: a big job blocked at the head of the queue', () => {
  // One 4-vcpu host. a takes 3 vcpus for 10 s; big needs all 4; s1 and s2 need 1 each for 2 s.
  const arrivals = [job('a', 0, 10, { vcpus: 3 }), job('big', 0, 5, { vcpus: 4 }), job('s1', 0, 2), job('s2', 0, 2)];
  const cases = [
    {
      name: 'backfill: s1 takes the free vcpu at once, s2 follows when s1 ends',
      backfill: true,
      want: { a: [0, 0, 10], big: [10, 10, 15], s1: [0, 0, 2], s2: [2, 2, 4] },
      meanWait: 3,
    },
    {
      name: 'strict: s1 and s2 wait behind big until it ends',
      backfill: false,
      want: { a: [0, 0, 10], big: [10, 10, 15], s1: [15, 15, 17], s2: [15, 15, 17] },
      meanWait: 10,
    },
  ];
  it.each(cases)('$name', ({ backfill, want, meanWait }) => {
    const result = run({ arrivals, hosts: [host('h1', 4, 1024)], backfill });
    expect(timings(result)).toEqual(want);
    expect(result.waiting.mean).toBe(meanWait);
  });
});

describe('simulate: rejections and requests that never fit', () => {
  const hosts = [host('h1', 4, 4096), host('h2', 4, 4096)];

  it('rejects a request no empty host could run, with the scheduler summary as its reason', () => {
    const result = run({
      hosts,
      arrivals: [job('ok', 0, 10, { memory_mib: 512 }), job('huge', 0, 10, { memory_mib: 8192 }), job('enclave', 5, 10, { security: { required_features: ['sgx'] } })],
    });
    expect({ placed: result.placed, rejected: result.rejected, unplaced: result.unplaced }).toEqual({ placed: 1, rejected: 2, unplaced: 0 });
    expect(result.rejections).toEqual([
      { reason: '2 hosts: 2 insufficient memory', count: 1 },
      { reason: '2 hosts: 2 missing feature sgx', count: 1 },
    ]);
    const outcomes = Object.fromEntries(result.job_results.map((j) => [j.name, [j.outcome, j.reason]]));
    expect(outcomes).toEqual({
      ok: ['completed', undefined],
      huge: ['rejected', '2 hosts: 2 insufficient memory'],
      enclave: ['rejected', '2 hosts: 2 missing feature sgx'],
    });
    expect(result.waiting).toEqual({ mean: 0, p50: 0, p95: 0 });
  });

  it('in a strict queue, a rejected head does not hold back the requests behind it', () => {
    const result = run({ hosts, backfill: false, arrivals: [job('huge', 0, 10, { memory_mib: 8192 }), job('small', 0, 10)] });
    expect(timings(result).small).toEqual([0, 0, 10]);
    expect(result.rejected).toBe(1);
  });

  it('rejects headroom larger than any host, so it blocks nothing even in strict order', () => {
    const arrivals = [job('greedy', 0, 10, { memory_mib: 512, performance: { memory_headroom_mib: 4000 } }), job('after', 1, 10)];
    for (const backfill of [false, true]) {
      const result = run({ hosts: [host('h1', 4, 4096)], backfill, arrivals });
      expect(result.job_results.map((j) => [j.name, j.outcome, j.reason ?? '', j.start ?? null])).toEqual([
        ['greedy', 'rejected', '1 host: 1 insufficient memory headroom', null],
        ['after', 'completed', '', 1],
      ]);
      expect({ placed: result.placed, unplaced: result.unplaced }).toEqual({ placed: 1, unplaced: 0 });
    }
  });
});

describe('simulate: placement policy', () => {
  const cases: { placement: PlacementPolicy; want: string[] }[] = [
    { placement: 'binpack', want: ['h1', 'h1'] },
    { placement: 'spread', want: ['h1', 'h2'] },
  ];
  it.each(cases)('$placement puts two small jobs on $want', ({ placement, want }) => {
    const result = run({ placement, hosts: [host('h1', 4, 4096), host('h2', 4, 4096)], arrivals: [job('j1', 0, 10, { memory_mib: 512 }), job('j2', 0, 10, { memory_mib: 512 })] });
    expect(result.job_results.map((j) => j.host)).toEqual(want);
  });
});

describe('simulate: utilisation and fragmentation', () => {
  // Two hosts of 2 vcpus and 1000 MiB. a and b (600 MiB each) fill one host each for 10 s;
  // c (800 MiB) fits on neither 400 MiB remainder, waits, and runs on h1 from 10 to 15.
  const result = run({
    hosts: [host('h1', 2, 1000), host('h2', 2, 1000)],
    arrivals: [job('a', 0, 10, { memory_mib: 600 }), job('b', 0, 10, { memory_mib: 600 }), job('c', 0, 5, { memory_mib: 800 })],
    buckets: 3,
  });

  it('places as expected', () => {
    expect(result.job_results.map((j) => [j.name, j.host, j.start])).toEqual([
      ['a', 'h1', 0],
      ['b', 'h2', 0],
      ['c', 'h1', 10],
    ]);
    expect(result.waiting).toEqual({ mean: 10 / 3, p50: 0, p95: 10 });
    expect(result.makespan).toBe(15);
  });

  it('means are time-weighted over [0, makespan]: cpu (0.5*10 + 0.25*5)/15, memory (0.6*10 + 0.4*5)/15', () => {
    expect(result.utilisation.cpu).toBeCloseTo(6.25 / 15, 12);
    expect(result.utilisation.memory).toBeCloseTo(8 / 15, 12);
  });

  it('splits the makespan into equal buckets', () => {
    const series = result.utilisation.series.map((b) => [b.start, b.end, b.cpu, Number(b.memory.toFixed(12))]);
    expect(series).toEqual([
      [0, 5, 0.5, 0.6],
      [5, 10, 0.5, 0.6],
      [10, 15, 0.25, 0.4],
    ]);
  });

  it('samples fragmentation when something is left waiting: 1 - 400/800 at t=0, never again', () => {
    expect(result.fragmentation).toEqual({ mean: 0.5, samples: 1 });
  });

  it('is 0 when nothing ever waits', () => {
    const idle = run({ hosts: [host('h1', 2, 1000), host('h2', 2, 1000)], arrivals: [job('a', 0, 10)] });
    expect(idle.fragmentation).toEqual({ mean: 0, samples: 0 });
  });
});

describe('simulate: determinism and input handling', () => {
  const hosts = [host('h1', 2, 2048), host('h2', 4, 4096)];
  const arrivals = [job('late', 30, 5), job('x', 0, 20, { vcpus: 2 }), job('y', 0, 15, { vcpus: 3 }), job('z', 1, 7, { vcpus: 2 })];

  it('gives identical results for identical inputs, and sorts arrivals by time itself', () => {
    const first = run({ hosts, arrivals, queuePolicy: 'sjf' });
    expect(run({ hosts, arrivals, queuePolicy: 'sjf' })).toEqual(first);
    expect(first.job_results.map((j) => j.name)).toEqual(['x', 'y', 'z', 'late']);
  });

  it('rejects unknown policies with InvalidArgumentError', () => {
    expect(() => run({ hosts, arrivals, queuePolicy: 'lifo' as QueuePolicy })).toThrow(InvalidArgumentError);
    expect(() => run({ hosts, arrivals, placement: 'random' as PlacementPolicy })).toThrow(/placement: must be one of binpack, spread/);
  });
});

describe('percentile (nearest rank)', () => {
  const cases: { name: string; values: number[]; p: number; want: number }[] = [
    { name: 'empty', values: [], p: 50, want: 0 },
    { name: 'one value', values: [7], p: 95, want: 7 },
    { name: 'p50 of 1..10', values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], p: 50, want: 5 },
    { name: 'p95 of 1..20', values: Array.from({ length: 20 }, (_, i) => i + 1), p: 95, want: 19 },
    { name: 'p95 of 1..60 (rank exactly 57)', values: Array.from({ length: 60 }, (_, i) => i + 1), p: 95, want: 57 },
    { name: 'p95 of three', values: [0, 24, 27], p: 95, want: 27 },
  ];
  it.each(cases)('$name', ({ values, p, want }) => expect(percentile(values, p)).toBe(want));
});
