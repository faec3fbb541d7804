import type { KV } from '@nats-io/kv';
import { errorMessage, type Logger } from '@virtfleet/shared';

export const LEADER_KEY = 'leader';

/** What the lease key holds. */
export interface LeaseRecord {
  /** The holder's unique id for this run (coordinator id plus a boot nonce). */
  holder: string;
  coordinatorId: string;
  /** The holder's operator API address, so followers can point clients at it. */
  address: string;
  /** Increases by one with every change of leader. */
  term: number;
  /**
   * The holder's wall clock plus the TTL, for people and hints only: no
   * decision compares it with another clock. 0 marks a lease handed back.
   */
  expiresAtMs: number;
}

export interface LeaseEvents {
  /** This coordinator now leads. Called once per term. */
  onElected(term: number): void | Promise<void>;
  /** This coordinator no longer leads (lost the lease or could not renew it). */
  onDeposed(reason: string): void;
  /** A renewal ended: ok, failed (the store did not answer; retried) or lost (another coordinator had taken the lease). */
  onRenewal?(outcome: 'ok' | 'failed' | 'lost'): void;
}

export interface LeaseOptions {
  /** How long a lease lasts without renewal. @default 3000 */
  ttlMs: number;
  /** How often the holder renews and others check. @default ttlMs / 3 */
  renewEveryMs?: number;
}

/** The part of a KV bucket the lease uses. */
export type LeaseStore = Pick<KV, 'get' | 'create' | 'update'>;

/**
 * Leader election by a lease in JetStream KV, built from compare-and-set.
 *
 * The holder renews the key by compare-and-set on its revision. It leads
 * for `ttlMs` after it sent its last acknowledged renewal, by its own
 * monotonic clock, and steps down when that runs out.
 *
 * The others watch the key's revision. Once it has not changed for `ttlMs`
 * since they first saw it, by their own monotonic clock, they may take it,
 * again by compare-and-set, so at most one coordinator wins a term. A
 * renewal is seen only after it was sent, so the holder's time is always
 * up before anyone else's: no two coordinators lead at once. Clocks need
 * only run at the same rate, not agree.
 *
 * A lease handed back (expiresAtMs 0), or last held under this same
 * coordinator id (this run, or an earlier one), is taken at once: the
 * compare-and-set still fails if anyone else moved it on. Coordinator ids
 * must be unique.
 */
export class LeaderLease {
  private timer: NodeJS.Timeout | undefined;
  private revision = 0;
  private current: LeaseRecord | undefined;
  private leading = false;
  /** Leader: when its last acknowledged renewal was sent. */
  private renewedAt = 0;
  /** Follower: the latest revision seen and when it was first seen. */
  private seen: { revision: number; atMs: number } | undefined;
  private ticking: Promise<void> | undefined;
  private readonly renewEveryMs: number;

  constructor(
    private readonly kv: LeaseStore,
    private readonly me: Omit<LeaseRecord, 'term' | 'expiresAtMs'>,
    private readonly options: LeaseOptions,
    private readonly events: LeaseEvents,
    private readonly log: Logger,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.renewEveryMs = options.renewEveryMs ?? Math.max(100, Math.floor(options.ttlMs / 3));
  }

  start(): void {
    const loop = () => {
      this.ticking = this.tick().finally(() => {
        this.ticking = undefined;
        if (this.timer !== undefined) this.timer = setTimeout(loop, this.renewEveryMs);
      });
    };
    this.timer = setTimeout(loop, 0);
  }

  /** Stops campaigning; a leader hands the lease back so a follower takes over at once. */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.ticking;
    if (this.leading) {
      this.leading = false;
      try {
        await this.kv.update(LEADER_KEY, JSON.stringify({ ...this.current, expiresAtMs: 0 }), this.revision);
      } catch {
        // Someone else already moved on; nothing to hand back.
      }
    }
  }

  get isLeader(): boolean {
    return this.leading && this.now() - this.renewedAt < this.options.ttlMs;
  }

  /**
   * True while state writes may go out: the lease holds with a fifth of its
   * TTL to spare, so a write sent now lands before any other coordinator can
   * take over, even if it is delayed on its way.
   */
  get mayWrite(): boolean {
    return this.leading && this.now() - this.renewedAt < this.options.ttlMs * 0.8;
  }

  /** Gives up leadership at once, e.g. when a write shows another coordinator has taken over. */
  stepDown(reason: string): void {
    this.depose(reason);
  }

  /** The last lease seen: who leads, where. */
  get leader(): LeaseRecord | undefined {
    return this.current;
  }

  private async tick(): Promise<void> {
    try {
      if (this.leading) await this.renew();
      else await this.campaign();
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'leader lease check failed');
    }
    if (this.leading && !this.isLeader) this.depose('lease expired while the store was unreachable');
  }

  private async renew(): Promise<void> {
    const sentAt = this.now();
    const next: LeaseRecord = { ...this.current!, expiresAtMs: Date.now() + this.options.ttlMs };
    try {
      this.revision = await this.kv.update(LEADER_KEY, JSON.stringify(next), this.revision);
      this.renewedAt = sentAt;
      this.current = next;
      this.events.onRenewal?.('ok');
    } catch (err) {
      // A failed compare-and-set means another coordinator took the lease.
      const lost = String(err).includes('wrong last sequence');
      this.events.onRenewal?.(lost ? 'lost' : 'failed');
      if (lost) this.depose('another coordinator took the lease');
      else throw err;
    }
  }

  private async campaign(): Promise<void> {
    const entry = await this.kv.get(LEADER_KEY);
    const sentAt = this.now();
    if (!entry || entry.operation !== 'PUT') {
      const record: LeaseRecord = { ...this.me, term: 1, expiresAtMs: Date.now() + this.options.ttlMs };
      try {
        this.revision = await this.kv.create(LEADER_KEY, JSON.stringify(record));
      } catch {
        return; // lost the race to create it
      }
      return this.elected(record, sentAt);
    }
    const held = entry.json<LeaseRecord>();
    this.current = held;
    if (this.seen?.revision !== entry.revision) this.seen = { revision: entry.revision, atMs: this.now() };
    // Its own lease (this run's, kept after a store outage deposed it, or an earlier run's) it may take back at once.
    const free = held.expiresAtMs === 0 || held.coordinatorId === this.me.coordinatorId;
    if (!free && this.now() - this.seen.atMs < this.options.ttlMs) return;
    const record: LeaseRecord = { ...this.me, term: held.term + 1, expiresAtMs: Date.now() + this.options.ttlMs };
    try {
      this.revision = await this.kv.update(LEADER_KEY, JSON.stringify(record), entry.revision);
    } catch {
      return; // someone else took it first, or it was renewed after all
    }
    await this.elected(record, sentAt);
  }

  private async elected(record: LeaseRecord, sentAt: number): Promise<void> {
    this.current = record;
    this.leading = true;
    this.renewedAt = sentAt;
    this.seen = undefined;
    this.log.info({ term: record.term }, 'elected leader');
    try {
      await this.events.onElected(record.term);
    } catch (err) {
      // Could not take over (the store did not answer): hand the lease back for someone who can.
      this.log.warn({ err: errorMessage(err) }, 'could not take over as leader; stepping down');
      this.leading = false;
      this.events.onDeposed('take-over failed');
      await this.kv.update(LEADER_KEY, JSON.stringify({ ...record, expiresAtMs: 0 }), this.revision).catch(() => undefined);
    }
  }

  private depose(reason: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.log.warn({ reason }, 'no longer the leader');
    this.events.onDeposed(reason);
  }
}
