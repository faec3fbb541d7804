import { DeliverPolicy, DiscardPolicy, jetstream, jetstreamManager, StorageType, type JetStreamClient, type OrderedConsumerOptions } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { EVENT_LOG_SUBJECT_PREFIX, SerialDrain, StreamPublisher, eventSubject, makeEvent, parseRfc3339Nanos, type CloudEvent, type EventType, type Logger, type NatsConnection } from '@virtfleet/shared';
import { z } from 'zod';

/** Where components report state changes. */
export interface EventSink {
  /** The coordinator the events made here come from: their `source`. */
  readonly source: string;
  /** Makes an event and queues it for the log; returns it at once. */
  emit<T>(type: EventType, subject: string, data: T): CloudEvent<T>;
  /**
   * Queues events made before (by `emit` or `makeEvent`, here or on another
   * coordinator) with their ids unchanged. The log stores an id once within
   * EVENT_DUPLICATE_WINDOW_MS, so an event that reached it already is not
   * stored, nor sent to plain subscribers, again.
   */
  publish(events: readonly CloudEvent[]): void;
  /**
   * Those of `events` not known to be stored in the log: not given to this
   * sink yet, or given and not acknowledged. An acknowledgement is
   * remembered for a minute or two.
   */
  unsent(events: readonly CloudEvent[]): CloudEvent[];
}

/** How long the event stream remembers message ids to drop repeats (JetStream's duplicate window). */
export const EVENT_DUPLICATE_WINDOW_MS = 120_000;

export interface EventLogOptions {
  /** JetStream stream holding the events. @default 'VIRTFLEET_EVENTS' */
  stream: string;
  /** Events older than this are dropped. @default 7 days */
  maxAgeMs: number;
  /** At most this many events are kept, the oldest dropped first. @default 1_000_000 */
  maxMessages: number;
  /** Stream replicas; 3 on a three-node NATS cluster. @default 1 */
  replicas: number;
}

export interface ReadFrom {
  /** Events with sequence >= this. */
  sinceSeq?: number;
  /** Events whose own `time` is at or after this, in nanoseconds since the epoch (see parseRfc3339Nanos). */
  sinceTimeNs?: bigint;
  /** Every retained event. */
  fromStart?: boolean;
  /** Keep going with new events until `signal` aborts. Without a start, only new events. */
  follow: boolean;
}

/** Events read back from the stream are checked like any other input. */
const storedEventSchema = z.object({
  specversion: z.literal('1.0'),
  id: z.string(),
  source: z.string(),
  type: z.string(),
  subject: z.string(),
  time: z.string(),
  datacontenttype: z.literal('application/json'),
  data: z.unknown(),
});

const PUBLISH_RETRY_MS = 500;
/** Acknowledged event ids are remembered for one to two of these. */
const ACKED_GENERATION_MS = 60_000;
/** Events published together, at most: one pipeline of publishes instead of a round trip each. */
const MAX_BATCH = 512;

/**
 * JetStream finds a start time by when it stored each message, which is
 * after the event's own `time` (the outbox, a NATS outage) unless the
 * coordinator's clock runs ahead of the NATS server's. Reading starts this
 * much earlier and filters by the event's `time`, so clocks within a minute
 * of each other lose nothing.
 */
const CLOCK_SKEW_MARGIN_MS = 60_000;

/**
 * The durable, replayable event log: every state change as a CloudEvent in a
 * JetStream stream on `virtfleet.eventlog.>`. The stream's sequence numbers
 * are the events' `sequence`, so a reader resumes exactly where it stopped,
 * by sequence or by time.
 *
 * `emit` never blocks the caller: events go through an in-process outbox,
 * published in batches pipelined on the one NATS connection in emit order
 * (so the stream stores them in that order), each retried until JetStream
 * acknowledges it (a NATS outage delays them; the message id makes a retried
 * publish land once). Only a publish lost while the connection drops can
 * land after events emitted later than it. Once stored, each event is published again on plain NATS at
 * `virtfleet.events.<category>.<subject>` with the `sequence` from the
 * stream's acknowledgement: the stream stays the one source of sequence
 * numbers, and plain subscribers see only stored events, each once. Like any
 * plain NATS message, that copy is lost if the coordinator dies between the
 * acknowledgement and the publish; the stream has it regardless.
 */
