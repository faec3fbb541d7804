import { describe, expect, it } from 'vitest';
import { IngestLag } from './ingest-lag.js';

describe('IngestLag', () => {
  it.each([
    { name: 'no message, no report', lags: [], want: undefined },
    { name: 'one message', lags: [7], want: { messages: 1, p50: 7, p99: 7, max: 7 } },
    { name: 'unordered input', lags: [30, 10, 20], want: { messages: 3, p50: 20, p99: 30, max: 30 } },
    { name: 'a hundred: p99 is the 100th, not the max of 101', lags: [...Array.from({ length: 100 }, (_, i) => i + 1), 5000], want: { messages: 101, p50: 51, p99: 100, max: 5000 } },
  ])('$name', ({ lags, want }) => {
    const lag = new IngestLag();
    for (const l of lags) lag.record(l);
    expect(lag.take()).toEqual(want);
    expect(lag.take(), 'a report starts a new period').toBeUndefined();
  });
});
