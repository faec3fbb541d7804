import { createHash } from 'node:crypto';
import { FailedPreconditionError, errorMessage, type Logger } from '@virtfleet/shared';

/** One operator request that succeeded, kept so that a repeat of its id returns the same answer. */
export interface RequestRecord {
  requestId: string;
  /** The API method, e.g. `StopWorkload`. */
  method: string;
  /** Every handle of the call's target a repeat may use: the reference as given, and e.g. the workload's id and name. */
  subjects: string[];
  /** The call's other parameters as canonical JSON. */
  params: string;
  /** The first call's response. */
  response: unknown;
  /** When the first call completed, ms since the epoch. */
  completedAtMs: number;
}

/** Where request records live; durable so that a new leader honours the old one's ids. */
export interface RequestStore {
  getRequest(requestId: string): RequestRecord | undefined;
  /** Resolves once the record is durable. */
  putRequest(record: RequestRecord): Promise<void>;
  /** Records completed before `cutoffMs`. */
  requestsBefore(cutoffMs: number): RequestRecord[];
  deleteRequest(requestId: string): void;
  /** The method and target that already used this id outside this ledger (a create's id is kept on its workload). */
  otherUseOf(requestId: string): string | undefined;
}

/** What makes two calls the same request. */
export interface CallIdentity {
  method: string;
  /** The target as the caller named it (workload id or name, host id); '' for none. */
  subject: string;
  params: Record<string, unknown>;
}

export interface RequestCall<Res> extends CallIdentity {
  /** More handles of the target, read off the response (e.g. a workload's id and name). */
  aliases?: (response: Res) => string[];
}

/**
 * Makes every mutating call exactly-once per request id: the first success
 * is recorded durably before it is returned, a repeat gets that response
 * without acting again, and the same id on a different call is refused.
 * Concurrent repeats wait for the first. Failures record nothing: a refused
 * request changes nothing, so its id may be tried again.
 */
export class RequestLedger {
  private readonly inFlight = new Map<string, { call: CallIdentity; result: Promise<unknown> }>();

  constructor(
    private readonly store: RequestStore,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Runs `execute` unless `requestId` already succeeded; with an empty id it
   * always runs.
   * @throws FailedPreconditionError when the id was used for another call.
   */
  async run<Res>(requestId: string, call: RequestCall<Res>, execute: () => Promise<Res>): Promise<Res> {
    if (!requestId) return execute();
    const running = this.inFlight.get(requestId);
    if (running) {
      requireSameCall(requestId, running.call, call);
      return (await running.result) as Res;
    }
    const earlier = this.store.getRequest(requestId);
    if (earlier) {
      requireSameRecord(earlier, call);
      return earlier.response as Res;
    }
    const other = this.store.otherUseOf(requestId);
    if (other) throw new FailedPreconditionError(`request_id ${requestId} was already used for ${other}`);
    const result = this.execute(requestId, call, execute);
    this.inFlight.set(requestId, { call, result });
    try {
      return await result;
    } finally {
      this.inFlight.delete(requestId);
    }
  }

  private async execute<Res>(requestId: string, call: RequestCall<Res>, execute: () => Promise<Res>): Promise<Res> {
    const response = await execute();
    const subjects = [...new Set([call.subject, ...(call.aliases?.(response) ?? [])].filter(Boolean))];
    const record: RequestRecord = { requestId, method: call.method, subjects, params: canonicalJson(call.params), response, completedAtMs: this.now() };
    try {
      await this.store.putRequest(record);
    } catch (err) {
      // The action is done; a repeat that finds no record acts again, and the agent's ledger makes that a no-op.
      this.log.warn({ requestId, method: call.method, err: errorMessage(err) }, 'request record not stored');
    }
    return response;
  }

  /** Forgets ids completed more than `retentionMs` ago. Returns how many. */
  expire(retentionMs: number): number {
    const old = this.store.requestsBefore(this.now() - retentionMs);
    for (const r of old) this.store.deleteRequest(r.requestId);
    return old.length;
  }
}

function describe(method: string, subject: string): string {
  return subject ? `${method} on ${subject}` : method;
}

function requireSameCall(requestId: string, first: CallIdentity, call: CallIdentity): void {
  if (first.method !== call.method || first.subject !== call.subject || canonicalJson(first.params) !== canonicalJson(call.params))
    throw new FailedPreconditionError(`request_id ${requestId} is in use by another request (${describe(first.method, first.subject)})`);
}

function requireSameRecord(earlier: RequestRecord, call: CallIdentity): void {
  const sameTarget = call.subject === '' ? earlier.subjects.length === 0 : earlier.subjects.includes(call.subject);
  if (earlier.method !== call.method || !sameTarget || earlier.params !== canonicalJson(call.params))
    throw new FailedPreconditionError(`request_id ${earlier.requestId} was already used for a different request (${describe(earlier.method, earlier.subjects[0] ?? '')})`);
}

/** JSON with object keys sorted, so equal parameters always compare equal. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

/** A NATS KV key for a request id (ids may hold characters keys may not). */
export function requestKey(requestId: string): string {
  return createHash('sha256').update(requestId).digest('hex').slice(0, 40);
}
