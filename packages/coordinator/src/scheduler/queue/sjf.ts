import type { QueueSortPlugin } from '../plugins.js';

export const SJF = 'sjf';

/** Shortest expected run time first; ties by arrival. */
export const sjfSort: QueueSortPlugin = {
  name: SJF,
  less: (a, b) => (a.expectedRuntimeSeconds !== b.expectedRuntimeSeconds ? a.expectedRuntimeSeconds < b.expectedRuntimeSeconds : a.arrivalSeq < b.arrivalSeq),
};
