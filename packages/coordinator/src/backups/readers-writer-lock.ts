interface Waiter {
  exclusive: boolean;
  grant: () => void;
}

/**
 * Many holders of the shared side at once, or one of the exclusive side.
 * First come, first served: once an exclusive holder waits, later shared
 * callers queue behind it, so a stream of overlapping shared holders cannot
 * starve it. In-process only.
 */
export class ReadersWriterLock {
  private sharedHolders = 0;
  private exclusiveHeld = false;
  private readonly waiting: Waiter[] = [];

  shared<T>(fn: () => Promise<T>): Promise<T> {
    return this.hold(false, fn);
  }

  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.hold(true, fn);
  }

  private async hold<T>(exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    await this.acquire(exclusive);
    try {
      return await fn();
    } finally {
      if (exclusive) this.exclusiveHeld = false;
      else this.sharedHolders--;
      this.grantWaiting();
    }
  }

  private acquire(exclusive: boolean): Promise<void> {
    if (this.waiting.length === 0 && this.free(exclusive)) {
      this.take(exclusive);
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push({ exclusive, grant: resolve }));
  }

  private free(exclusive: boolean): boolean {
    return !this.exclusiveHeld && (!exclusive || this.sharedHolders === 0);
  }

  private take(exclusive: boolean): void {
    if (exclusive) this.exclusiveHeld = true;
    else this.sharedHolders++;
  }

  private grantWaiting(): void {
    for (let next = this.waiting[0]; next && this.free(next.exclusive); next = this.waiting[0]) {
      this.waiting.shift();
      this.take(next.exclusive);
      next.grant();
    }
  }
}
