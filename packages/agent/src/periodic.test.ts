import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { every } from './periodic.js';

describe('every', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(0);
  });
  afterEach(() => vi.useRealTimers());

  const cases = [
    { name: 'phase 0 runs every interval from the start', phase: 0, want: [1000, 2000, 3000] },
    { name: 'phase 0.25 runs a quarter interval in, then every interval', phase: 0.25, want: [250, 1250, 2250] },
    { name: 'phase 0.999 stays within the first interval', phase: 0.999, want: [999, 1999, 2999] },
    { name: 'a phase of 1 or more wraps around', phase: 1.5, want: [500, 1500, 2500] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const at: number[] = [];
      const t = every(1000, () => at.push(Date.now()), c.phase);
      vi.advanceTimersByTime(3000);
      t.stop();
      vi.advanceTimersByTime(5000);
      expect(at).toEqual(c.want);
    });
  }

  it('stop() before the first run cancels it', () => {
    const run = vi.fn();
    every(1000, run, 0.5).stop();
    vi.advanceTimersByTime(5000);
    expect(run).not.toHaveBeenCalled();
  });
});
