import { createInbox, headers as natsHeaders, type NatsConnection, type Subscription } from '@nats-io/transport-node';

export interface StreamPublishOptions {
  /** Nats-Msg-Id: the stream drops a repeat of this id within its duplicate window. */
  msgId?: string;
  /** Stored only if the subject's last message has this sequence (0: the subject holds nothing). */
  expectLastSubjectSequence?: number;
  /** More headers, e.g. KV-Operation. */
  headers?: Record<string, string>;
}

export interface StreamAck {
  stream: string;
  seq: number;
  duplicate?: boolean;
}

/** The stream refused the message; `code` is JetStream's err_code (10071: wrong last sequence). */
export class StreamPublishError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
    this.name = 'StreamPublishError';
  }
}

interface Pending {
  resolve(ack: StreamAck): void;
  reject(err: Error): void;
  deadline: number;
}

const SWEEP_MS = 250;

/**
 * Publishes to JetStream streams with every ack arriving on one wildcard
 * inbox subscription, like the Go client's PublishAsync. The library's
 * `js.publish` is a request each: its own reply subscription entry, timer
 * and error object per message, which at thousands of messages a second is
 * a large share of a coordinator's CPU. Acks are matched by a counter in the
 * reply subject and expire by one sweep timer.
 *
 * Contract: `publish` resolves with the stored message's sequence, or
 * rejects with StreamPublishError (the stream refused it), a "no stream"
 * error (nothing listens on the subject), a timeout (no ack within
 * `timeoutMs`; the message may or may not be stored) or a closed-connection
 * error.
 */
export class StreamPublisher {
  private readonly prefix: string;
  private readonly pending = new Map<string, Pending>();
  private readonly sub: Subscription;
  private readonly sweeper: NodeJS.Timeout;
  private next = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs = 5_000,
  ) {
    this.prefix = `${createInbox()}.`;
    this.sub = nc.subscribe(`${this.prefix}*`, { callback: (err, msg) => (err ? this.failAll(err) : this.settle(msg.subject, msg)) });
    this.sweeper = setInterval(() => this.expire(), SWEEP_MS);
    this.sweeper.unref();
    void nc.closed().then(() => this.close());
  }

  publish(subject: string, payload: string | Uint8Array, options: StreamPublishOptions = {}): Promise<StreamAck> {
    const token = (this.next++).toString(36);
    const h = options.msgId !== undefined || options.expectLastSubjectSequence !== undefined || options.headers ? natsHeaders() : undefined;
    if (h) {
      if (options.msgId !== undefined) h.set('Nats-Msg-Id', options.msgId);
      if (options.expectLastSubjectSequence !== undefined) h.set('Nats-Expected-Last-Subject-Sequence', String(options.expectLastSubjectSequence));
      for (const [k, v] of Object.entries(options.headers ?? {})) h.set(k, v);
    }
    return new Promise<StreamAck>((resolve, reject) => {
      if (this.nc.isClosed()) return reject(new Error('NATS connection closed'));
      this.pending.set(token, { resolve, reject, deadline: Date.now() + this.timeoutMs });
      try {
        this.nc.publish(subject, payload, { reply: this.prefix + token, ...(h ? { headers: h } : {}) });
      } catch (err) {
        this.pending.delete(token);
        reject(err as Error);
      }
    });
  }

  /** Rejects everything still waiting and stops listening. */
  close(): void {
    clearInterval(this.sweeper);
    this.failAll(new Error('stream publisher closed'));
    if (!this.nc.isClosed()) this.sub.unsubscribe();
  }

  private settle(subject: string, msg: { data: Uint8Array; headers?: { code: number }; json<T>(): T }): void {
    const token = subject.slice(this.prefix.length);
    const waiter = this.pending.get(token);
    if (!waiter) return;
    this.pending.delete(token);
    if (msg.data.length === 0 && msg.headers?.code === 503) return waiter.reject(new Error('no stream listens on this subject (no responders)'));
    let ack: { stream?: string; seq?: number; duplicate?: boolean; error?: { err_code?: number; code?: number; description?: string } };
    try {
      ack = msg.json();
    } catch {
      return waiter.reject(new Error('unreadable publish ack'));
    }
    if (ack.error) return waiter.reject(new StreamPublishError(ack.error.description ?? 'publish refused', ack.error.err_code ?? ack.error.code ?? 0));
    if (typeof ack.stream !== 'string' || typeof ack.seq !== 'number') return waiter.reject(new Error('publish ack without a stream and sequence'));
    waiter.resolve({ stream: ack.stream, seq: ack.seq, ...(ack.duplicate ? { duplicate: true } : {}) });
  }

  private expire(): void {
    const now = Date.now();
    for (const [token, waiter] of this.pending) {
      // Deadlines grow with insertion order: the first one still running ends the sweep.
      if (waiter.deadline > now) break;
      this.pending.delete(token);
      waiter.reject(new Error(`no publish ack within ${this.timeoutMs} ms`));
    }
  }

  private failAll(err: Error): void {
    for (const waiter of this.pending.values()) waiter.reject(err);
    this.pending.clear();
  }
}
