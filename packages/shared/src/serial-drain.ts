/**
 * Runs an async drain of a queue, one run at a time. `kick` starts a run
 * unless one is going; a run that ends while `more()` still holds (work
 * queued after the drain last looked, but before it finished) starts the
 * next at once, so nothing queued waits for a later kick.
 */
export class SerialDrain {
  private run: Promise<void> | undefined;

  constructor(
    private readonly drain: () => Promise<void>,
    /** Whether work is left that a new run should take. */
    private readonly more: () => boolean,
  ) {}

  kick(): void {
    if (this.run) return;
    this.run = this.drain().finally(() => {
      this.run = undefined;
      if (this.more()) this.kick();
    });
  }

  /** The run in progress, if any. */
  get running(): Promise<void> | undefined {
    return this.run;
  }
}
