import { describe, expect, it } from 'vitest';
import { createLogger, EVENT_TYPES } from '@virtfleet/shared';
import { hostEventApplier, type HostEventMessage } from './host-event-follower.js';
import { HostRegistry } from './host-registry.js';
import { testTelemetry } from './telemetry.test-support.js';

const log = createLogger('test', 'silent');

function message(event: Record<string, unknown>, reply?: string): HostEventMessage {
  return { subject: `virtfleet.events.host.${String(event.subject)}`, ...(reply ? { reply } : {}), json: <T>() => event as T };
}
const cordoned = (sequence?: number) => ({ type: EVENT_TYPES.hostCordoned, subject: 'h1', ...(sequence === undefined ? {} : { sequence }) });
const uncordoned = (sequence?: number) => ({ type: EVENT_TYPES.hostUncordoned, subject: 'h1', ...(sequence === undefined ? {} : { sequence }) });

describe('hostEventApplier', () => {
  it.each([
    { name: "the leader's copies, in order", messages: [message(cordoned(5)), message(uncordoned(6)), message(cordoned(7))], cordoned: true },
    { name: 'a replay of an older copy', messages: [message(cordoned(5)), message(uncordoned(6)), message(cordoned(7)), message(uncordoned(6))], cordoned: true },
    { name: 'the same copy twice', messages: [message(cordoned(8)), message(uncordoned(9)), message(uncordoned(9))], cordoned: false },
    { name: 'a consumer delivery (reply subject set)', messages: [message(cordoned(5)), message(uncordoned(6), '$JS.ACK.VIRTFLEET_EVENTS.c.1.6.6.0.0')], cordoned: true },
    { name: 'a stored event without its sequence', messages: [message(cordoned(5)), message(uncordoned())], cordoned: true },
    { name: 'a sequence that is not a safe integer', messages: [message(cordoned(5)), message(uncordoned(2 ** 60))], cordoned: true },
  ])('$name: cordoned $cordoned', ({ messages, cordoned: expected }) => {
    const hosts = new HostRegistry(10_000, { onStatusChange: () => undefined, onTelemetry: () => undefined }, log);
    hosts.ingest('virtfleet.telemetry.h1', testTelemetry('h1'));
    const apply = hostEventApplier(hosts, log);
    for (const m of messages) apply(m);
    expect(hosts.get('h1')?.cordoned).toBe(expected);
  });

  it('keeps sequences per host: an event of one host does not hold back another', () => {
    const hosts = new HostRegistry(10_000, { onStatusChange: () => undefined, onTelemetry: () => undefined }, log);
    hosts.ingest('virtfleet.telemetry.h1', testTelemetry('h1'));
    hosts.ingest('virtfleet.telemetry.h2', testTelemetry('h2'));
    const apply = hostEventApplier(hosts, log);
    apply(message({ type: EVENT_TYPES.hostCordoned, subject: 'h2', sequence: 10 }));
    apply(message(cordoned(4)));
    expect([hosts.get('h1')?.cordoned, hosts.get('h2')?.cordoned]).toEqual([true, true]);
  });
});
