import { Metadata, status, type ServiceError } from '@grpc/grpc-js';

/**
 * Base of every virtfleet error. `retryable` says whether the same call may
 * succeed later without any change (Nomad's RecoverableError).
 */
export abstract class VirtfleetError extends Error {
  abstract readonly code: status;
  readonly retryable: boolean = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A request field is malformed. `field` is a dotted path such as `spec.memory_mib`. */
export class InvalidArgumentError extends VirtfleetError {
  readonly code = status.INVALID_ARGUMENT;
  constructor(
    readonly field: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(field ? `${field}: ${reason}` : reason, options);
  }
}

export class NotFoundError extends VirtfleetError {
  readonly code = status.NOT_FOUND;
  constructor(
    readonly resource: string,
    readonly id: string,
    options?: { cause?: unknown },
  ) {
    super(`${resource} ${JSON.stringify(id)} not found`, options);
  }
}

export class AlreadyExistsError extends VirtfleetError {
  readonly code = status.ALREADY_EXISTS;
}

/** The request is well formed but the system is not in a state to carry it out. */
export class FailedPreconditionError extends VirtfleetError {
  readonly code = status.FAILED_PRECONDITION;
}

/** A dependency (host, agent, NATS, driver daemon) cannot be reached now. */
export class UnavailableError extends VirtfleetError {
  readonly code = status.UNAVAILABLE;
  override readonly retryable = true;
}

/** A follower coordinator refused a change; the leader (or another coordinator) will take it. */
export class NotLeaderError extends UnavailableError {}

export class DeadlineExceededError extends VirtfleetError {
  readonly code = status.DEADLINE_EXCEEDED;
  override readonly retryable = true;
}

export class ResourceExhaustedError extends VirtfleetError {
  readonly code = status.RESOURCE_EXHAUSTED;
  override readonly retryable = true;
}

/** The server does not offer the method (an older version of it). */
export class UnimplementedError extends VirtfleetError {
  readonly code = status.UNIMPLEMENTED;
}

/** An operation was called off while under way (a migration cancelled); what it worked on is as before it began. */
export class AbortedError extends VirtfleetError {
  readonly code = status.ABORTED;
}

/** Stored data is lost or damaged (a backup's chunk missing or not matching its digest); trying again will not bring it back. */
export class DataLossError extends VirtfleetError {
  readonly code = status.DATA_LOSS;
}

/** The caller presented no credential, or one that is unknown, expired or revoked. */
export class UnauthenticatedError extends VirtfleetError {
  readonly code = status.UNAUTHENTICATED;
}

/** The caller is known, and its role or tenant does not allow this. */
export class PermissionDeniedError extends VirtfleetError {
  readonly code = status.PERMISSION_DENIED;
}

/** A driver or backend failed in a way the caller cannot fix by changing the request. */
export class InternalError extends VirtfleetError {
  readonly code = status.INTERNAL;
}

/** Characters of a field path shown as they are: printable ASCII, all a gRPC trailer may carry. */
const NOT_PRINTABLE_ASCII = /[^\x20-\x7e]/gu;

/** Spaces at either end, which a trailer's value loses on the way. */
const OUTER_SPACES = /^ +| +$/g;

/**
 * `text` in printable ASCII, each other character (and a space at either
 * end) as a `\u{hex}` escape: a field path, which may hold a map key from the
 * request, as a trailer carries it unchanged, with a look-alike letter
 * (Cyrillic а for a) plain to see.
 */
export function printableAscii(text: string): string {
  const escape = (ch: string) => `\\u{${ch.codePointAt(0)!.toString(16)}}`;
  return text.replace(NOT_PRINTABLE_ASCII, escape).replace(OUTER_SPACES, (spaces) => [...spaces].map(escape).join(''));
}

const STATUS_NAMES = Object.fromEntries(Object.entries(status).filter(([, v]) => typeof v === 'number').map(([k, v]) => [v, k])) as Record<number, string>;

/** A gRPC status code by name (NOT_FOUND), as logs, metrics, audit events and HTTP error bodies give it. */
export function grpcStatusName(code: number): string {
  return STATUS_NAMES[code] ?? String(code);
}

/** Trailer keys a virtfleet server sets on every error it returns. */
export const ERROR_METADATA = { retryable: 'virtfleet-retryable', field: 'virtfleet-field', notLeader: 'virtfleet-not-leader' } as const;
const retryableKey = ERROR_METADATA.retryable;
const fieldKey = ERROR_METADATA.field;

/** Converts any thrown value into a grpc-js ServiceError for a handler callback. */
export function toServiceError(err: unknown): Partial<ServiceError> & { code: status; details: string } {
  const metadata = new Metadata();
  if (err instanceof VirtfleetError) {
    metadata.set(retryableKey, String(err.retryable));
    // Metadata.set throws on anything but printable ASCII, and the call would then never be answered.
    if (err instanceof InvalidArgumentError) metadata.set(fieldKey, printableAscii(err.field));
    if (err instanceof NotLeaderError) metadata.set(ERROR_METADATA.notLeader, 'true');
    return { code: err.code, details: err.message, metadata };
  }
  if (isServiceError(err)) return { code: err.code, details: err.details, metadata: err.metadata };
  const message = err instanceof Error ? err.message : String(err);
  return { code: status.INTERNAL, details: message, metadata };
}

export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number' && 'details' in err;
}

