import { describe, expect, it } from 'vitest';
import { loadCoordinatorConfig } from '../config.js';
import { disruptionOf, TokenBucket, type FailoverLimits, type FailoverMode } from './failover-limits.js';

describe('TokenBucket (fake clock)', () => {
  const cases: { name: string; rate: number; burst: number; takes: number[]; want: boolean[]; waitAfterMs?: number }[] = [
    { name: 'a full bucket gives its burst at once, then nothing', rate: 2, burst: 3, takes: [0, 0, 0, 0], want: [true, true, true, false] },
    { name: 'one token per 1/rate seconds after the burst', rate: 2, burst: 1, takes: [0, 0, 499, 500, 999, 1000], want: [true, false, false, true, false, true] },
    { name: 'a quiet spell saves up no more than the burst', rate: 10, burst: 2, takes: [0, 0, 10_000, 10_000, 10_000], want: [true, true, true, true, false] },
    { name: 'fractional rates: one every 4 s at 0.25 per second', rate: 0.25, burst: 1, takes: [0, 3_999, 4_000], want: [true, false, true] },
  ];
  it.each(cases)('$name', ({ rate, burst, takes, want }) => {
    let now = 1_000_000;
    const start = now;
    const bucket = new TokenBucket(rate, burst, () => now);
    const got = takes.map((at) => {
      now = start + at;
      return bucket.tryTake();
    });
    expect(got).toEqual(want);
  });

  it('says how long until the next tokens, counting at most the burst', () => {
    let now = 0;
    const bucket = new TokenBucket(4, 2, () => now);
    expect(bucket.msUntil()).toBe(0);
    expect(bucket.tryTake() && bucket.tryTake()).toBe(true);
    expect(bucket.msUntil()).toBe(250);
    expect(bucket.msUntil(2)).toBe(500);
    expect(bucket.msUntil(5), 'no more than the burst').toBe(500);
    now = 100;
    expect(bucket.msUntil()).toBe(150);
    now = 250;
    expect(bucket.msUntil()).toBe(0);
    expect(bucket.msUntil(2)).toBe(250);
  });

  const switches: { name: string; rate: number; burst: number; steps: ({ at: number; take: boolean } | { at: number; rate: number })[]; want: boolean[] }[] = [
    {
      name: 'slowing down keeps the tokens earned so far, and earns at the new rate after',
      rate: 10,
      burst: 2,
      // Empty at 0; 100 ms at 10/s earn one token; from then on one a second.
      steps: [{ at: 0, take: true }, { at: 0, take: true }, { at: 100, rate: 1 }, { at: 100, take: true }, { at: 100, take: false }, { at: 1_099, take: false }, { at: 1_100, take: true }],
      want: [true, true, true, false, false, true],
    },
    {
      name: 'a switch does not top the bucket up',
      rate: 1,
      burst: 3,
      steps: [{ at: 0, take: true }, { at: 0, take: true }, { at: 0, take: true }, { at: 0, rate: 10 }, { at: 0, take: false }, { at: 100, take: true }, { at: 100, take: false }],
      want: [true, true, true, false, true, false],
    },
    {
      name: 'a switch does not empty a full bucket: its burst still goes at once',
      rate: 10,
      burst: 2,
      steps: [{ at: 0, rate: 1 }, { at: 0, take: true }, { at: 0, take: true }, { at: 0, take: false }, { at: 1_000, take: true }],
      want: [true, true, false, true],
    },
    {
      name: 'speeding up counts the time before the switch at the old rate',
      rate: 1,
      burst: 5,
      // Empty at 0; 500 ms at 1/s is half a token, then 50 ms at 10/s the other half.
      steps: [...Array.from({ length: 5 }, () => ({ at: 0, take: true })), { at: 500, rate: 10 }, { at: 549, take: false }, { at: 550, take: true }],
      want: [true, true, true, true, true, false, true],
    },
  ];
  it.each(switches)('setRate: $name', ({ rate, burst, steps, want }) => {
    let now = 0;
    const bucket = new TokenBucket(rate, burst, () => now);
    const got: boolean[] = [];
    for (const step of steps) {
      now = step.at;
      if ('rate' in step) bucket.setRate(step.rate);
      else got.push(bucket.tryTake());
    }
    expect(got).toEqual(want);
  });

  it('setRate reports the new rate and refuses a rate at which nothing would ever be due', () => {
    const bucket = new TokenBucket(10, 1, () => 0);
    bucket.setRate(0.5);
    expect(bucket.rate).toBe(0.5);
    expect(() => bucket.setRate(0)).toThrow(RangeError);
  });
});

