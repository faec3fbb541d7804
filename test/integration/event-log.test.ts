import { afterEach, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { createLogger, EVENT_TYPES, parseRfc3339Nanos, type CloudEvent } from '@virtfleet/shared';
import { EventLog, type ReadFrom } from '../../packages/coordinator/src/events/event-log.js';
import { startNatsServer } from '../support/nats-server.js';
import { waitFor } from '../support/wait.js';

const log = createLogger('event-log-test', 'silent');
const OPTIONS = { stream: 'VIRTFLEET_EVENTS', maxAgeMs: 3_600_000, maxMessages: 1000, replicas: 1 };

describe('EventLog against a real nats-server', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  const setup = async (): Promise<NatsConnection> => {
    const nats = await startNatsServer();
    cleanups.push(() => nats.stop());
    const nc = await nats.connect();
    cleanups.push(() => nc.close());
    return nc;
  };

  const readAll = async (events: EventLog, from: Omit<ReadFrom, 'follow'>): Promise<CloudEvent[]> => {
    const out: CloudEvent[] = [];
    for await (const e of events.read({ ...from, follow: false }, new AbortController().signal)) out.push(e);
    return out;
  };

  it('takes over a stream that captured virtfleet.events.> and gives plain subscribers the stored sequence', async () => {
    const nc = await setup();
    // The stream as coordinators created it before events were stored apart from the plain subjects.
    await (await jetstreamManager(nc)).streams.add({ name: OPTIONS.stream, subjects: ['virtfleet.events.>'], storage: StorageType.File });
    const old = { specversion: '1.0', id: 'old-1', source: 'old', type: EVENT_TYPES.hostUp, subject: 'h1', time: new Date().toISOString(), datacontenttype: 'application/json', data: {} };
    await jetstream(nc).publish('virtfleet.events.host.h1', JSON.stringify(old));

    const plain: Msg[] = [];
    nc.subscribe('virtfleet.events.>', {
      callback: (_err, msg) => {
        plain.push(msg);
      },
    });
    await nc.flush();

    const events = await EventLog.open(nc, OPTIONS, 'test', log);
    cleanups.push(() => events.close());
    events.emit(EVENT_TYPES.hostCordoned, 'h1', { id: 'h1' });
    events.emit(EVENT_TYPES.workloadSubmitted, 'w1', { id: 'w1' });
    expect(await events.flush()).toBe(true);

    const stored = await readAll(events, { fromStart: true });
    expect(stored.map((e) => [e.id === 'old-1' ? 'old-1' : e.type, e.sequence])).toEqual([
      ['old-1', 1],
      [EVENT_TYPES.hostCordoned, 2],
      [EVENT_TYPES.workloadSubmitted, 3],
    ]);
    const seen = await waitFor('both events on plain NATS', () => (plain.length >= 2 ? plain : undefined));
    expect(seen.map((m) => [m.subject, m.json<CloudEvent>().sequence])).toEqual([
      ['virtfleet.events.host.h1', 2],
      ['virtfleet.events.workload.w1', 3],
    ]);
    expect(seen.map((m) => m.json<CloudEvent>().id)).toEqual(stored.slice(1).map((e) => e.id));
    // Each stored event once: nothing more arrives.
    await nc.flush();
    expect(plain).toHaveLength(2);
  });

  it('stores a burst of events pipelined, in emit order, each once, and publishes each on plain NATS with its sequence', async () => {
    const nc = await setup();
    const plain: number[] = [];
    nc.subscribe('virtfleet.events.>', {
      callback: (_err, msg) => {
        plain.push(msg.json<CloudEvent>().sequence!);
      },
    });
    await nc.flush();
    const events = await EventLog.open(nc, { ...OPTIONS, maxMessages: 10_000 }, 'test', log);
    cleanups.push(() => events.close());
    const emitted = Array.from({ length: 3000 }, (_, i) => events.emit(EVENT_TYPES.workloadSubmitted, `w${i}`, { id: `w${i}` }));
    expect(await events.flush(30_000)).toBe(true);
    const stored = await readAll(events, { fromStart: true });
    expect(stored.map((e) => e.id)).toEqual(emitted.map((e) => e.id));
    expect(stored.map((e) => e.sequence)).toEqual(emitted.map((_, i) => i + 1));
    await waitFor('every event on plain NATS', () => (plain.length >= emitted.length ? plain : undefined), { timeoutMs: 10_000 });
    expect(plain).toEqual(emitted.map((_, i) => i + 1));
  });

  it('stores an event published again by another coordinator (same id) once, and sends only the one that was missing to plain subscribers', async () => {
    const nc = await setup();
    const plain: string[] = [];
    nc.subscribe('virtfleet.events.>', {
      callback: (_err, msg) => {
        plain.push(msg.json<CloudEvent>().id);
      },
    });
    await nc.flush();
    const first = await EventLog.open(nc, OPTIONS, 'old-leader', log);
    const sent = first.emit(EVENT_TYPES.workloadSubmitted, 'w1', { id: 'w1' });
    expect(await first.flush()).toBe(true);
    await first.close();
    // The old leader's record also held an event it never sent.
    const missing = { ...sent, id: 'never-sent', type: EVENT_TYPES.workloadPlaced, time: new Date().toISOString(), data: { id: 'w1', host_id: 'h1' } };

    const successor = await EventLog.open(nc, OPTIONS, 'new-leader', log);
    cleanups.push(() => successor.close());
    successor.publish([sent, missing]);
    expect(await successor.flush()).toBe(true);
    const stored = await readAll(successor, { fromStart: true });
    expect(stored.map((e) => [e.id, e.source, e.sequence])).toEqual([
      [sent.id, 'old-leader', 1],
      ['never-sent', 'old-leader', 2],
    ]);
    await waitFor('the missing event on plain NATS', () => (plain.length >= 2 ? plain : undefined));
    await nc.flush();
    expect(plain).toEqual([sent.id, 'never-sent']);
  });

  it('ends a read at once when nothing is at or after its start, and filters by the events\' own time', async () => {
    const nc = await setup();
    const events = await EventLog.open(nc, OPTIONS, 'test', log);
    cleanups.push(() => events.close());
    const first = events.emit(EVENT_TYPES.hostUp, 'h1', { id: 'h1' });
    await new Promise((r) => setTimeout(r, 5));
    const second = events.emit(EVENT_TYPES.hostDown, 'h1', { id: 'h1' });
    expect(await events.flush()).toBe(true);

    const future = parseRfc3339Nanos(new Date(Date.now() + 3_600_000).toISOString())!;
    const started = performance.now();
    expect(await readAll(events, { sinceTimeNs: future })).toEqual([]);
    expect(await readAll(events, { sinceSeq: 99 })).toEqual([]);
    expect(performance.now() - started).toBeLessThan(2_000);

    expect((await readAll(events, { sinceTimeNs: parseRfc3339Nanos(first.time)! })).map((e) => e.id)).toEqual([first.id, second.id]);
    expect((await readAll(events, { sinceTimeNs: parseRfc3339Nanos(first.time)! + 1n })).map((e) => e.id)).toEqual([second.id]);
    expect((await readAll(events, { sinceTimeNs: parseRfc3339Nanos(second.time)! })).map((e) => e.id)).toEqual([second.id]);
  });
});
