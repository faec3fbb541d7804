import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger, type NatsConnection } from '@virtfleet/shared';
import { HostLease, type Fenceable, type LeaseBucket } from './host-lease.js';

const log = createLogger('test', 'silent');
const FENCE_TIMEOUT_MS = 1500;
const RENEW_MS = 500;

/** A bucket whose puts are acknowledged only when the test says so. */
class ControlledBucket {
  readonly pending: (() => void)[] = [];
  /** The key of every put, in order. */
  readonly keys: string[] = [];
  get: LeaseBucket['get'] = () => Promise.resolve(null);
  put: LeaseBucket['put'] = (key) =>
    new Promise<number>((resolve) => {
      this.keys.push(key);
      this.pending.push(() => resolve(1));
    });
  ackAll(): void {
    for (const ack of this.pending.splice(0)) ack();
  }
}

class RecordingHost implements Fenceable {
  readonly log: string[] = [];
  fence(): Promise<{ stopped: number; failed: number }> {
    this.log.push('fence');
    return Promise.resolve({ stopped: 1, failed: 0 });
  }
  setLeaseHeld(held: boolean): void {
    this.log.push(held ? 'held' : 'lost');
  }
}

describe('HostLease timing (fake clock and bucket)', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout', 'performance'] }));
  afterEach(() => vi.useRealTimers());

  const start = async (phase?: number) => {
    const bucket = new ControlledBucket();
    const host = new RecordingHost();
    const lease = new HostLease({} as NatsConnection, 'h1', 'boot', { bucket: 'b', fenceTimeoutMs: FENCE_TIMEOUT_MS, renewIntervalMs: RENEW_MS, phase }, host, log, undefined, () => Promise.resolve(bucket));
    await lease.start();
    return { bucket, host, lease };
  };

  it('holds the lease once a renewal is acknowledged, and fences when none is for the fence timeout', async () => {
    const { bucket, host, lease } = await start();
    expect(lease.held, 'not before the first acknowledgement').toBe(false);
    bucket.ackAll();
    await vi.advanceTimersByTimeAsync(10);
    expect(lease.held).toBe(true);
    // Acknowledgements stop: the renewal sent at 0 ms was the last confirmed one.
    await vi.advanceTimersByTimeAsync(FENCE_TIMEOUT_MS - 100);
    expect(host.log).not.toContain('fence');
    await vi.advanceTimersByTimeAsync(400);
    expect(host.log.filter((e) => e === 'fence')).toHaveLength(1);
    expect(lease.held).toBe(false);
    lease.stop();
  });

  it('does not take a late acknowledgement of an old renewal as holding the lease', async () => {
    const { bucket, host, lease } = await start();
    bucket.ackAll();
    await vi.advanceTimersByTimeAsync(RENEW_MS - 10);
    expect(lease.held).toBe(true);
    // Renewals go unanswered past the fence timeout (each still sent, one per interval), then the oldest one's acknowledgement arrives.
    await vi.advanceTimersByTimeAsync(FENCE_TIMEOUT_MS + 300);
    expect(host.log).toContain('fence');
    expect(bucket.pending.length, 'a hung renewal does not hold the later ones back').toBeGreaterThan(1);
    const afterFence = host.log.length;
    bucket.pending.shift()!();
    await vi.advanceTimersByTimeAsync(1);
    expect(host.log.slice(afterFence), 'stale acknowledgements grant nothing').not.toContain('held');
    expect(lease.held).toBe(false);
    // A fresh renewal, acknowledged at once, does.
    await vi.advanceTimersByTimeAsync(RENEW_MS);
    bucket.ackAll();
    await vi.advanceTimersByTimeAsync(1);
    expect(lease.held).toBe(true);
    expect(host.log.filter((e) => e === 'fence'), 'fenced once').toHaveLength(1);
    lease.stop();
  });

  it('release (the fencer without its agent) fences, stores the fence record and renews no more', async () => {
    const { bucket, host, lease } = await start();
    bucket.ackAll();
    await vi.advanceTimersByTimeAsync(10);
    expect(lease.held).toBe(true);
    const released = lease.release('no agent', 5000);
    await vi.advanceTimersByTimeAsync(10);
    bucket.ackAll();
    await expect(released).resolves.toBe(true);
    expect(host.log.filter((e) => e === 'fence')).toHaveLength(1);
    expect(bucket.keys.at(-1), 'the fence record, after every renewal').toBe('fence.h1');
    const puts = bucket.keys.length;
    await vi.advanceTimersByTimeAsync(4 * RENEW_MS);
    expect(bucket.keys.length, 'no renewal after the release').toBe(puts);
    expect(lease.held).toBe(false);
  });

  it.each([
    { phase: 0, want: [0, 500, 1000, 1500] },
    { phase: 0.4, want: [0, 200, 700, 1200] },
    { phase: 0.9, want: [0, 450, 950, 1450] },
  ])('renews at once, then from phase $phase of the interval on, never more than an interval apart', async ({ phase, want }) => {
    const t0 = performance.now();
    const sentAt: number[] = [];
    const { bucket, lease } = await start(phase);
    const record = () => {
      while (sentAt.length < bucket.keys.length) sentAt.push(performance.now() - t0);
      bucket.ackAll();
    };
    record();
    for (let t = 0; t < 1600; t += 10) {
      await vi.advanceTimersByTimeAsync(10);
      record();
    }
    lease.stop();
    expect(sentAt.slice(0, 4).map((t) => Math.round(t / 10) * 10)).toEqual(want);
    expect(lease.held).toBe(true);
  });
});