describe('disruptionOf', () => {
  const hosts = (down: number, up: number) => [
    ...Array.from({ length: down }, (_, i) => ({ id: `d${i}`, down: true })),
    ...Array.from({ length: up }, (_, i) => ({ id: `u${i}`, down: false })),
  ];
  /** The coordinator's defaults. */
  const LIMITS: FailoverLimits = { reschedulesPerSecond: 10, secondaryReschedulesPerSecond: 1, partialDisruptionFraction: 0.3, smallClusterHosts: 3, maxDownFraction: 0.5 };
  const cases: { name: string; down: number; up: number; dead?: string[]; limits?: Partial<FailoverLimits>; mode: FailoverMode; rate: number; reason: RegExp }[] = [
    // Suspension, as before the secondary rate.
    { name: 'one of three down: a small cluster, so the full rate', down: 1, up: 2, mode: 'normal', rate: 10, reason: /^1 of 3 hosts down, at most failover.maxDownFraction 0.5; a cluster of 3 is within failover.smallClusterHosts 3, so no partial disruption: at most 10 reschedules per second$/ },
    { name: 'two of three down', down: 2, up: 1, mode: 'suspended', rate: 0, reason: /^2 of 3 hosts down \(d0, d1\), more than failover.maxDownFraction 0.5: this coordinator may be the one cut off/ },
    { name: 'exactly maxDownFraction is not more than it (small cluster)', down: 1, up: 1, mode: 'normal', rate: 10, reason: /1 of 2 hosts down/ },
    { name: 'all down (full disruption)', down: 3, up: 0, mode: 'suspended', rate: 0, reason: /3 of 3/ },
    { name: 'the only host down', down: 1, up: 0, mode: 'suspended', rate: 0, reason: /1 of 1 host down/ },
    { name: 'no hosts at all', down: 0, up: 0, mode: 'normal', rate: 10, reason: /0 of 0/ },
    { name: 'fraction 1 never suspends', down: 3, up: 0, limits: { maxDownFraction: 1, partialDisruptionFraction: 1 }, mode: 'normal', rate: 10, reason: /3 of 3/ },
    { name: 'fraction 0 suspends on any host down', down: 1, up: 9, limits: { maxDownFraction: 0, partialDisruptionFraction: 0 }, mode: 'suspended', rate: 0, reason: /1 of 10/ },
    { name: 'hosts confirmed dead are not counted', down: 2, up: 1, dead: ['d0'], mode: 'normal', rate: 10, reason: /^1 of 2 hosts down/ },
    // The thresholds, in a cluster larger than smallClusterHosts.
    { name: 'none of ten down', down: 0, up: 10, mode: 'normal', rate: 10, reason: /^0 of 10 hosts down, at most failover.partialDisruptionFraction 0.3: at most 10 reschedules per second$/ },
    { name: 'one of four down (0.25)', down: 1, up: 3, mode: 'normal', rate: 10, reason: /^1 of 4 hosts down, at most failover.partialDisruptionFraction 0.3/ },
    { name: 'three of ten down: exactly partialDisruptionFraction is not more than it', down: 3, up: 7, mode: 'normal', rate: 10, reason: /^3 of 10 hosts down, at most failover.partialDisruptionFraction/ },
    { name: 'four of ten down: partial disruption', down: 4, up: 6, mode: 'partial', rate: 1, reason: /^4 of 10 hosts down \(d0, d1, d2, d3\), more than failover.partialDisruptionFraction 0.3: partial disruption, so at most 1 reschedule per second \(failover.secondaryReschedulesPerSecond\)$/ },
    { name: 'two of four down: exactly maxDownFraction is partial, not suspended', down: 2, up: 2, mode: 'partial', rate: 1, reason: /^2 of 4 hosts down/ },
    { name: 'six of ten down: suspended, not partial', down: 6, up: 4, mode: 'suspended', rate: 0, reason: /more than failover.maxDownFraction 0.5/ },
    { name: 'confirmed dead hosts leave a partial disruption', down: 4, up: 6, dead: ['d0', 'd1'], mode: 'normal', rate: 10, reason: /^2 of 8 hosts down/ },
    { name: 'partialDisruptionFraction equal to maxDownFraction: no partial disruption', down: 5, up: 5, limits: { partialDisruptionFraction: 0.5 }, mode: 'normal', rate: 10, reason: /^5 of 10 hosts down, at most failover.partialDisruptionFraction 0.5/ },
    { name: 'the secondary rate is never faster than the primary', down: 4, up: 6, limits: { reschedulesPerSecond: 2, secondaryReschedulesPerSecond: 5 }, mode: 'partial', rate: 2, reason: /at most 2 reschedules per second \(failover.secondaryReschedulesPerSecond\)/ },
    { name: 'fractional secondary rate', down: 4, up: 6, limits: { secondaryReschedulesPerSecond: 0.25 }, mode: 'partial', rate: 0.25, reason: /at most 0.25 reschedules per second/ },
    // Small clusters.
    { name: 'two of five down, smallClusterHosts 5: exempt', down: 2, up: 3, limits: { smallClusterHosts: 5 }, mode: 'normal', rate: 10, reason: /a cluster of 5 is within failover.smallClusterHosts 5/ },
    { name: 'two of six down, smallClusterHosts 5: partial', down: 2, up: 4, limits: { smallClusterHosts: 5 }, mode: 'partial', rate: 1, reason: /^2 of 6 hosts down/ },
    { name: 'one of three down, smallClusterHosts 0: partial', down: 1, up: 2, limits: { smallClusterHosts: 0 }, mode: 'partial', rate: 1, reason: /^1 of 3 hosts down \(d0\), more than failover.partialDisruptionFraction/ },
    { name: 'a small cluster is still suspended above maxDownFraction', down: 2, up: 1, limits: { smallClusterHosts: 10 }, mode: 'suspended', rate: 0, reason: /more than failover.maxDownFraction/ },
    { name: 'confirmed dead hosts do not count toward the cluster size', down: 2, up: 3, dead: ['u0', 'u1'], limits: { partialDisruptionFraction: 0.5, maxDownFraction: 0.7 }, mode: 'normal', rate: 10, reason: /^2 of 3 hosts down, at most failover.maxDownFraction 0.7; a cluster of 3/ },
  ];
  it.each(cases)('$name: $mode at $rate per second', ({ down, up, dead, limits, mode, rate, reason }) => {
    const d = disruptionOf(hosts(down, up), new Set(dead), { ...LIMITS, ...limits });
    expect(d.mode).toBe(mode);
    expect(d.ratePerSecond).toBe(rate);
    expect(d.reason).toMatch(reason);
  });

  it('names the rate in effect in its pace', () => {
    expect(disruptionOf(hosts(1, 9), new Set(), LIMITS).pace).toBe('at most 10 reschedules per second');
    expect(disruptionOf(hosts(4, 6), new Set(), LIMITS).pace).toBe('at most 1 reschedule per second: partial disruption, 4 of 10 hosts down');
    expect(disruptionOf(hosts(6, 4), new Set(), LIMITS).pace).toBe('none: failover suspended');
  });
});

