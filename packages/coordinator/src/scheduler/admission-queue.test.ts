import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, parseWorkloadSpec } from '@virtfleet/shared';
import { AdmissionQueue, type AdmissionQueueOptions } from './admission-queue.js';
import type { QueuePolicy } from './catalog.js';
import { createScheduler } from './create-scheduler.js';
import { hostSnapshot } from './host-snapshot.test-support.js';
import type { HostSnapshot } from './scheduler.js';

const MINUTE = 60_000;

function host(id: string, vcpus: number, usedVcpus = 0): HostSnapshot {
  return hostSnapshot(id, {
    capacity: { vcpus, memoryMiB: 65536, diskGiB: 1000 },
    allocatable: { vcpus, memoryMiB: 65536, diskGiB: 1000 },
    allocated: { vcpus: usedVcpus, memoryMiB: 0, diskGiB: 0 },
    memoryAvailableMiB: 65536,
    workloadCount: usedVcpus > 0 ? 1 : 0,
    tenants: usedVcpus > 0 ? new Map([['default', 1]]) : new Map(),
  });
}

const spec = (fields: Record<string, unknown> = {}) => parseWorkloadSpec({ name: 'w', kind: 'vm', vcpus: 1, memory_mib: 512, ...fields });
const queue = (options: Partial<AdmissionQueueOptions> = {}) => new AdmissionQueue({ policy: 'fcfs', agingPerMinute: 1, backfill: true, ...options });
const scheduler = () => createScheduler({ placement: 'binpack', weights: {}, candidateLimit: 0 });
const ids = (entries: { workloadId: string }[]) => entries.map((e) => e.workloadId);

