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
  /** The holder's clock, ms since the epoch. */
  expiresAtMs: number;
}

export interface LeaseEvents {
  /** This coordinator now leads. Called once per term. */
  onElected(term: number): void | Promise<void>;
  /** This coordinator no longer leads (lost the lease or could not renew it). */
  onDeposed(reason: string): void;
}

export interface LeaseOptions {
  /** How long a lease lasts without renewal. @default 3000 */
  ttlMs: number;
  /** How often the holder renews and others check. @default ttlMs / 3 */
  renewEveryMs?: number;
}

/**
 * Leader election by a lease in JetStream KV. The holder renews it by
 * compare-and-set on the key's revision; anyone may take it, again by
 * compare-and-set, once it has expired. Only one compare-and-set on a
 * revision succeeds, so at most one coordinator holds a given term.
 *
 * Expiry compares timestamps from different coordinators' clocks, so clocks
 * must agree to well within the TTL (NTP does). A holder that cannot renew
 * steps down on its own once its lease has run out by its own clock.
 */
export class LeaderLease {
  private timer: NodeJS.Timeout | undefined;
  private revision = 0;
  private current: LeaseRecord | undefined;
  private leading = false;
  private ticking: Promise<void> | undefined;
  private readonly renewEveryMs: number;

  constructor(
    private readonly kv: KV,
    private readonly me: Omit<LeaseRecord, 'term' | 'expiresAtMs'>,
    private readonly options: LeaseOptions,
    private readonly events: LeaseEvents,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
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
    return this.leading && this.current !== undefined && this.now() < this.current.expiresAtMs;
  }

  /** The last lease seen: who leads, where, until when. */
  get leader(): LeaseRecord | undefined {
    return this.current;
  }

  private async tick(): Promise<void> {
    try {
      if (this.leading) await this.renew();
      else await this.campaign();
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'leader lease check failed');
      if (this.leading && this.current && this.now() >= this.current.expiresAtMs) this.depose('lease expired while the store was unreachable');
    }
  }

  private async renew(): Promise<void> {
    const next: LeaseRecord = { ...this.current!, expiresAtMs: this.now() + this.options.ttlMs };
    try {
      this.revision = await this.kv.update(LEADER_KEY, JSON.stringify(next), this.revision);
      this.current = next;
    } catch (err) {
      // A failed compare-and-set means another coordinator took the lease.
      if (String(err).includes('wrong last sequence')) this.depose('another coordinator took the lease');
      else throw err;
    }
  }

  private async campaign(): Promise<void> {
    const entry = await this.kv.get(LEADER_KEY);
    const now = this.now();
    if (!entry || entry.operation !== 'PUT') {
      const record: LeaseRecord = { ...this.me, term: 1, expiresAtMs: now + this.options.ttlMs };
      try {
        this.revision = await this.kv.create(LEADER_KEY, JSON.stringify(record));
      } catch {
        return; // lost the race to create it
      }
      return this.elected(record);
    }
    const held = entry.json<LeaseRecord>();
    this.current = held;
    if (held.expiresAtMs > now && held.holder !== this.me.holder) return;
    const record: LeaseRecord = { ...this.me, term: held.term + 1, expiresAtMs: now + this.options.ttlMs };
    try {
      this.revision = await this.kv.update(LEADER_KEY, JSON.stringify(record), entry.revision);
    } catch {
      return; // someone else took it first
    }
    await this.elected(record);
  }

  private async elected(record: LeaseRecord): Promise<void> {
    this.current = record;
    this.leading = true;
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