export class EventLog implements EventSink {
  private readonly outbox: CloudEvent[] = [];
  /** Ids of events the log acknowledged, in two generations that rotate every ACKED_GENERATION_MS. */
  private acked = new Set<string>();
  private ackedBefore = new Set<string>();
  private ackedRotatedAt = Date.now();
  private readonly drainer = new SerialDrain(() => this.drain(), () => this.outbox.length > 0 && !this.closed);
  private closed = false;
  private readonly storedListeners: ((event: CloudEvent) => void)[] = [];

  private readonly publisher: StreamPublisher;

  private constructor(
    private readonly js: JetStreamClient,
    private readonly nc: NatsConnection,
    private readonly options: EventLogOptions,
    readonly source: string,
    private readonly log: Logger,
  ) {
    this.publisher = new StreamPublisher(nc);
  }

  /** Creates the stream, or updates its limits to `options`. */
  static async open(nc: NatsConnection, options: EventLogOptions, source: string, log: Logger): Promise<EventLog> {
    const jsm = await jetstreamManager(nc);
    const config = {
      name: options.stream,
      // Stored apart from the plain subjects; streams from before this also captured `virtfleet.events.>`, and are updated.
      subjects: [`${EVENT_LOG_SUBJECT_PREFIX}.>`],
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_age: nanos(options.maxAgeMs),
      max_msgs: options.maxMessages,
      num_replicas: options.replicas,
      duplicate_window: nanos(EVENT_DUPLICATE_WINDOW_MS),
    };
    try {
      await jsm.streams.info(options.stream);
      await jsm.streams.update(options.stream, config);
    } catch (err) {
      if (!String(err).includes('stream not found')) throw err;
      await jsm.streams.add(config);
    }
    return new EventLog(jetstream(nc), nc, options, source, log);
  }

  emit<T>(type: EventType, subject: string, data: T): CloudEvent<T> {
    const event = makeEvent(this.source, type, subject, data);
    this.publish([event]);
    return event;
  }

  publish(events: readonly CloudEvent[]): void {
    if (events.length === 0) return;
    if (this.closed) {
      this.log.warn({ type: events[0]!.type, subject: events[0]!.subject, events: events.length }, 'event emitted after close; dropped');
      return;
    }
    this.outbox.push(...events);
    this.drainer.kick();
  }

  /** Calls `listener` with each event once the log has stored it; a repeat the log dropped is not passed on. */
  onStored(listener: (event: CloudEvent) => void): void {
    this.storedListeners.push(listener);
  }

  unsent(events: readonly CloudEvent[]): CloudEvent[] {
    return events.filter((e) => !this.acked.has(e.id) && !this.ackedBefore.has(e.id));
  }

  private noteAcked(id: string): void {
    const now = Date.now();
    if (now - this.ackedRotatedAt > ACKED_GENERATION_MS) {
      this.ackedBefore = this.acked;
      this.acked = new Set();
      this.ackedRotatedAt = now;
    }
    this.acked.add(id);
  }

