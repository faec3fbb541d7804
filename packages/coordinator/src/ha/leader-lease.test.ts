import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '@virtfleet/shared';
import { LEADER_KEY, LeaderLease, type LeaseStore } from './leader-lease.js';

const log = createLogger('test', 'silent');
const TTL_MS = 3000;

/** An in-memory KV key with JetStream's compare-and-set rules; `reachable` cuts one coordinator off. */
class CasKv {
  revision = 0;
  value: string | undefined;
  view(reachable: () => boolean = () => true): LeaseStore {
    const check = () => {
      if (!reachable()) return Promise.reject(new Error('timeout'));
      return Promise.resolve();
    };
    return {
      get: async (key: string) => {
        await check();
        if (key !== LEADER_KEY || this.value === undefined) return null;
        const value = this.value;
        return { key, revision: this.revision, operation: 'PUT', json: <T>() => JSON.parse(value) as T } as never;
      },
      create: async (_key: string, value: unknown) => {
        await check();
        if (this.value !== undefined) throw new Error('wrong last sequence: key exists');
        this.value = String(value);
        return ++this.revision;
      },
      update: async (_key: string, value: unknown, revision: number) => {
        await check();
        if (revision !== this.revision) throw new Error(`wrong last sequence: ${this.revision}`);
        this.value = String(value);
        return ++this.revision;
      },
    } as LeaseStore;
  }
}

describe('LeaderLease', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] }));
  afterEach(() => vi.useRealTimers());

  const timeline: string[] = [];
  const coordinator = (kv: LeaseStore, id: string, holder = `${id}-1`) => {
    const lease = new LeaderLease(
      kv,
      { holder, coordinatorId: id, address: `${id}:7100` },
      { ttlMs: TTL_MS },
      {
        onElected: (term) => void timeline.push(`${performance.now()} ${holder} elected ${term}`),
        onDeposed: (reason) => void timeline.push(`${performance.now()} ${holder} deposed: ${reason}`),
      },
      log,
    );
    lease.start();
    return lease;
  };
  beforeEach(() => void timeline.splice(0));

  it('elects one coordinator and keeps it while it renews', async () => {
    const kv = new CasKv();
    const a = coordinator(kv.view(), 'a');
    await vi.advanceTimersByTimeAsync(10);
    const b = coordinator(kv.view(), 'b');
    await vi.advanceTimersByTimeAsync(10 * TTL_MS);
    expect(a.isLeader).toBe(true);
    expect(b.isLeader).toBe(false);
    expect(timeline).toEqual(['0 a-1 elected 1']);
    expect(kv.revision, 'renewed about three times a TTL').toBeGreaterThan(25);
    await a.stop();
    await b.stop();
  });

  it('moves to a follower only after the leader has stepped down on its own clock', async () => {
    const kv = new CasKv();
    let aReachable = true;
    const a = coordinator(kv.view(() => aReachable), 'a');
    await vi.advanceTimersByTimeAsync(10);
    const b = coordinator(kv.view(), 'b');
    await vi.advanceTimersByTimeAsync(2 * TTL_MS);
    aReachable = false;
    const cutAt = performance.now();
    await vi.advanceTimersByTimeAsync(3 * TTL_MS);
    expect(a.isLeader).toBe(false);
    expect(b.isLeader).toBe(true);
    const at = (suffix: string) => Number(timeline.find((l) => l.includes(suffix))!.split(' ')[0]);
    const deposedAt = at('a-1 deposed');
    const electedAt = at('b-1 elected 2');
    expect(deposedAt, 'the old leader stops first').toBeLessThan(electedAt);
    expect(electedAt - cutAt, 'within a TTL and two checks of the last renewal').toBeLessThanOrEqual(TTL_MS + 2 * (TTL_MS / 3));
    await a.stop();
    await b.stop();
  });

  it('takes its own lease back at once after a store outage deposed it', async () => {
    const kv = new CasKv();
    let reachable = true;
    const a = coordinator(kv.view(() => reachable), 'a');
    await vi.advanceTimersByTimeAsync(10);
    reachable = false;
    await vi.advanceTimersByTimeAsync(TTL_MS + TTL_MS / 3);
    expect(a.isLeader).toBe(false);
    reachable = true;
    const backAt = performance.now();
    await vi.advanceTimersByTimeAsync(TTL_MS / 3 + 10);
    expect(a.isLeader).toBe(true);
    expect(timeline.map((l) => l.replace(/^\d+ /, ''))).toEqual(['a-1 elected 1', 'a-1 deposed: lease expired while the store was unreachable', 'a-1 elected 2']);
    expect(Number(timeline.at(-1)!.split(' ')[0]) - backAt).toBeLessThanOrEqual(TTL_MS / 3 + 10);
    await a.stop();
  });

  it('hands the lease over at once when the leader stops, or when an earlier run of the same id left it', async () => {
    const kv = new CasKv();
    const first = coordinator(kv.view(), 'a', 'a-1');
    await vi.advanceTimersByTimeAsync(10);
    // a-1 dies without handing back; its restart (same id, new holder) need not wait a TTL.
    await first.stop();
    kv.value = JSON.stringify({ ...JSON.parse(kv.value!), expiresAtMs: Date.now() + TTL_MS });
    const again = coordinator(kv.view(), 'a', 'a-2');
    await vi.advanceTimersByTimeAsync(10);
    expect(again.isLeader).toBe(true);
    const b = coordinator(kv.view(), 'b');
    await vi.advanceTimersByTimeAsync(TTL_MS);
    const stoppedAt = performance.now();
    await again.stop();
    await vi.advanceTimersByTimeAsync(TTL_MS / 3 + 10);
    expect(b.isLeader).toBe(true);
    const [electedAt, what] = timeline.at(-1)!.split(/ (.*)/);
    expect(what).toBe('b-1 elected 3');
    expect(Number(electedAt) - stoppedAt, 'at its next check, not a TTL later').toBeLessThanOrEqual(TTL_MS / 3 + 10);
    await b.stop();
  });

  it('allows writes only while the last renewal is younger than four fifths of the TTL, before the lease itself lapses', async () => {
    const kv = new CasKv();
    let reachable = true;
    const a = coordinator(kv.view(() => reachable), 'a');
    await vi.advanceTimersByTimeAsync(10);
    expect(a.mayWrite).toBe(true);
    reachable = false;
    const cutAt = performance.now();
    await vi.advanceTimersByTimeAsync(TTL_MS * 0.8 - (TTL_MS / 3) - 10);
    expect(a.mayWrite, 'renewed at most a check before the cut').toBe(true);
    await vi.advanceTimersByTimeAsync(TTL_MS / 3 + 20);
    expect(performance.now() - cutAt).toBeLessThan(TTL_MS);
    expect(a.mayWrite).toBe(false);
    expect(a.isLeader, 'still within its lease, yet no longer writing').toBe(true);
    await a.stop();
  });

  it('steps down at once when told that another coordinator has written', async () => {
    const kv = new CasKv();
    const a = coordinator(kv.view(), 'a');
    await vi.advanceTimersByTimeAsync(10);
    a.stepDown('a record was changed by another coordinator');
    expect(a.isLeader).toBe(false);
    expect(a.mayWrite).toBe(false);
    expect(timeline.at(-1)).toMatch(/a-1 deposed: a record was changed by another coordinator$/);
    await a.stop();
  });
});
