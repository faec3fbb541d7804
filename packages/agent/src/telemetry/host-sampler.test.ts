import { describe, expect, it } from 'vitest';
import { HostSampler, parseMeminfo } from './host-sampler.js';

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
    expect(s.storage[1]).toEqual({ path: '/definitely/not/here', total_gib: 0, used_gib: 0 });
  });
});
