import { EVENT_SUBJECT_PREFIX, EVENT_TYPES, hostIdSchema, type Logger, type NatsConnection, type Subscription } from '@virtfleet/shared';
import type { HostRegistry } from './host-registry.js';

/** What the follower reads of a NATS message. */
export interface HostEventMessage {
  subject: string;
  /** Set on every message a JetStream consumer delivers (its `$JS.ACK…` subject); the leader's plain copies have none. */
  reply?: string;
  json<T>(): T;
}

/**
 * Keeps a follower's view of hosts in step with the leader's decisions, which
 * telemetry alone does not show: a recovering host made ready, cordons, and
 * hosts forgotten.
 * It listens to the leader's host events on plain NATS; the leader hears its
 * own events too, which changes nothing.
 */
export function followHostEvents(nc: NatsConnection, hosts: HostRegistry, log: Logger): Subscription {
  const apply = hostEventApplier(hosts, log);
  return nc.subscribe(`${EVENT_SUBJECT_PREFIX}.host.*`, { callback: (err, msg) => (err ? undefined : apply(msg)) });
}

/**
 * Applies the leader's plain copies of host events, each at most once and in
 * order. A stored event replayed onto the subject is ignored: a JetStream
 * consumer (which a monitoring user may create, with any delivery subject)
 * delivers with a reply subject and without the `sequence` the leader's copy
 * carries, and an old copy's sequence is not newer than the last one applied
 * for its host. Otherwise an old `host.up` would make a recovering host ready
 * or an old `uncordoned` lift a cordon.
 */
export function hostEventApplier(hosts: HostRegistry, log: Logger): (msg: HostEventMessage) => void {
  const applied = new Map<string, number>();
  return (msg) => {
    let event: { type?: unknown; subject?: unknown; sequence?: unknown };
    try {
      event = msg.json();
    } catch {
      return;
    }
    const id = hostIdSchema.safeParse(event.subject);
    if (!id.success || !hosts.get(id.data)) return;
    const sequence = event.sequence;
    if (msg.reply || typeof sequence !== 'number' || !Number.isSafeInteger(sequence) || sequence <= (applied.get(id.data) ?? 0)) {
      log.warn({ host: id.data, subject: msg.subject, type: event.type, sequence, reply: msg.reply }, 'host event ignored: not the leader’s copy, or replayed');
      return;
    }
    applied.set(id.data, sequence);
    try {
      if (event.type === EVENT_TYPES.hostUp) hosts.markReady(id.data);
      else if (event.type === EVENT_TYPES.hostCordoned) hosts.setCordoned(id.data, true);
      else if (event.type === EVENT_TYPES.hostUncordoned) hosts.setCordoned(id.data, false);
      else if (event.type === EVENT_TYPES.hostForgotten) hosts.forget(id.data);
    } catch (e) {
      log.debug({ host: id.data, err: String(e) }, 'host event not applied');
    }
  };
}