describe('failover limits in the coordinator config', () => {
  const failover = (f: Record<string, unknown>) => loadCoordinatorConfig(undefined, { grpc: { insecure: true }, nats: { anonymous: true }, failover: f }).failover;
  const cases: { name: string; given: Record<string, unknown>; want: Partial<FailoverLimits> }[] = [
    { name: 'the defaults', given: {}, want: { reschedulesPerSecond: 10, secondaryReschedulesPerSecond: 1, partialDisruptionFraction: 0.3, smallClusterHosts: 3, maxDownFraction: 0.5 } },
    { name: 'partialDisruptionFraction left out follows a lower maxDownFraction', given: { maxDownFraction: 0.2 }, want: { partialDisruptionFraction: 0.2, maxDownFraction: 0.2 } },
    { name: 'partialDisruptionFraction equal to maxDownFraction', given: { maxDownFraction: 0.4, partialDisruptionFraction: 0.4 }, want: { partialDisruptionFraction: 0.4 } },
    { name: 'set explicitly', given: { partialDisruptionFraction: 0.1, secondaryReschedulesPerSecond: 0.5, smallClusterHosts: 0 }, want: { partialDisruptionFraction: 0.1, secondaryReschedulesPerSecond: 0.5, smallClusterHosts: 0 } },
  ];
  it.each(cases)('$name', ({ given, want }) => {
    expect(failover(given)).toMatchObject(want);
  });

  it('refuses partialDisruptionFraction above maxDownFraction, naming both', () => {
    expect(() => failover({ partialDisruptionFraction: 0.6 })).toThrow(
      'failover.partialDisruptionFraction: must be at most failover.maxDownFraction (0.5), not 0.6: above maxDownFraction failover is suspended, not slowed',
    );
    expect(() => failover({ maxDownFraction: 0.2, partialDisruptionFraction: 0.3 })).toThrow(/failover.partialDisruptionFraction: must be at most failover.maxDownFraction \(0.2\), not 0.3/);
  });

  it('refuses a secondary rate of 0: lower maxDownFraction to move nothing', () => {
    expect(() => failover({ secondaryReschedulesPerSecond: 0 })).toThrow(/failover.secondaryReschedulesPerSecond/);
  });
});
