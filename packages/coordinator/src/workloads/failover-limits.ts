/**
 * What keeps failover from amplifying a failure, after Kubernetes' node
 * lifecycle controller (evictions rate-limited, slower while a large share of
 * a zone is NotReady, none at all when most of it goes silent at once, on the
 * theory that the controller is the one cut off) and oVirt's fencing policy
 * (no fencing when too many hosts lose connectivity together).
 */

/**
 * A token bucket: `ratePerSecond` tokens a second, at most `burst` saved up.
 * Starts full. Time comes from `now` (ms), so tests drive it.
 */
export class TokenBucket {
  private tokens: number;
  private lastMs: number;

  constructor(
    private ratePerSecond: number,
    private readonly burst: number,
    private readonly now: () => number,
  ) {
    this.tokens = burst;
    this.lastMs = now();
  }

  /** Tokens a second now. */
  get rate(): number {
    return this.ratePerSecond;
  }

  /**
   * Changes the rate from now on. Tokens earned until now are kept, at the old
   * rate: the bucket is neither topped up nor emptied, so a switch neither
   * grants a burst nor takes back one already earned.
   * @throws RangeError unless the rate is above 0 (nothing would ever be due).
   */
  setRate(ratePerSecond: number): void {
    if (!(ratePerSecond > 0)) throw new RangeError(`token bucket rate must be above 0, not ${ratePerSecond}`);
    if (ratePerSecond === this.ratePerSecond) return;
    this.refill();
    this.ratePerSecond = ratePerSecond;
  }

  /** Takes one token if there is one. */
  tryTake(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until `count` tokens (at most the burst) are available; 0 when they are. */
  msUntil(count = 1): number {
    this.refill();
    const want = Math.min(count, this.burst);
    return this.tokens >= want ? 0 : Math.ceil(((want - this.tokens) * 1000) / this.ratePerSecond);
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.lastMs) * this.ratePerSecond) / 1000);
    this.lastMs = now;
  }
}

/** The coordinator's failover settings that `disruptionOf` judges by (config `failover.*`). */
export interface FailoverLimits {
  /** The rate in normal times. */
  reschedulesPerSecond: number;
  /** The rate in partial disruption; never more than `reschedulesPerSecond`. */
  secondaryReschedulesPerSecond: number;
  /** More than this fraction of the hosts down (and at most `maxDownFraction`): partial disruption. */
  partialDisruptionFraction: number;
  /** A cluster of at most this many hosts is never in partial disruption. */
  smallClusterHosts: number;
  /** More than this fraction of the hosts down: failover suspended. */
  maxDownFraction: number;
}

/**
 * `normal`: workloads move at the primary rate. `partial`: at the secondary
 * rate. `suspended`: nothing moves.
 */
export type FailoverMode = 'normal' | 'partial' | 'suspended';

export interface Disruption {
  mode: FailoverMode;
  /** Reschedules per second in effect; 0 when suspended. */
  ratePerSecond: number;
  /** Hosts counted down, sorted. */
  down: string[];
  /** Hosts counted. */
  total: number;
  /** The rate in effect in a few words, for "waiting its turn": `at most 1 reschedule per second: partial disruption, 2 of 5 hosts down`. */
  pace: string;
  /** One line for events, logs and workload messages. */
  reason: string;
}

/** `1 reschedule per second`, `10 reschedules per second`. */
export function reschedulesPerSecond(rate: number): string {
  return `${rate} reschedule${rate === 1 ? '' : 's'} per second`;
}

/**
 * How far the loss of hosts limits failover, from the share of hosts down
 * together:
 * - more than `maxDownFraction`: suspended. The likelier cause is this
 *   coordinator's own network, and moving their workloads would only pile
 *   them onto the few hosts left.
 * - more than `partialDisruptionFraction`: partial disruption, workloads move
 *   at the secondary rate (at most the primary one). Unlike Kubernetes, which
 *   stops evictions in small clusters here, a cluster of at most
 *   `smallClusterHosts` stays at the primary rate: there one lost host is
 *   already a large share, and it is the failure failover is for; the
 *   suspension still guards against this coordinator being the one cut off.
 * - otherwise normal, at the primary rate.
 * Hosts an operator confirmed dead count neither as down nor at all: they are
 * known to be gone, not merely silent.
 */
export function disruptionOf(hosts: readonly { id: string; down: boolean }[], confirmedDead: ReadonlySet<string>, limits: FailoverLimits): Disruption {
  const counted = hosts.filter((h) => !confirmedDead.has(h.id));
  const down = counted.filter((h) => h.down).map((h) => h.id).sort();
  const total = counted.length;
  const fraction = total > 0 ? down.length / total : 0;
  const share = `${down.length} of ${total} host${total === 1 ? '' : 's'} down`;
  const { maxDownFraction: max, partialDisruptionFraction: partial, smallClusterHosts: small } = limits;
  if (total > 0 && fraction > max) {
    return {
      mode: 'suspended',
      ratePerSecond: 0,
      down,
      total,
      pace: 'none: failover suspended',
      reason: `${share} (${down.join(', ')}), more than failover.maxDownFraction ${max}: this coordinator may be the one cut off, so nothing is moved`,
    };
  }
  if (fraction > partial && total > small) {
    const rate = Math.min(limits.secondaryReschedulesPerSecond, limits.reschedulesPerSecond);
    return {
      mode: 'partial',
      ratePerSecond: rate,
      down,
      total,
      pace: `at most ${reschedulesPerSecond(rate)}: partial disruption, ${share}`,
      reason: `${share} (${down.join(', ')}), more than failover.partialDisruptionFraction ${partial}: partial disruption, so at most ${reschedulesPerSecond(rate)} (failover.secondaryReschedulesPerSecond)`,
    };
  }
  const rate = limits.reschedulesPerSecond;
  return {
    mode: 'normal',
    ratePerSecond: rate,
    down,
    total,
    pace: `at most ${reschedulesPerSecond(rate)}`,
    reason:
      fraction > partial
        ? `${share}, at most failover.maxDownFraction ${max}; a cluster of ${total} is within failover.smallClusterHosts ${small}, so no partial disruption: at most ${reschedulesPerSecond(rate)}`
        : `${share}, at most failover.partialDisruptionFraction ${partial}: at most ${reschedulesPerSecond(rate)}`,
  };
}
