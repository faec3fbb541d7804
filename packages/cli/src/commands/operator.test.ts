import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, type pb } from '@virtfleet/shared';
import { EXIT } from '../exit-codes.js';
import { parseSince, parseTypePrefix, waitOutcome } from './operator.js';
import { driverCell } from './views.js';

describe('parseSince', () => {
  it.each([
    [undefined, {}],
    ['0', { fromStart: true }],
    ['000', { fromStart: true }],
    ['1', { seq: '1' }],
    ['0042', { seq: '42' }],
    ['2025-01-02T15:04:05Z', { time: '2025-01-02T15:04:05Z' }],
    ['2025-01-02T15:04:05.123456+02:00', { time: '2025-01-02T15:04:05.123456+02:00' }],
  ])('reads %j', (given, want) => {
    expect(parseSince(given)).toEqual(want);
  });

  it.each([
    ['85140.5', /^--since: must be a sequence number or an RFC 3339 time such as 2025-01-02T15:04:05Z, not "85140.5"$/],
    ['-1', /--since: must be a sequence number/],
    ['yesterday', /--since: must be a sequence number/],
    ['2025-01-02', /--since: must be a sequence number/],
    ['2025-01-02T15:04:05', /--since: must be a sequence number/],
    ['99999999999999999999', /^--since: sequence number 99999999999999999999 is too large$/],
  ])('rejects %j naming --since', (given, message) => {
    expect(() => parseSince(given)).toThrow(InvalidArgumentError);
    expect(() => parseSince(given)).toThrow(message);
  });
});

describe('parseTypePrefix', () => {
  it.each([
    [undefined, ''],
    ['host.cordoned', 'io.virtfleet.host.cordoned'],
    ['workload', 'io.virtfleet.workload'],
    ['io.virtfleet.host', 'io.virtfleet.host'],
  ])('reads %j as %j', (given, want) => {
    expect(parseTypePrefix(given)).toBe(want);
  });
  it('rejects a type that matches nothing, listing the types', () => {
    expect(() => parseTypePrefix('host.cordonned')).toThrow(/^--type: "host.cordonned" matches no event type; types are workload.submitted, .*host.cordoned/);
  });
});

describe('waitOutcome', () => {
  const w = (state: string, message = '') => ({ id: 'web-1', state, message }) as pb.Workload__Output;
  it.each([
    [w('pending', '1 hosts: 1 insufficient memory'), EXIT.conflict, 'workload web-1 is still pending after 60 s: 1 hosts: 1 insufficient memory'],
    [w('failed', 'image not found'), EXIT.failure, 'workload web-1 failed: image not found'],
    [w('deleted'), EXIT.failure, 'workload web-1 is deleted: no reason given'],
    [w('creating', 'pulling'), EXIT.unavailable, 'workload web-1 is still creating after 60 s: pulling'],
  ])('%o exits %i', (workload, code, message) => {
    expect(waitOutcome(workload, 60)).toEqual({ code, message });
  });
});

describe('driverCell', () => {
  const driver = (overrides: Partial<pb.DriverInfo__Output>): pb.DriverInfo__Output => ({
    name: 'docker',
    version: '20.10',
    kinds: ['container'],
    domain_types: [],
    healthy: true,
    detail: '',
    queue_depth: 0,
    in_flight: 0,
    concurrency: 4,
    ...overrides,
  });
  it.each([
    { name: 'healthy and idle', d: driver({}), want: 'docker' },
    { name: 'unhealthy', d: driver({ healthy: false }), want: 'docker(down)' },
    { name: 'work waiting', d: driver({ in_flight: 4, queue_depth: 12 }), want: 'docker[4/4 busy, 12 queued]' },
    { name: 'unhealthy with work waiting', d: driver({ healthy: false, in_flight: 4, queue_depth: 3 }), want: 'docker(down)[4/4 busy, 3 queued]' },
  ])('$name: $want', ({ d, want }) => {
    expect(driverCell(d)).toBe(want);
  });
});
