import { describe, expect, it } from 'vitest';
import { QUEUE_POLICIES, QUEUE_SORTS } from '../catalog.js';
import type { QueuedRequest, QueueSortPlugin } from '../plugins.js';
import { fcfsSort } from './fcfs.js';
import { effectivePriority, prioritySort } from './priority.js';
import { sjfSort } from './sjf.js';

const MINUTE = 60_000;

function req(workloadId: string, arrivalSeq: number, fields: Partial<QueuedRequest> = {}): QueuedRequest {
  return { workloadId, priority: 50, expectedRuntimeSeconds: 3600, arrivalSeq, arrivalMs: arrivalSeq * 1000, ...fields };
}

/** The queue's order under `sort` at `nowMs`, as AdmissionQueue.ordered sorts it. */
function order(sort: QueueSortPlugin, requests: QueuedRequest[], nowMs = 0): string[] {
  return [...requests].sort((a, b) => (sort.less(a, b, nowMs) ? -1 : sort.less(b, a, nowMs) ? 1 : 0)).map((r) => r.workloadId);
}

describe('queue sorts', () => {
  it('are registered under their names, one per policy', () => {
    expect([...QUEUE_SORTS.names()].sort()).toEqual([...QUEUE_POLICIES].sort());
    expect(QUEUE_SORTS.get('fcfs')!({ agingPerMinute: 1 })).toBe(fcfsSort);
    expect(QUEUE_SORTS.get('sjf')!({ agingPerMinute: 1 })).toBe(sjfSort);
    expect(QUEUE_SORTS.get('priority')!({ agingPerMinute: 1 }).name).toBe('priority');
  });

  const table: { name: string; sort: QueueSortPlugin; requests: QueuedRequest[]; nowMs?: number; want: string[] }[] = [
    {
      name: 'fcfs: by arrival, whatever the priority or run time',
      sort: fcfsSort,
      requests: [req('c', 2, { priority: 90, expectedRuntimeSeconds: 1 }), req('a', 0, { priority: 0 }), req('b', 1)],
      want: ['a', 'b', 'c'],
    },
    {
      name: 'sjf: shortest expected run time first',
      sort: sjfSort,
      requests: [req('long', 0, { expectedRuntimeSeconds: 7200 }), req('short', 1, { expectedRuntimeSeconds: 60 }), req('mid', 2, { expectedRuntimeSeconds: 600 })],
      want: ['short', 'mid', 'long'],
    },
    {
      name: 'sjf: equal run times by arrival',
      sort: sjfSort,
      requests: [req('third', 5, { expectedRuntimeSeconds: 60 }), req('first', 1, { expectedRuntimeSeconds: 60 }), req('second', 3, { expectedRuntimeSeconds: 60 }), req('long', 0)],
      want: ['first', 'second', 'third', 'long'],
    },
    {
      name: 'priority: highest first',
      sort: prioritySort(0),
      requests: [req('low', 0, { priority: 10 }), req('high', 2, { priority: 90 }), req('mid', 1, { priority: 50 })],
      want: ['high', 'mid', 'low'],
    },
    {
      name: 'priority: equal priorities by arrival',
      sort: prioritySort(0),
      requests: [req('b', 4, { priority: 70 }), req('c', 9, { priority: 70 }), req('a', 2, { priority: 70 }), req('low', 0, { priority: 1 })],
      want: ['a', 'b', 'c', 'low'],
    },
    {
      name: 'priority with aging: equal priorities still by arrival (the older has aged more)',
      sort: prioritySort(1),
      requests: [req('b', 1, { priority: 70, arrivalMs: 5 * MINUTE }), req('a', 0, { priority: 70, arrivalMs: 0 })],
      nowMs: 10 * MINUTE,
      want: ['a', 'b'],
    },
  ];

  it.each(table)('$name', ({ sort, requests, nowMs, want }) => {
    expect(order(sort, requests, nowMs)).toEqual(want);
  });

  describe('priority aging', () => {
    it('adds agingPerMinute points per minute waited, never fewer than the base', () => {
      const r = req('r', 0, { priority: 10, arrivalMs: 60 * MINUTE });
      expect(effectivePriority(r, 60 * MINUTE, 2)).toBe(10);
      expect(effectivePriority(r, 61.5 * MINUTE, 2)).toBe(13);
      expect(effectivePriority(r, 75 * MINUTE, 2)).toBe(40);
      // A clock behind the arrival does not lower the priority.
      expect(effectivePriority(r, 0, 2)).toBe(10);
    });

    // A low request (priority 10) waits from minute 0; high ones (priority 40) arrive later.
    // With 2 points a minute, it goes ahead of any high request that arrives
    // (40 - 10) / 2 = 15 minutes or more after it: at exactly 15 the effective
    // priorities tie and the earlier arrival wins.
    const low = req('low', 0, { priority: 10, arrivalMs: 0 });
    const highAt = (minute: number) => req(`high@${minute}`, minute + 1, { priority: 40, arrivalMs: minute * MINUTE });

    it.each([
      { arrives: 0, lowFirst: false },
      { arrives: 14, lowFirst: false },
      { arrives: 14.999, lowFirst: false },
      { arrives: 15, lowFirst: true },
      { arrives: 16, lowFirst: true },
    ])('a high request arriving at minute $arrives: low first = $lowFirst', ({ arrives, lowFirst }) => {
      const sort = prioritySort(2);
      const high = highAt(arrives);
      // The relative order holds whenever both are waiting.
      for (const now of [arrives, arrives + 1, arrives + 100]) {
        expect(sort.less(low, high, now * MINUTE), `at minute ${now}`).toBe(lowFirst);
        expect(sort.less(high, low, now * MINUTE), `at minute ${now}`).toBe(!lowFirst);
      }
    });

    it('orders a whole queue: high requests from before minute 15 go first, the low one, then the later ones', () => {
      const highs = [0, 5, 14, 15, 20, 30].map(highAt);
      expect(order(prioritySort(2), [...highs, low], 30 * MINUTE)).toEqual(['high@0', 'high@5', 'high@14', 'low', 'high@15', 'high@20', 'high@30']);
    });

    it('overtakes at the exact minute a fixed-priority competitor is reached', () => {
      // A newcomer arriving at minute m has effective priority 40 at minute m; low has 10 + 2m: ahead from m = 15 on.
      const sort = prioritySort(2);
      for (let minute = 0; minute <= 30; minute++) {
        const newcomer = highAt(minute);
        expect(sort.less(low, newcomer, minute * MINUTE), `minute ${minute}`).toBe(minute >= 15);
      }
    });

    it('never overtakes without aging', () => {
      const sort = prioritySort(0);
      for (const minute of [0, 15, 1000]) expect(sort.less(low, highAt(minute), (minute + 1) * MINUTE)).toBe(false);
    });
  });
});
