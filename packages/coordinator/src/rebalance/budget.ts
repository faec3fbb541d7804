/**
 * Search effort: counted in evaluations so that a plan does not depend on
 * the machine's speed, with a wall-clock limit behind it as a safety net.
 */
export class Budget {
  spent = 0;
  /** Set once the wall-clock limit stopped the search. */
  truncated = false;
  private readonly deadline: number;

  constructor(
    readonly limit: number,
    timeLimitMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.deadline = now() + timeLimitMs;
  }

  /** Counts `n` evaluations; true while effort and time remain. */
  spend(n = 1): boolean {
    const before = this.spent;
    this.spent += n;
    // Reading the clock is not free: look every 4096 evaluations.
    if (!this.truncated && before >>> 12 !== this.spent >>> 12 && this.now() > this.deadline) this.truncated = true;
    return !this.exhausted();
  }

  exhausted(): boolean {
    return this.truncated || this.spent >= this.limit;
  }

  /** A share of what is left, for one attempt: at most `cap` evaluations. */
  slice(cap: number): Budget {
    const child = new SliceBudget(this, Math.min(cap, Math.max(0, this.limit - this.spent)));
    return child;
  }
}

class SliceBudget extends Budget {
  private readonly start: number;

  constructor(
    private readonly parent: Budget,
    limit: number,
  ) {
    super(limit, Number.POSITIVE_INFINITY);
    this.start = parent.spent;
  }

  override spend(n = 1): boolean {
    this.parent.spend(n);
    this.spent = this.parent.spent - this.start;
    return !this.exhausted();
  }

  override exhausted(): boolean {
    return this.parent.exhausted() || this.spent >= this.limit;
  }
}
