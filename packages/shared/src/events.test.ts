import { describe, expect, it } from 'vitest';
import { eventTypePrefix, parseRfc3339Nanos } from './events.js';

describe('eventTypePrefix', () => {
  it.each([
    ['', ''],
    ['host.cordoned', 'io.virtfleet.host.cordoned'],
    ['host', 'io.virtfleet.host'],
    ['workload.state', 'io.virtfleet.workload.state'],
    ['io.virtfleet.host.cordoned', 'io.virtfleet.host.cordoned'],
    ['io.virtfleet.', 'io.virtfleet.'],
    ['io.virt', 'io.virt'],
  ])('%j filters on %j', (given, want) => {
    expect(eventTypePrefix(given)).toBe(want);
  });
});

describe('parseRfc3339Nanos', () => {
  const ns = (iso: string, extraNs = 0n) => BigInt(Date.parse(iso)) * 1_000_000n + extraNs;
  it.each([
    ['2025-01-02T15:04:05Z', ns('2025-01-02T15:04:05Z')],
    ['2025-01-02T15:04:05.123Z', ns('2025-01-02T15:04:05.123Z')],
    ['2025-01-02T15:04:05.123456789Z', ns('2025-01-02T15:04:05.123Z', 456_789n)],
    ['2025-01-02t15:04:05.1z', ns('2025-01-02T15:04:05.100Z')],
    ['2025-01-02 15:04:05Z', ns('2025-01-02T15:04:05Z')],
    ['2025-01-02T17:04:05+02:00', ns('2025-01-02T15:04:05Z')],
    ['2025-01-02T10:34:05-04:30', ns('2025-01-02T15:04:05Z')],
    ['2024-02-29T00:00:00Z', ns('2024-02-29T00:00:00Z')],
    ['0001-01-01T00:00:00Z', ns('0001-01-01T00:00:00Z')],
  ])('reads %s exactly', (text, want) => {
    expect(parseRfc3339Nanos(text)).toBe(want);
  });

  it.each(['85140.5', '1', '', 'yesterday', '2025-01-02', '2025-01-02T15:04:05', '2025-01-02T15:04Z', '2025-02-30T00:00:00Z', '2025-13-01T00:00:00Z', '2025-01-02T24:00:00Z', '2025-06-30T23:59:60Z', '2025-01-02T15:04:05.1234567890Z', '2025-01-02T15:04:05+2:00', ' 2025-01-02T15:04:05Z'])(
    'rejects %j',
    (text) => {
      expect(parseRfc3339Nanos(text)).toBeUndefined();
    },
  );

  it('orders times below the millisecond', () => {
    expect(parseRfc3339Nanos('2025-01-02T15:04:05.1231Z')! > parseRfc3339Nanos('2025-01-02T15:04:05.123Z')!).toBe(true);
  });
});
