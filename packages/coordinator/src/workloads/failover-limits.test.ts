import { describe, expect, it } from 'vitest';
import { disruptionOf, TokenBucket } from './failover-limits.js';

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
});

describe('disruptionOf', () => {
  const hosts = (down: number, up: number) => [
    ...Array.from({ length: down }, (_, i) => ({ id: `d${i}`, down: true })),
    ...Array.from({ length: up }, (_, i) => ({ id: `u${i}`, down: false })),
  ];
  const cases: { name: string; down: number; up: number; dead?: string[]; max: number; suspended: boolean; reason: RegExp }[] = [
    { name: 'one of three down', down: 1, up: 2, max: 0.5, suspended: false, reason: /^1 of 3 hosts down, at most/ },
    { name: 'two of three down', down: 2, up: 1, max: 0.5, suspended: true, reason: /^2 of 3 hosts down \(d0, d1\), more than failover.maxDownFraction 0.5: this coordinator may be the one cut off/ },
    { name: 'exactly the fraction is not more than it', down: 1, up: 1, max: 0.5, suspended: false, reason: /1 of 2 hosts down/ },
    { name: 'all down (full disruption)', down: 3, up: 0, max: 0.5, suspended: true, reason: /3 of 3/ },
    { name: 'the only host down', down: 1, up: 0, max: 0.5, suspended: true, reason: /1 of 1 host down/ },
    { name: 'no hosts at all', down: 0, up: 0, max: 0.5, suspended: false, reason: /0 of 0/ },
    { name: 'fraction 1 never suspends', down: 3, up: 0, max: 1, suspended: false, reason: /3 of 3/ },
    { name: 'fraction 0 suspends on any host down', down: 1, up: 9, max: 0, suspended: true, reason: /1 of 10/ },
    { name: 'hosts confirmed dead are not counted', down: 2, up: 1, dead: ['d0'], max: 0.5, suspended: false, reason: /^1 of 2 hosts down/ },
  ];
  it.each(cases)('$name: suspended $suspended', ({ down, up, dead, max, suspended, reason }) => {
    const d = disruptionOf(hosts(down, up), new Set(dead), max);
    expect(d.suspended).toBe(suspended);
    expect(d.reason).toMatch(reason);
  });
});
