/** What one command of a batch came to. */
export type CommandOutcome<R> = { ok: true; value: R } | { ok: false; error: unknown };

/** Sends one batch of a host's commands and answers with each one's outcome, in order; rejects when the call as a whole failed. */
export type BatchSender<C, R> = (commands: C[]) => Promise<CommandOutcome<R>[]>;

interface Waiting<C, R> {
  command: C;
  send: BatchSender<C, R>;
  resolve: (value: R) => void;
  reject: (error: unknown) => void;
}

interface HostQueue<C, R> {
  inFlight: number;
  waiting: Waiting<C, R>[];
  flushScheduled: boolean;
}

/**
 * Caps the commands in flight to each host and sends them in batches. The
 * commands given for one host in the same turn of the event loop go out in
 * one call, and so do those that waited for a free slot: a burst of
 * placements reaches an agent as a few calls in placement order instead of
 * a call per command, while a lone command waits for nothing but the end of
 * the turn. `alone` commands (a graceful stop may take its whole timeout)
 * always get a call of their own, so a batch never waits for one.
 */
export class HostCommandBatcher<C, R> {
  private readonly hosts = new Map<string, HostQueue<C, R>>();

  constructor(
    /** Commands in flight per host. @default 16 */
    private readonly maxPerHost: number,
    private readonly alone: (command: C) => boolean = () => false,
    /** Commands in one call, at most (the agent takes 256). */
    private readonly maxBatch = 256,
  ) {}

  /** Sends `command` to the host with the others of its batch; `send` is the sender of the newest command's client. */
  run(hostId: string, command: C, send: BatchSender<C, R>): Promise<R> {
    const host = this.hosts.get(hostId) ?? { inFlight: 0, waiting: [], flushScheduled: false };
    this.hosts.set(hostId, host);
    return new Promise<R>((resolve, reject) => {
      host.waiting.push({ command, send, resolve, reject });
      if (host.flushScheduled) return;
      host.flushScheduled = true;
      setImmediate(() => {
        host.flushScheduled = false;
        this.flush(hostId, host);
      });
    });
  }

  /** Commands waiting for a slot on the host. */
  queued(hostId: string): number {
    return this.hosts.get(hostId)?.waiting.length ?? 0;
  }

  private flush(hostId: string, host: HostQueue<C, R>): void {
    while (host.waiting.length > 0 && host.inFlight < this.maxPerHost) {
      const room = Math.min(this.maxPerHost - host.inFlight, this.maxBatch);
      const batch: Waiting<C, R>[] = [];
      if (this.alone(host.waiting[0]!.command)) batch.push(host.waiting.shift()!);
      else while (batch.length < room && host.waiting.length > 0 && !this.alone(host.waiting[0]!.command)) batch.push(host.waiting.shift()!);
      host.inFlight += batch.length;
      void this.send(batch).finally(() => {
        host.inFlight -= batch.length;
        if (host.waiting.length > 0) this.flush(hostId, host);
        else if (host.inFlight === 0 && !host.flushScheduled && this.hosts.get(hostId) === host) this.hosts.delete(hostId);
      });
    }
  }

  private async send(batch: Waiting<C, R>[]): Promise<void> {
    try {
      const outcomes = await batch.at(-1)!.send(batch.map((w) => w.command));
      batch.forEach((w, i) => {
        const outcome = outcomes[i];
        if (!outcome) w.reject(new Error(`the batch reply holds ${outcomes.length} results for ${batch.length} commands`));
        else if (outcome.ok) w.resolve(outcome.value);
        else w.reject(outcome.error);
      });
    } catch (err) {
      for (const w of batch) w.reject(err);
    }
  }
}
