import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { FailedPreconditionError, InternalError, InvalidArgumentError, NotFoundError, UnavailableError } from '@virtfleet/shared';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { age, mib, table } from './output.js';

describe('table', () => {
  it('aligns columns under upper-case headers without trailing spaces', () => {
    expect(table(['id', 'state'], [['a', 'running'], ['long-id', 'x']])).toBe('ID       STATE\na        running\nlong-id  x');
  });
});

describe('age and mib', () => {
  it.each([
    [5_000, '5s'],
    [300_000, '5m'],
    [3 * 3_600_000, '3h'],
    [3 * 86_400_000, '3d'],
  ])('%i ms ago is %s', (ms, want) => {
    expect(age(new Date(1_000_000_000_000 - ms).toISOString(), 1_000_000_000_000)).toBe(want);
  });
  it('formats memory', () => {
    expect(mib(64)).toBe('64Mi');
    expect(mib(20480)).toBe('20.0Gi');
  });
});

describe('exitCodeFor', () => {
  it.each([
    [new InvalidArgumentError('f', 'bad'), EXIT.invalidInput],
    [new NotFoundError('workload', 'x'), EXIT.notFound],
    [new UnavailableError('down'), EXIT.unavailable],
    [new FailedPreconditionError('busy'), EXIT.conflict],
    [new InternalError('boom'), EXIT.failure],
    [Object.assign(new Error('x'), { code: status.DEADLINE_EXCEEDED, details: 'x' }), EXIT.unavailable],
    [new Error('plain'), EXIT.failure],
  ])('maps %s to %i', (err, code) => {
    expect(exitCodeFor(err)).toBe(code);
  });
});
