import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import {
  AbortedError,
  AlreadyExistsError,
  DataLossError,
  DeadlineExceededError,
  FailedPreconditionError,
  findCause,
  fromCommandFailure,
  fromServiceError,
  InternalError,
  InvalidArgumentError,
  isRetryable,
  NotFoundError,
  ResourceExhaustedError,
  toCommandFailure,
  toServiceError,
  UnavailableError,
  UnimplementedError,
  type VirtfleetError,
} from './errors.js';

function serviceError(code: status, details: string, metadata = new Metadata()): ServiceError {
  return Object.assign(new Error(details), { code, details, metadata });
}

describe('error table', () => {
  const cases: { error: VirtfleetError; code: status; retryable: boolean }[] = [
    { error: new InvalidArgumentError('spec.name', 'bad'), code: status.INVALID_ARGUMENT, retryable: false },
    { error: new NotFoundError('workload', 'w1'), code: status.NOT_FOUND, retryable: false },
    { error: new AlreadyExistsError('exists'), code: status.ALREADY_EXISTS, retryable: false },
    { error: new FailedPreconditionError('paused'), code: status.FAILED_PRECONDITION, retryable: false },
    { error: new UnavailableError('down'), code: status.UNAVAILABLE, retryable: true },
    { error: new DeadlineExceededError('slow'), code: status.DEADLINE_EXCEEDED, retryable: true },
    { error: new ResourceExhaustedError('full'), code: status.RESOURCE_EXHAUSTED, retryable: true },
    { error: new UnimplementedError('no such method'), code: status.UNIMPLEMENTED, retryable: false },
    { error: new AbortedError('cancelled'), code: status.ABORTED, retryable: false },
    { error: new DataLossError('chunk damaged'), code: status.DATA_LOSS, retryable: false },
    { error: new InternalError('boom'), code: status.INTERNAL, retryable: false },
  ];

  it.each(cases)('maps $error.name to code $code and back', ({ error, code, retryable }) => {
    const wire = toServiceError(error);
    expect(wire.code).toBe(code);
    expect(wire.details).toBe(error.message);
    expect(error.retryable).toBe(retryable);
    const back = fromServiceError(serviceError(wire.code, wire.details, wire.metadata as Metadata));
    expect(back.code).toBe(code);
    expect(back.message).toBe(error.message);
    expect(back.constructor).toBe(error.constructor);
    expect(isRetryable(back)).toBe(retryable);
  });

  it.each(cases)('maps $error.name the same inside a batch reply', ({ error, code, retryable }) => {
    const back = fromCommandFailure(toCommandFailure(error), 'host h1');
    const wire = toServiceError(error);
    const alone = fromServiceError(serviceError(wire.code, wire.details, wire.metadata as Metadata), 'host h1');
    expect(back.code).toBe(code);
    expect(back.message).toBe(alone.message);
    expect(back.message).toContain('host h1: ');
    expect(back.constructor).toBe(error.constructor);
    expect(isRetryable(back)).toBe(retryable);
  });

  it('keeps the field of an InvalidArgumentError inside a batch reply', () => {
    const back = fromCommandFailure(toCommandFailure(new InvalidArgumentError('spec.memory_mib', 'must be at least 6'))) as InvalidArgumentError;
    expect(back.field).toBe('spec.memory_mib');
    expect(back.reason).toBe('must be at least 6');
  });

  it('keeps the field of an InvalidArgumentError across the wire', () => {
    const wire = toServiceError(new InvalidArgumentError('spec.memory_mib', 'must be at least 6'));
    const back = fromServiceError(serviceError(wire.code, wire.details, wire.metadata as Metadata)) as InvalidArgumentError;
    expect(back.field).toBe('spec.memory_mib');
    expect(back.reason).toBe('must be at least 6');
  });

  // A trailer carries printable ASCII only; grpc-js threw on anything else, and the call was never answered.
  it.each([
    { name: 'a Cyrillic look-alike', field: 'spec.labels.\u0430pp', want: 'spec.labels.\\u{430}pp' },
    { name: 'NUL and a newline', field: 'spec.env.A\0\n', want: 'spec.env.A\\u{0}\\u{a}' },
    { name: 'an emoji', field: 'spec.labels.😀', want: 'spec.labels.\\u{1f600}' },
    { name: 'a lone surrogate', field: 'x.\ud800', want: 'x.\\u{d800}' },
    { name: 'spaces at its end', field: 'spec.env.  ', want: 'spec.env.\\u{20}\\u{20}' },
    { name: 'printable ASCII, as it is', field: 'spec.env.A B=<&>', want: 'spec.env.A B=<&>' },
  ])('sets the field trailer of an InvalidArgumentError naming $name in printable ASCII', ({ field, want }) => {
    const wire = toServiceError(new InvalidArgumentError(field, 'bad'));
    expect(wire.metadata?.get('virtfleet-field')).toEqual([want]);
    expect(fromCommandFailure(toCommandFailure(new InvalidArgumentError(field, 'bad')))).toBeInstanceOf(InvalidArgumentError);
  });

  it('turns unknown throws into INTERNAL', () => {
    expect(toServiceError(new Error('oops'))).toMatchObject({ code: status.INTERNAL, details: 'oops' });
    expect(toServiceError('text')).toMatchObject({ code: status.INTERNAL, details: 'text' });
  });

  it('prefixes context on relayed errors', () => {
    expect(fromServiceError(serviceError(status.UNAVAILABLE, 'connect refused'), 'host h1').message).toBe('host h1: connect refused');
  });

  it('follows cause chains', () => {
    const inner = new UnavailableError('nats down');
    const outer = new Error('wrapped', { cause: new Error('middle', { cause: inner }) });
    expect(findCause(outer, (e): e is UnavailableError => e instanceof UnavailableError)).toBe(inner);
    expect(isRetryable(outer)).toBe(true);
    expect(isRetryable(new Error('plain'))).toBe(false);
  });
});