/** Converts a grpc-js client error back into the matching virtfleet error class. */
export function fromServiceError(err: ServiceError, context = ''): VirtfleetError {
  const prefix = context ? `${context}: ` : '';
  const details = prefix + err.details;
  switch (err.code) {
    case status.INVALID_ARGUMENT: {
      const field = String(err.metadata?.get(fieldKey)[0] ?? '');
      const reason = field && err.details.startsWith(`${field}: `) ? err.details.slice(field.length + 2) : err.details;
      return new InvalidArgumentError(field, prefix + reason, { cause: err });
    }
    case status.NOT_FOUND: {
      const remote = new NotFoundError('', '', { cause: err });
      remote.message = details;
      return remote;
    }
    case status.ALREADY_EXISTS:
      return new AlreadyExistsError(details, { cause: err });
    case status.FAILED_PRECONDITION:
      return new FailedPreconditionError(details, { cause: err });
    case status.UNAVAILABLE:
      return err.metadata?.get(ERROR_METADATA.notLeader).length ? new NotLeaderError(details, { cause: err }) : new UnavailableError(details, { cause: err });
    case status.DEADLINE_EXCEEDED:
      return new DeadlineExceededError(details, { cause: err });
    case status.RESOURCE_EXHAUSTED:
      return new ResourceExhaustedError(details, { cause: err });
    case status.UNIMPLEMENTED:
      return new UnimplementedError(details, { cause: err });
    case status.ABORTED:
      return new AbortedError(details, { cause: err });
    case status.DATA_LOSS:
      return new DataLossError(details, { cause: err });
    case status.UNAUTHENTICATED:
      return new UnauthenticatedError(details, { cause: err });
    case status.PERMISSION_DENIED:
      return new PermissionDeniedError(details, { cause: err });
    default:
      return new InternalError(details, { cause: err });
  }
}

/** One command's failure inside a batch reply: the status, message and field it would have failed with alone. */
export interface CommandFailure {
  code: number;
  message: string;
  field: string;
}

/** The failure of one command of a batch, for its place in the reply. */
export function toCommandFailure(err: unknown): CommandFailure {
  const e = toServiceError(err);
  return { code: e.code, message: e.details, field: String(e.metadata?.get(fieldKey)[0] ?? '') };
}

/** The error a batched command failed with, as `fromServiceError` would have made it of the same failure alone. */
export function fromCommandFailure(failure: CommandFailure, context = ''): VirtfleetError {
  const metadata = new Metadata();
  if (failure.field) metadata.set(fieldKey, printableAscii(failure.field));
  const err = Object.assign(new Error(failure.message), { code: failure.code as status, details: failure.message, metadata }) as ServiceError;
  return fromServiceError(err, context);
}

/** Walks the `.cause` chain looking for an error that matches. */
export function findCause<T>(err: unknown, match: (e: unknown) => e is T): T | undefined {
  const seen = new Set<unknown>();
  let current: unknown = err;
  while (current !== undefined && current !== null && !seen.has(current)) {
    if (match(current)) return current;
    seen.add(current);
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

export function isRetryable(err: unknown): boolean {
  return findCause(err, (e): e is VirtfleetError => e instanceof VirtfleetError && e.retryable) !== undefined;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
