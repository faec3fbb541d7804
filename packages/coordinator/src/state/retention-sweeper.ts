import { errorMessage, type Logger } from '@virtfleet/shared';
import type { RequestLedger } from '../requests/request-ledger.js';
import type { StateStore } from '../workloads/workload-store.js';

export interface RetentionOptions {
  /** Deleted workloads are forgotten this long after their deletion. */
  deletedWorkloadsMs: number;
  /** Request ids are honoured for this long after their request completed. */
  requestsMs: number;
  /** Removed keys' markers stay this long, so a follower's watch sees every removal. @default 60_000 */
  removedKeyMarkersMs?: number;
}
/** Deleted workloads forgotten per pass, so one pass never stalls the writer. */
const BATCH = 1_000;

/**
 * Bounds what the state keeps: the leader forgets deleted workloads and
 * request ids past their retention, then drops the markers their removal
 * left in the bucket. Runs only while `isLeader()`.
 */
export class RetentionSweeper {
  private timer: NodeJS.Timeout | undefined;
  private sweeping = false;

  constructor(
    private readonly store: StateStore,
    private readonly requests: RequestLedger,
    private readonly options: RetentionOptions,
    private readonly isLeader: () => boolean,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Sweeps every quarter of the shortest retention, at most once a minute and at least every 100 ms. */
  start(): void {
    const intervalMs = Math.max(100, Math.min(60_000, Math.min(this.options.deletedWorkloadsMs, this.options.requestsMs) / 4));
    clearInterval(this.timer);
    this.timer = setInterval(() => void this.sweep(), intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One pass. Returns what it forgot. */
  async sweep(): Promise<{ workloads: number; requests: number }> {
    if (this.sweeping || !this.isLeader()) return { workloads: 0, requests: 0 };
    this.sweeping = true;
    try {
      const old = this.store.deletedBefore(this.now() - this.options.deletedWorkloadsMs, BATCH);
      for (const w of old) this.store.remove(w.id);
      const requests = this.requests.expire(this.options.requestsMs);
      if (old.length + requests > 0) this.log.info({ workloads: old.length, requests }, 'forgot deleted workloads and request ids past their retention');
      await this.store.compact(this.options.removedKeyMarkersMs ?? 60_000).catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'could not compact removed keys; trying again next pass'));
      return { workloads: old.length, requests };
    } finally {
      this.sweeping = false;
    }
  }
}
