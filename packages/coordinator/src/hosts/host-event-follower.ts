import { EVENT_SUBJECT_PREFIX, EVENT_TYPES, hostIdSchema, type Logger, type NatsConnection, type Subscription } from '@virtfleet/shared';
import type { HostRegistry } from './host-registry.js';

/**
 * Keeps a follower's view of hosts in step with the leader's decisions, which
 * telemetry alone does not show: a recovering host made ready, cordons, and
 * hosts forgotten.
 * It listens to the leader's host events on plain NATS; the leader hears its
 * own events too, which changes nothing.
 */
export function followHostEvents(nc: NatsConnection, hosts: HostRegistry, log: Logger): Subscription {
  return nc.subscribe(`${EVENT_SUBJECT_PREFIX}.host.*`, {
    callback: (err, msg) => {
      if (err) return;
      let event: { type?: unknown; subject?: unknown };
      try {
        event = msg.json();
      } catch {
        return;
      }
      const id = hostIdSchema.safeParse(event.subject);
      if (!id.success || !hosts.get(id.data)) return;
      try {
        if (event.type === EVENT_TYPES.hostUp) hosts.markReady(id.data);
        else if (event.type === EVENT_TYPES.hostCordoned) hosts.setCordoned(id.data, true);
        else if (event.type === EVENT_TYPES.hostUncordoned) hosts.setCordoned(id.data, false);
        else if (event.type === EVENT_TYPES.hostForgotten) hosts.forget(id.data);
      } catch (e) {
        log.debug({ host: id.data, err: String(e) }, 'host event not applied');
      }
    },
  });
}
