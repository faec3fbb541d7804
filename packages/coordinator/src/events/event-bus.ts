import { eventSubject, makeEvent, type CloudEvent, type EventType, type Logger, type NatsConnection } from '@virtfleet/shared';

export type EventListener = (event: CloudEvent) => void;

export interface ReplayFrom {
  /** Events with sequence >= this. */
  sinceSeq?: number;
  /** Events at or after this time (ms since the epoch). */
  sinceTimeMs?: number;
}

/**
 * Numbers every state change, publishes it as a CloudEvent on NATS, keeps
 * the newest `retain` events for replay and hands each to in-process
 * listeners (WatchEvents streams). Publishing while NATS is disconnected
 * buffers in the client and goes out on reconnect.
 */
export class EventBus {
  private readonly listeners = new Set<EventListener>();
  private readonly retained: CloudEvent[] = [];
  private nextSequence = 1;
  private nc: NatsConnection | undefined;

  constructor(
    private readonly source: string,
    private readonly log: Logger,
    /** @default 10_000 */
    private readonly retain = 10_000,
  ) {}

  attach(nc: NatsConnection): void {
    this.nc = nc;
  }

  emit<T>(type: EventType, subject: string, data: T): CloudEvent<T> {
    const event: CloudEvent<T> = { ...makeEvent(this.source, type, subject, data), sequence: this.nextSequence++ };
    this.retained.push(event);
    if (this.retained.length > this.retain) this.retained.splice(0, this.retained.length - this.retain);
    if (this.nc && !this.nc.isClosed()) {
      try {
        this.nc.publish(eventSubject(event), JSON.stringify(event));
      } catch (err) {
        this.log.warn({ err, type }, 'could not publish event');
      }
    }
    for (const listener of this.listeners) listener(event);
    return event;
  }

  /** Retained events from a starting point, oldest first. */
  replay(from: ReplayFrom): CloudEvent[] {
    return this.retained.filter(
      (e) => (from.sinceSeq === undefined || (e.sequence ?? 0) >= from.sinceSeq) && (from.sinceTimeMs === undefined || Date.parse(e.time) >= from.sinceTimeMs),
    );
  }

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
