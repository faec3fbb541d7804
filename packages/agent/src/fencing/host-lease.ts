import { Kvm, type KV } from '@nats-io/kv';
import { errorMessage, fenceRecordKey, hostLeaseKey, hostLeaseSchema, type FenceRecord, type HostLeaseRecord, type Logger, type NatsConnection } from '@virtfleet/shared';
import { every, type Periodic } from '../periodic.js';

/** What the lease protects: the host's fence-first workloads. */
export interface Fenceable {
  /** Stops every fence-first workload at once. Resolves with how many could not be stopped, and which it stopped. */
  fence(reason: string): Promise<{ stopped: number; failed: number; workloads?: string[] }>;
  /** While false, fence-first workloads must not be created, started or resumed. */
  setLeaseHeld(held: boolean): void;
}

/** The part of a KV bucket the lease uses. */
export type LeaseBucket = Pick<KV, 'get' | 'put'>;

export interface HostLeaseOptions {
  bucket: string;
  /** Fence once no renewal has been confirmed for this long. Shorter than the coordinator's host TTL. */
  fenceTimeoutMs: number;
  renewIntervalMs: number;
  /**
   * Where in each interval the periodic renewals and checks fall, as a
   * fraction (see `every`); the first renewal is sent at once whatever it
   * is, and the second at most one interval later. Hosts simulated in one
   * process take different phases so they do not all renew together.
   * @default 0
   */
  phase?: number;
}

/**
 * The agent's side of fencing. It renews `lease.<host>` in a JetStream KV
 * bucket every `renewIntervalMs`. A renewal counts from the moment it was
 * sent, once JetStream has acknowledged it. When no renewal has been
 * confirmed for `fenceTimeoutMs` (NATS unreachable, the host cut off, the
 * process frozen), the agent fences itself: it stops its fence-first
 * workloads and refuses to start them until a renewal succeeds again.
 *
 * The coordinator counts the same interval from when each renewal reached
 * it, which is never earlier than when it was sent. So by the time it deems
 * this host fenced, the agent has already stopped its workloads, provided
 * the two clocks run at the same rate and the agent process is alive.
 * Timing uses the monotonic clock, so wall-clock steps do not matter.
 *
 * The coordinator cannot tell a lapse it caused from a dead agent, so a
 * lapsed lease alone is no proof. Once every fence-first workload is
 * stopped, the lease writes a fence record (`fence.<host>`), retried until
 * stored and always before the next renewal: the coordinator moves
 * fence-first workloads only when that record follows the last renewal.
 */