  /** Resolves once every event emitted so far is stored, or `timeoutMs` passes. */
  async flush(timeoutMs = 5_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.outbox.length > 0 && Date.now() < deadline) await (this.drainer.running ?? new Promise((r) => setTimeout(r, 10)));
    return this.outbox.length === 0;
  }

  async close(timeoutMs = 5_000): Promise<void> {
    await this.flush(timeoutMs);
    this.closed = true;
    this.publisher.close();
  }

  /** Events from a starting point, oldest first, each with its stream sequence. */
  async *read(from: ReadFrom, signal: AbortSignal): AsyncGenerator<CloudEvent> {
    const jsm = await jetstreamManager(this.nc);
    const lastSeq = (await jsm.streams.info(this.options.stream)).state.last_seq;
    const start: Partial<OrderedConsumerOptions> =
      from.sinceSeq !== undefined
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: Math.max(1, from.sinceSeq) }
        : from.sinceTimeNs !== undefined
          ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(Number(from.sinceTimeNs / 1_000_000n) - CLOCK_SKEW_MARGIN_MS).toISOString() }
          : from.fromStart
            ? { deliver_policy: DeliverPolicy.All }
            : { deliver_policy: DeliverPolicy.New };
    if (!from.follow && (start.deliver_policy === DeliverPolicy.New || lastSeq === 0 || (from.sinceSeq ?? 0) > lastSeq)) return;

    const consumer = await this.js.consumers.get(this.options.stream, start);
    if (!from.follow && (await consumer.info(true)).num_pending === 0) {
      await consumer.delete().catch(() => undefined);
      return;
    }
    const messages = await consumer.consume();
    const stop = () => void messages.close();
    signal.addEventListener('abort', stop, { once: true });
    try {
      for await (const m of messages) {
        const parsed = storedEventSchema.safeParse(m.json());
        if (!parsed.success) this.log.warn({ seq: m.seq }, 'skipping a malformed event in the stream');
        else if (from.sinceTimeNs === undefined || (parseRfc3339Nanos(parsed.data.time) ?? -1n) >= from.sinceTimeNs) yield { ...(parsed.data as CloudEvent), sequence: m.seq };
        if (!from.follow && (m.seq >= lastSeq || m.info.pending === 0)) break;
        if (signal.aborted) break;
      }
    } finally {
      signal.removeEventListener('abort', stop);
      await messages.close();
      await consumer.delete().catch(() => undefined);
    }
  }

  /** The stored event, with its sequence, for plain NATS subscribers; at most once, like any plain publish. */
  private publishPlain(event: CloudEvent, stored: string, sequence: number): void {
    try {
      // The stored JSON with the sequence added, without serializing the event again.
      this.nc.publish(eventSubject(event), `${stored.slice(0, -1)},"sequence":${sequence}}`);
    } catch (err) {
      this.log.warn({ err: String(err), seq: sequence }, 'stored event not published on plain NATS');
    }
  }

  private async drain(): Promise<void> {
    while (this.outbox.length > 0) {
      const batch = this.outbox.slice(0, MAX_BATCH);
      const stored = batch.map((event) => JSON.stringify(event));
      const results = await Promise.allSettled(batch.map((event, i) => this.publisher.publish(eventSubject(event, EVENT_LOG_SUBJECT_PREFIX), stored[i]!, { msgId: event.id })));
      const failed: CloudEvent[] = [];
      let firstError: unknown;
      results.forEach((result, i) => {
        const event = batch[i]!;
        // A repeat of a stored event (published again after a leader change) was dropped by the stream: its subscribers had it.
        if (result.status === 'fulfilled') {
          this.noteAcked(event.id);
          if (!result.value.duplicate) {
            this.publishPlain(event, stored[i]!, result.value.seq);
            for (const listener of this.storedListeners) listener(event);
          }
        }
        else {
          failed.push(event);
          firstError ??= result.reason;
        }
      });
      // Events emitted while the batch was out stay behind the failed ones.
      this.outbox.splice(0, batch.length, ...failed);
      if (failed.length === 0) continue;
      if (this.nc.isClosed()) {
        this.log.error({ lost: this.outbox.length }, 'NATS connection closed with events unpublished');
        this.outbox.length = 0;
        return;
      }
      this.log.warn({ err: String(firstError), failed: failed.length, pending: this.outbox.length }, 'event publish failed; retrying');
      await new Promise((r) => setTimeout(r, PUBLISH_RETRY_MS));
    }
  }
}
