import { UnavailableError } from '@virtfleet/shared';

/**
 * An engine (Docker, libvirtd) did not answer a call within its deadline. The
 * call may still complete in the engine later; every driver operation is
 * idempotent, so a retry is safe. Retryable, like any UnavailableError.
 */
export class DriverTimeoutError extends UnavailableError {
  constructor(
    readonly driver: string,
    readonly operation: string,
    readonly timeoutMs: number,
    /** Why it timed out without being sent, when it was not. */
    notSentBecause?: string,
  ) {
    super(notSentBecause ? `${driver}: ${operation} ${notSentBecause}` : `${driver}: ${operation} did not answer within ${timeoutMs} ms`);
  }
}
