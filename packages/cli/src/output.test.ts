import { EventEmitter } from 'node:events';
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { FailedPreconditionError, InternalError, InvalidArgumentError, NotFoundError, parseWorkloadSpec, UnavailableError } from '@virtfleet/shared';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { age, errorText, mib, stdoutClosed, table, watchForClosedStdout } from './output.js';

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

describe('errorText', () => {
  it('lists several bad fields one per line under their file', () => {
    const err = (() => {
      try {
        parseWorkloadSpec({ name: 'Web', kind: 'vm', vcpus: 0 }, 'web.yaml:');
      } catch (e) {
        return e;
      }
    })();
    expect(errorText(err)).toBe(
      [
        'web.yaml: 3 problems:',
        '  name: must be a DNS label: 1-63 characters of a-z, 0-9 and "-", starting and ending with a letter or digit',
        '  vcpus: must be greater than 0',
        '  memory_mib: is required',
      ].join('\n'),
    );
  });
  it('keeps a single problem on one line', () => {
    expect(errorText(new InvalidArgumentError('web.yaml: vcpus', 'must be greater than 0'))).toBe('web.yaml: vcpus: must be greater than 0');
  });
});

describe('watchForClosedStdout', () => {
  it('turns EPIPE into a quiet stop, and lets other write errors surface', () => {
    const stdout = new EventEmitter();
    watchForClosedStdout(stdout);
    expect(() => stdout.emit('error', Object.assign(new Error('no space'), { code: 'ENOSPC' }))).toThrow('no space');
    expect(stdoutClosed.signal.aborted).toBe(false);
    expect(() => stdout.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }))).not.toThrow();
    expect(stdoutClosed.signal.aborted).toBe(true);
    // Writes after the pipe closed fail again; they are expected now.
    expect(() => stdout.emit('error', Object.assign(new Error('write after end'), { code: 'ERR_STREAM_DESTROYED' }))).not.toThrow();
  });
});
