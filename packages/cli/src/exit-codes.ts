import { status } from '@grpc/grpc-js';
import { isServiceError, VirtfleetError } from '@virtfleet/shared';

/** Process exit codes, documented in the README. */
export const EXIT = {
  ok: 0,
  /** Anything not listed below. */
  failure: 1,
  /** Bad arguments, spec file or config (INVALID_ARGUMENT). */
  invalidInput: 2,
  /** NOT_FOUND. */
  notFound: 3,
  /** The coordinator, a host or NATS cannot be reached (UNAVAILABLE, DEADLINE_EXCEEDED). */
  unavailable: 4,
  /** The request conflicts with the current state (FAILED_PRECONDITION, ALREADY_EXISTS). */
  conflict: 5,
  /** Who is calling is unknown, or may not do this (UNAUTHENTICATED, PERMISSION_DENIED). */
  denied: 6,
} as const;

export function exitCodeFor(err: unknown): number {
  const code = err instanceof VirtfleetError ? err.code : isServiceError(err) ? err.code : undefined;
  switch (code) {
    case status.INVALID_ARGUMENT:
    case status.OUT_OF_RANGE:
      return EXIT.invalidInput;
    case status.NOT_FOUND:
      return EXIT.notFound;
    case status.UNAVAILABLE:
    case status.DEADLINE_EXCEEDED:
      return EXIT.unavailable;
    case status.FAILED_PRECONDITION:
    case status.ALREADY_EXISTS:
      return EXIT.conflict;
    case status.UNAUTHENTICATED:
    case status.PERMISSION_DENIED:
      return EXIT.denied;
    default:
      return EXIT.failure;
  }
}