describe('AdmissionQueue', () => {
  describe('the head of the queue', () => {
    // One host with 4 vCPUs, 3 in use: the 2-vCPU head does not fit, the 1-vCPU request behind it does.
    function blockedHead(backfill: boolean) {
      const q = queue({ backfill });
      q.add('big', spec({ vcpus: 2 }), 0);
      q.add('small', spec({ vcpus: 1 }), 1);
      q.add('also-big', spec({ vcpus: 2 }), 2);
      const hosts = [host('h1', 4, 3)];
      return { q, hosts, result: q.pass(scheduler(), hosts, 10) };
    }

    it('backfill: a small request behind a blocked head is placed past it', () => {
      const { q, hosts, result } = blockedHead(true);
      expect(result.placed.map((p) => [p.entry.workloadId, p.record.hostId])).toEqual([['small', 'h1']]);
      expect(ids(result.waiting.map((w) => w.entry))).toEqual(['big', 'also-big']);
      expect(result.waiting[0]!.record.summary).toBe('1 host: 1 insufficient cpu');
      expect(result.blockedBehind).toBeUndefined();
      expect(ids(q.ordered(10))).toEqual(['big', 'also-big']);
      // The placement is booked on the snapshot.
      expect(hosts[0]!.allocated.vcpus).toBe(4);
    });

    it('strict: the pass stops at the blocked head', () => {
      const { q, hosts, result } = blockedHead(false);
      expect(result.placed).toEqual([]);
      expect(ids(result.waiting.map((w) => w.entry))).toEqual(['big']);
      expect(result.blockedBehind).toBe('big');
      expect(ids(q.ordered(10))).toEqual(['big', 'small', 'also-big']);
      expect(hosts[0]!.allocated.vcpus).toBe(3);
    });

    it('strict: places in order up to the first request that does not fit', () => {
      const q = queue({ backfill: false });
      q.add('a', spec({ vcpus: 2 }), 0);
      q.add('b', spec({ vcpus: 2 }), 1);
      q.add('c', spec({ vcpus: 1 }), 2);
      const result = q.pass(scheduler(), [host('h1', 3)], 10);
      expect(ids(result.placed.map((p) => p.entry))).toEqual(['a']);
      expect(result.blockedBehind).toBe('b');
      expect(q.size).toBe(2);
    });

    it('each placement in a pass sees the ones before it', () => {
      const q = queue();
      for (let i = 0; i < 5; i++) q.add(`w${i}`, spec({ vcpus: 1, security: { anti_affinity_group: 'g' } }), i);
      const result = q.pass(scheduler(), [host('h1', 8), host('h2', 8), host('h3', 8)], 10);
      expect(result.placed.map((p) => p.record.hostId).sort()).toEqual(['h1', 'h2', 'h3']);
      expect(ids(result.waiting.map((w) => w.entry))).toEqual(['w3', 'w4']);
      expect(result.waiting[0]!.record.summary).toBe('3 hosts: 3 anti-affinity group g present');
    });
  });

  describe('hosts to avoid', () => {
    it('a request never goes to a host it avoids, and says so while nothing else fits', () => {
      const q = queue();
      q.add('moved', spec(), 0, undefined, ['h1']);
      q.add('fresh', spec(), 1);
      const result = q.pass(scheduler(), [host('h1', 8)], 10);
      expect(result.placed.map((p) => [p.entry.workloadId, p.record.hostId])).toEqual([['fresh', 'h1']]);
      expect(result.waiting.map((w) => [w.entry.workloadId, w.record.summary])).toEqual([['moved', '1 host: 1 being left by this workload']]);
      const next = q.pass(scheduler(), [host('h1', 8), host('h2', 8)], 20);
      expect(next.placed.map((p) => [p.entry.workloadId, p.record.hostId])).toEqual([['moved', 'h2']]);
    });
  });

  describe('policies', () => {
    function filled() {
      const q = queue();
      q.add('a', spec({ priority: 10, expected_runtime_seconds: 600 }), 0);
      q.add('b', spec({ priority: 90, expected_runtime_seconds: 7200 }), 0);
      q.add('c', spec({ priority: 50, expected_runtime_seconds: 60 }), 0);
      q.add('d', spec({ priority: 50 }), 0); // no run time: 3600
      return q;
    }

    it('configure switches the order at runtime', () => {
      const q = filled();
      expect(ids(q.ordered(0))).toEqual(['a', 'b', 'c', 'd']);
      q.configure({ policy: 'sjf' });
      expect(ids(q.ordered(0))).toEqual(['c', 'a', 'd', 'b']);
      q.configure({ policy: 'priority' });
      expect(q.policy).toBe('priority');
      expect(ids(q.ordered(0))).toEqual(['b', 'c', 'd', 'a']);
      q.configure({ policy: 'fcfs' });
      expect(ids(q.ordered(0))).toEqual(['a', 'b', 'c', 'd']);
    });

    it('configure changes the aging rate of the priority policy', () => {
      const q = queue({ policy: 'priority', agingPerMinute: 0 });
      q.add('old-low', spec({ priority: 10 }), 0);
      q.add('new-high', spec({ priority: 40 }), 10 * MINUTE);
      expect(ids(q.ordered(20 * MINUTE))).toEqual(['new-high', 'old-low']);
      q.configure({ agingPerMinute: 3 }); // 10 minutes older × 3 = 30 points: a tie, and the older wins
      expect(q.agingPerMinute).toBe(3);
      expect(ids(q.ordered(20 * MINUTE))).toEqual(['old-low', 'new-high']);
    });

    it('configure switches strict and backfill', () => {
      const q = queue({ backfill: true });
      q.configure({ backfill: false });
      expect(q.backfill).toBe(false);
      q.add('big', spec({ vcpus: 2 }), 0);
      q.add('small', spec({ vcpus: 1 }), 1);
      expect(q.pass(scheduler(), [host('h1', 1)], 0).placed).toEqual([]);
    });

    it('an unknown policy throws InvalidArgumentError and leaves the queue unchanged', () => {
      const q = filled();
      q.configure({ policy: 'sjf', backfill: false });
      let error: unknown;
      try {
        q.configure({ policy: 'lifo' as QueuePolicy, backfill: true, agingPerMinute: 7 });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error).toMatchObject({ field: 'policy', reason: 'must be one of fcfs, sjf, priority' });
      expect([q.policy, q.backfill, q.agingPerMinute, q.size]).toEqual(['sjf', false, 1, 4]);
      expect(ids(q.ordered(0))).toEqual(['c', 'a', 'd', 'b']);
    });

    it('an unknown policy is refused at construction too', () => {
      expect(() => queue({ policy: 'random' as QueuePolicy })).toThrow(InvalidArgumentError);
    });
  });

  describe('entries', () => {
    it('a request already queued keeps its place and its first spec', () => {
      const q = queue();
      const first = q.add('a', spec({ vcpus: 1 }), 0);
      q.add('b', spec(), 1);
      const again = q.add('a', spec({ vcpus: 4 }), 5);
      expect(again).toBe(first);
      expect(again.spec.vcpus).toBe(1);
      expect(ids(q.ordered(0))).toEqual(['a', 'b']);
      expect(q.size).toBe(2);
    });

    it('arrival numbers increase, also past an explicit one', () => {
      const q = queue();
      expect(q.add('a', spec(), 0).arrivalSeq).toBe(0);
      expect(q.add('b', spec(), 0, 10).arrivalSeq).toBe(10);
      expect(q.add('c', spec(), 0).arrivalSeq).toBe(11);
    });

    it('records the run time SJF orders by, 3600 s when none is given', () => {
      const q = queue();
      expect(q.add('a', spec(), 0).expectedRuntimeSeconds).toBe(3600);
      expect(q.add('b', spec({ expected_runtime_seconds: 42 }), 0).expectedRuntimeSeconds).toBe(42);
    });

    it('remove and has', () => {
      const q = queue();
      q.add('a', spec(), 0);
      expect(q.has('a')).toBe(true);
      expect(q.remove('a')).toBe(true);
      expect(q.remove('a')).toBe(false);
      expect([q.has('a'), q.size]).toEqual([false, 0]);
    });
  });
});