export class HostLease {
  private kv: LeaseBucket | undefined;
  private lastConfirmedSentAt: number | undefined;
  private readonly startedAt = performance.now();
  private fenced = false;
  private fencing: Promise<void> | undefined;
  private renewTimer: Periodic | undefined;
  private checkTimer: Periodic | undefined;
  /** When the renewal in flight was sent (monotonic ms); undefined when none is. */
  private renewingSince: number | undefined;
  /** A fence record not yet stored; written before any later renewal. */
  private pendingRecord: FenceRecord | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly hostId: string,
    private readonly bootId: string,
    private readonly options: HostLeaseOptions,
    private readonly target: Fenceable,
    private readonly log: Logger,
    private readonly now: () => number = () => performance.now(),
    /**
     * Opens the lease bucket; the coordinator creates it, so until then this fails and renewals with it.
     * Direct gets: only they name the key in the subject, which an agent's NATS user is limited to.
     */
    private readonly openBucket: () => Promise<LeaseBucket> = () =>
      new Kvm(nc).open(options.bucket, { allow_direct: true, timeout: Math.min(5_000, Math.max(500, options.renewIntervalMs)) }),
  ) {}

  /**
   * Starts renewing. A lease left by this host's previous run that lapsed
   * long ago means the coordinator may have moved its workloads already:
   * fence before anything else.
   */
  async start(): Promise<void> {
    this.target.setLeaseHeld(false);
    const previous = await this.previousLease().catch(() => undefined);
    if (previous && previous.boot_id !== this.bootId && Date.now() - Date.parse(previous.renewed_at) > this.options.fenceTimeoutMs) {
      await this.fenceNow(`the previous run's lease lapsed at ${previous.renewed_at}`);
    }
    const phase = this.options.phase ?? 0;
    this.renewTimer = every(this.options.renewIntervalMs, () => void this.renew(), phase);
    this.checkTimer = every(Math.max(50, Math.min(250, this.options.fenceTimeoutMs / 10)), () => void this.check(), phase);
    void this.renew();
  }

  stop(): void {
    this.renewTimer?.stop();
    this.checkTimer?.stop();
  }

  /**
   * Stops renewing, fences now and stores the fence record, retrying the
   * record until `recordDeadlineMs` has passed. Resolves true once the record
   * is stored: the lease then lapses with proof behind it. Used by the fencer
   * when its agent is gone.
   */
  async release(reason: string, recordDeadlineMs: number): Promise<boolean> {
    this.stop();
    await this.fencing;
    const giveUpAt = this.now() + recordDeadlineMs;
    while (!this.fenced) {
      await this.fenceNow(reason);
      if (this.now() > giveUpAt) return false;
      if (!this.fenced) await new Promise((r) => setTimeout(r, 500));
    }
    for (;;) {
      try {
        await this.writeFenceRecord();
        if (!this.pendingRecord) return true;
      } catch (err) {
        this.kv = undefined;
        this.log.debug({ err: errorMessage(err) }, 'fence record not stored yet');
      }
      if (this.now() > giveUpAt) return false;
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** True while a renewal has been confirmed within the fence timeout. */
  get held(): boolean {
    return !this.fenced && this.lastConfirmedSentAt !== undefined && this.now() - this.lastConfirmedSentAt <= this.options.fenceTimeoutMs;
  }

  get isFenced(): boolean {
    return this.fenced;
  }

  private lapsed(): boolean {
    return this.now() - (this.lastConfirmedSentAt ?? this.startedAt) > this.options.fenceTimeoutMs;
  }

  private async previousLease(): Promise<HostLeaseRecord | undefined> {
    const entry = await (await this.bucket()).get(hostLeaseKey(this.hostId));
    if (!entry || entry.operation !== 'PUT') return undefined;
    const parsed = hostLeaseSchema.safeParse(entry.json());
    return parsed.success ? parsed.data : undefined;
  }

  private async bucket(): Promise<LeaseBucket> {
    this.kv ??= await this.openBucket();
    return this.kv;
  }

  private async renew(): Promise<void> {
    const sentAt = this.now();
    // A renewal still unanswered after half an interval (a write hung while cut off from NATS) no longer holds
    // the next one back; its acknowledgement still counts, from its own send time, if it ever comes.
    if (this.renewingSince !== undefined && sentAt - this.renewingSince < this.options.renewIntervalMs / 2) return;
    this.renewingSince = sentAt;
    try {
      await this.writeFenceRecord();
      const record: HostLeaseRecord = { host_id: this.hostId, boot_id: this.bootId, fence_timeout_ms: this.options.fenceTimeoutMs, renewed_at: new Date().toISOString() };
      await (await this.bucket()).put(hostLeaseKey(this.hostId), JSON.stringify(record));
      // A frozen process may wake with a renewal in flight: fence first if the lease lapsed meanwhile.
      if (this.lapsed() && !this.fenced) await this.fenceNow('the host lease lapsed');
      await this.fencing;
      if (this.lastConfirmedSentAt === undefined || sentAt > this.lastConfirmedSentAt) this.lastConfirmedSentAt = sentAt;
      // A renewal acknowledged late may be too old already: it proves nothing about now.
      if (this.lapsed()) return;
      if (this.fenced) this.log.warn('host lease renewed again; fenced workloads stay stopped until the coordinator acts');
      this.fenced = false;
      this.target.setLeaseHeld(true);
    } catch (err) {
      this.kv = undefined;
      this.log.debug({ err: errorMessage(err) }, 'host lease renewal failed');
    } finally {
      if (this.renewingSince === sentAt) this.renewingSince = undefined;
    }
  }

  private async check(): Promise<void> {
    if (!this.fenced && this.lapsed()) await this.fenceNow(`no host lease renewal confirmed for ${this.options.fenceTimeoutMs} ms`);
  }

  private fenceNow(reason: string): Promise<void> {
    this.target.setLeaseHeld(false);
    this.fencing ??= (async () => {
      const result = await this.target.fence(reason);
      // Stay unfenced on failure so the next check tries again.
      this.fenced = result.failed === 0;
      this.log.warn({ reason, stopped: result.stopped, failed: result.failed }, result.failed === 0 ? 'fenced: fence-first workloads stopped' : 'fencing incomplete; retrying');
      if (!this.fenced) return;
      this.pendingRecord = { host_id: this.hostId, boot_id: this.bootId, fenced_at: new Date().toISOString(), reason, workloads: result.workloads ?? [] };
      // Cut off, this fails; renew() tries again before its own write.
      await this.writeFenceRecord().catch((err: unknown) => this.log.debug({ err: errorMessage(err) }, 'fence record not stored yet'));
    })().finally(() => (this.fencing = undefined));
    return this.fencing;
  }

  /** Stores the pending fence record, if any. Throws when the bucket cannot be reached. */
  private async writeFenceRecord(): Promise<void> {
    const record = this.pendingRecord;
    if (!record) return;
    // Bounded like a renewal: renew() waits on this, and a write stuck while cut off must not hold up later renewals.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('fence record write timed out')), this.options.renewIntervalMs)));
    try {
      await Promise.race([this.bucket().then((kv) => kv.put(fenceRecordKey(this.hostId), JSON.stringify(record))), timeout]);
    } finally {
      clearTimeout(timer);
    }
    if (this.pendingRecord === record) this.pendingRecord = undefined;
    this.log.info({ workloads: record.workloads.length }, 'fence record stored');
  }
}
