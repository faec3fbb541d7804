import { makeEvent, type CloudEvent } from '@virtfleet/shared';
import type { EventSink } from './event-log.js';

/**
 * An EventSink for unit tests that keeps every event it is given, in order.
 * Events given count as stored in the log at once, or, with `hold`, only
 * once `storeHeld()` is called; events not given are never stored.
 */
export function recordingEventSink(source = 'test-coordinator', options: { hold?: boolean } = {}) {
  const events: CloudEvent<Record<string, unknown>>[] = [];
  const held = new Set<string>();
  const given = new Set<string>();
  const sink: EventSink = {
    source,
    emit: (type, subject, data) => {
      const event = makeEvent(source, type, subject, data);
      sink.publish([event]);
      return event;
    },
    publish: (published) => {
      events.push(...(published as CloudEvent<Record<string, unknown>>[]));
      for (const e of published) {
        given.add(e.id);
        if (options.hold) held.add(e.id);
      }
    },
    unsent: (some) => some.filter((e) => !given.has(e.id) || held.has(e.id)),
  };
  return { sink, events, storeHeld: () => held.clear() };
}
