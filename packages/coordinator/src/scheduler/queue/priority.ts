import type { QueuedRequest, QueueSortPlugin } from '../plugins.js';

export const PRIORITY = 'priority';

/** Priority plus `agingPerMinute` points for every minute waited. */
export function effectivePriority(r: QueuedRequest, nowMs: number, agingPerMinute: number): number {
  return r.priority + (agingPerMinute * Math.max(0, nowMs - r.arrivalMs)) / 60_000;
}

/**
 * Highest effective priority first; ties by arrival. With aging, a request
 * overtakes a newer one of higher priority after (difference / agingPerMinute)
 * minutes, so nothing starves. 0 turns aging off.
 */
export function prioritySort(agingPerMinute: number): QueueSortPlugin {
  return {
    name: PRIORITY,
    less(a, b, nowMs) {
      const pa = effectivePriority(a, nowMs, agingPerMinute);
      const pb = effectivePriority(b, nowMs, agingPerMinute);
      return pa !== pb ? pa > pb : a.arrivalSeq < b.arrivalSeq;
    },
  };
}
