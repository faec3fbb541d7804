import type { QueueSortPlugin } from '../plugins.js';

export const FCFS = 'fcfs';

/** First come, first served. */
export const fcfsSort: QueueSortPlugin = {
  name: FCFS,
  less: (a, b) => a.arrivalSeq < b.arrivalSeq,
};
