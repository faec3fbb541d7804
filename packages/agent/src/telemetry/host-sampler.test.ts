import { describe, expect, it } from 'vitest';
import { HostSampler, parseMeminfo, SharedHostSampler, type HostSource } from './host-sampler.js';

describe('parseMeminfo', () => {
  it.each([
    ['MemAvailable present', 'MemTotal:       16384000 kB\nMemFree:  1000 kB\nMemAvailable:   8192000 kB\n', { totalMiB: 16000, availableMiB: 8000 }],
    ['old kernels without MemAvailable', 'MemTotal:       2048 kB\nMemFree:        1024 kB\n', { totalMiB: 2, availableMiB: 1 }],
  ])('%s', (_name, text, want) => {
    expect(parseMeminfo(text)).toEqual(want);
  });
  it('rejects an unknown format', () => {
    expect(() => parseMeminfo('nothing here')).toThrow(/meminfo/);
  });
});

describe('HostSampler', () => {
  it('samples this machine', async () => {
    const sampler = new HostSampler(['/', '/definitely/not/here']);
    const s = await sampler.sample();
    expect(s.cpu_count).toBeGreaterThan(0);
    expect(s.cpu_utilisation).toBeGreaterThanOrEqual(0);
    expect(s.cpu_utilisation).toBeLessThanOrEqual(1);
    expect(s.memory_total_mib).toBeGreaterThan(s.memory_available_mib);
    expect(s.storage[0]?.total_gib).toBeGreaterThan(0);
    expect(s.storage[1]).toMatchObject({ path: '/definitely/not/here', total_gib: 0, used_gib: 0 });
  });

  it('does not wait for a statfs that hangs: the path keeps its last figures and their age', async () => {
    let answer: ((v: { blocks: number; bfree: number; bsize: number }) => void) | undefined;
    let calls = 0;
    const statfsOf = (): Promise<{ blocks: number; bfree: number; bsize: number }> => {
      calls++;
      if (calls === 1) return Promise.resolve({ blocks: 4 * 1024 * 1024, bfree: 1024 * 1024, bsize: 4096 });
      return new Promise((resolve) => (answer = resolve));
    };
    const sampler = new HostSampler(['/data'], 50, statfsOf);
    const first = await sampler.sample();
    expect(first.storage).toEqual([{ path: '/data', total_gib: 16, used_gib: 12, sampled_at: expect.any(String) }]);

    const started = Date.now();
    const second = await sampler.sample();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(second.storage).toEqual(first.storage);
    await sampler.sample();
    expect(calls).toBe(2); // the hung call is not repeated while it is outstanding

    answer?.({ blocks: 4 * 1024 * 1024, bfree: 0, bsize: 4096 });
    await new Promise((r) => setTimeout(r, 0));
    expect((await sampler.sample()).storage[0]).toMatchObject({ total_gib: 16, used_gib: 16 });
  });
});

describe('SharedHostSampler', () => {
  const counting = () => {
    let calls = 0;
    const inner: HostSource = {
      sample: () => {
        calls++;
        return Promise.resolve({ cpu_count: calls, cpu_utilisation: 0, load1: 0, load5: 0, load15: 0, memory_total_mib: 1, memory_used_mib: 0, memory_available_mib: 1, storage: [] });
      },
    };
    return { inner, calls: () => calls };
  };
  it.each([
    { name: 'callers within maxAge share one sample', times: [0, 10, 499], wantInner: 1, wantLast: 1 },
    { name: 'a caller at maxAge takes a new one', times: [0, 500], wantInner: 2, wantLast: 2 },
    { name: 'each interval takes one', times: [0, 100, 600, 700, 1200], wantInner: 3, wantLast: 3 },
  ])('$name', async ({ times, wantInner, wantLast }) => {
    const { inner, calls } = counting();
    let now = 0;
    const shared = new SharedHostSampler(inner, 500, () => now);
    let last = 0;
    for (const t of times) {
      now = t;
      last = (await shared.sample()).cpu_count;
    }
    expect(calls()).toBe(wantInner);
    expect(last).toBe(wantLast);
  });
});
