/**
 * Runs at most `concurrency` tasks at once; the rest wait in arrival order
 * (first in, first out) and none is refused. A task holds its slot until it
 * settles, even after its caller gave up on it: an engine still busy with it
 * gets no more work meanwhile.
 */
export class OpQueue {
  private readonly waiting: (() => void)[] = [];
  private running = 0;

  constructor(readonly concurrency: number) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be a whole number of at least 1, not ${concurrency}`);
  }

  /** Tasks waiting for a slot. */
  get depth(): number {
    return this.waiting.length;
  }

  /** Tasks holding a slot. */
  get inFlight(): number {
    return this.running;
  }

  /** Runs `task` once a slot is free; settles as the task does. */
  run<T>(task: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const start = (): void => {
        this.running++;
        let work: Promise<T>;
        try {
          work = task();
        } catch (err) {
          work = Promise.reject(err instanceof Error ? err : new Error(String(err)));
        }
        work.then(resolve, reject).finally(() => {
          this.running--;
          this.waiting.shift()?.();
        });
      };
      if (this.running < this.concurrency) start();
      else this.waiting.push(start);
    });
  }
}
