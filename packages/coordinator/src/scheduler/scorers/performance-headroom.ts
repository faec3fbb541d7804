import type { ScorePlugin } from '../plugins.js';
import { clamp100 } from '../plugins.js';

export const PERFORMANCE_HEADROOM = 'performance-headroom';

/** Prefers hosts with idle CPU and free memory as measured, not as booked. */
export const performanceHeadroomScorer: ScorePlugin = {
  name: PERFORMANCE_HEADROOM,
  score({ spec }, host) {
    const cpuIdle = 1 - host.cpuUtilisation;
    const memoryFree = host.capacity.memoryMiB > 0 ? (host.memoryAvailableMiB - spec.memory_mib) / host.capacity.memoryMiB : 0;
    return clamp100(((cpuIdle + Math.max(0, memoryFree)) / 2) * 100);
  },
};
