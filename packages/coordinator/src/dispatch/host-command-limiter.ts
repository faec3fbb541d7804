/**
 * Caps the commands in flight to each host. A burst of placements on one
 * host then reaches its agent as a steady stream, in placement order,
 * rather than as hundreds of calls racing their deadlines, and the next
 * command goes out as soon as one completes.
 */
export class HostCommandLimiter {
  private readonly inFlight = new Map<string, number>();
  private readonly waiting = new Map<string, (() => void)[]>();

  constructor(
    /** Commands in flight per host. @default 16 */
    private readonly maxPerHost: number,
  ) {}

  /** Runs `command` once the host has a free slot; slots are granted first come, first served. */
  async run<T>(hostId: string, command: () => Promise<T>): Promise<T> {
    await this.acquire(hostId);
    try {
      return await command();
    } finally {
      this.release(hostId);
    }
  }

  /** Commands waiting for a slot on the host. */
  queued(hostId: string): number {
    return this.waiting.get(hostId)?.length ?? 0;
  }

  private acquire(hostId: string): Promise<void> {
    const running = this.inFlight.get(hostId) ?? 0;
    if (running < this.maxPerHost) {
      this.inFlight.set(hostId, running + 1);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const queue = this.waiting.get(hostId) ?? [];
      queue.push(resolve);
      this.waiting.set(hostId, queue);
    });
  }

  private release(hostId: string): void {
    const next = this.waiting.get(hostId)?.shift();
    // The slot passes straight to the next waiter, so the count stays the same.
    if (next) return next();
    if (this.waiting.get(hostId)?.length === 0) this.waiting.delete(hostId);
    const running = (this.inFlight.get(hostId) ?? 1) - 1;
    if (running > 0) this.inFlight.set(hostId, running);
    else this.inFlight.delete(hostId);
  }
}
