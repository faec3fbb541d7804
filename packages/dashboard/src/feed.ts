import { ApiError, stream } from './api.js';
import type { SseMessage } from './sse.js';
import type { VfEvent } from './types.js';

/** How far back the feed starts when the dashboard opens. */
const HISTORY_MS = 60 * 60_000;
/** The most events kept in the browser; older ones fall off. */
const MAX_EVENTS = 2000;
const RECONNECT_MS = 2000;

/**
 * The live event stream (WatchEvents with follow), one per signed-in
 * session, shared by every page: the event feed, a workload's own events,
 * and the pages that read again when an event concerns them. It reconnects
 * after a break, resuming after the last sequence it saw.
 */
export class EventFeed {
  events: VfEvent[] = [];
  connected = false;
  error: string | undefined;
  private readonly listeners = new Set<(event: VfEvent | undefined) => void>();
  private abort: AbortController | undefined;
  private lastSequence: string | undefined;

  start(): void {
    if (this.abort) return;
    const abort = new AbortController();
    this.abort = abort;
    void this.run(abort.signal);
  }

  stop(): void {
    this.abort?.abort();
    this.abort = undefined;
    this.events = [];
    this.lastSequence = undefined;
    this.connected = false;
    this.notify(undefined);
  }

  /** Calls `listener` with each new event (and undefined when the connection changes); returns the unsubscribe. */
  subscribe(listener: (event: VfEvent | undefined) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(event: VfEvent | undefined): void {
    for (const l of this.listeners) l(event);
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const params: Record<string, string> = { follow: 'true' };
      if (this.lastSequence) params.since_seq = String(BigInt(this.lastSequence) + 1n);
      else params.since_time = new Date(Date.now() - HISTORY_MS).toISOString();
      try {
        this.connected = true;
        this.error = undefined;
        this.notify(undefined);
        await stream('WatchEvents', params, (m) => this.received(m), signal);
      } catch (err) {
        if (signal.aborted) return;
        this.error = err instanceof ApiError ? `${err.code}: ${err.message}` : (err as Error).message;
      }
      this.connected = false;
      this.notify(undefined);
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    }
  }

  private received(message: SseMessage): void {
    if (message.event === 'error') {
      this.error = message.data;
      return;
    }
    let event: VfEvent;
    try {
      event = JSON.parse(message.data) as VfEvent;
    } catch {
      return;
    }
    this.lastSequence = event.sequence;
    this.events.push(event);
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
    this.notify(event);
  }
}

export const feed = new EventFeed();
