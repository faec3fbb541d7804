/**
 * What keeps failover from amplifying a failure, after Kubernetes' node
 * lifecycle controller (evictions rate-limited, none at all when most of a
 * zone goes silent at once, on the theory that the controller is the one cut
 * off) and oVirt's fencing policy (no fencing when too many hosts lose
 * connectivity together).
 */

/**
 * A token bucket: `ratePerSecond` tokens a second, at most `burst` saved up.
 * Starts full. Time comes from `now` (ms), so tests drive it.
 */
export class TokenBucket {
  private tokens: number;
  private lastMs: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly now: () => number,
  ) {
    this.tokens = burst;
    this.lastMs = now();
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

export interface Disruption {
  /** True: nothing moves. */
  suspended: boolean;
  /** Hosts counted down, sorted. */
  down: string[];
  /** Hosts counted. */
  total: number;
  /** One line for events, logs and workload messages. */
  reason: string;
}

/**
 * Failover is suspended while more than `maxDownFraction` of the hosts are
 * down together: then the likelier cause is this coordinator's own network,
 * and moving their workloads would only pile them onto the few hosts left.
 * Hosts an operator confirmed dead count neither as down nor at all: they
 * are known to be gone, not merely silent.
 */
export function disruptionOf(hosts: readonly { id: string; down: boolean }[], confirmedDead: ReadonlySet<string>, maxDownFraction: number): Disruption {
  const counted = hosts.filter((h) => !confirmedDead.has(h.id));
  const down = counted.filter((h) => h.down).map((h) => h.id).sort();
  const total = counted.length;
  const suspended = total > 0 && down.length / total > maxDownFraction;
  const share = `${down.length} of ${total} host${total === 1 ? '' : 's'} down`;
  return {
    suspended,
    down,
    total,
    reason: suspended
      ? `${share} (${down.join(', ')}), more than failover.maxDownFraction ${maxDownFraction}: this coordinator may be the one cut off, so nothing is moved`
      : `${share}, at most failover.maxDownFraction ${maxDownFraction}`,
  };
}
