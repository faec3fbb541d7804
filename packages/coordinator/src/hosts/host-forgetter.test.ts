import { describe, expect, it } from 'vitest';
import { createLogger, EVENT_TYPES, FailedPreconditionError, NotFoundError } from '@virtfleet/shared';
import { recordingEventSink } from '../events/event-sink.test-support.js';
import { MemoryStateStore } from '../state/memory-state-store.test-support.js';
import type { Workload } from '../workloads/workload.js';
import { testWorkload } from '../workloads/workload.test-support.js';
import { HostForgetter } from './host-forgetter.js';
import { HostRegistry } from './host-registry.js';
import { testTelemetry } from './telemetry.test-support.js';

const log = createLogger('test', 'silent');
const TTL_MS = 1000;
const FORGET_AFTER_MS = 60_000;

/**
 * Hosts up (h-up), recovering (h-back), down with a workload (h-busy), down
 * and empty (h-idle, cordoned, confirmed dead and with a drain record), on a
 * registry and forgetter sharing one clock.
 */
function harness(forgetDownAfterMs = FORGET_AFTER_MS) {
  let nowMs = 1_000_000;
  const store = new MemoryStateStore();
  const { sink, events: recorded } = recordingEventSink();
  const statuses: string[] = [];
  const registry = new HostRegistry(TTL_MS, { onStatusChange: (h, previous) => statuses.push(`${h.id} ${previous ?? 'new'}->${h.status}`), onTelemetry: () => undefined }, log, () => nowMs);
  const report = (id: string) => registry.ingest(`virtfleet.telemetry.${id}`, testTelemetry(id));
  for (const id of ['h-back', 'h-busy', 'h-idle']) report(id);
  nowMs += TTL_MS + 1;
  registry.sweep();
  report('h-up');
  report('h-back');
  void store.put(testWorkload('busy-1', { hostId: 'h-busy', state: 'unknown' }));
  void store.put(testWorkload('old-1', { hostId: 'h-idle', state: 'deleted', desiredState: 'deleted' }));
  registry.setCordoned('h-idle', true);
  store.setHostMark('cordon', 'h-idle', true);
  store.setHostMark('dead', 'h-idle', true);
  const drains = new Set(['h-idle']);
  const forgotten: string[] = [];
  const forgets = (what: string) => ({ forget: (id: string) => forgotten.push(`${what} ${id}`) });
  const controller = { requireLeader: () => undefined, isLeader: true, workloadsOn: (id: string): Workload[] => store.listOnHost(id) };
  const forgetter = new HostForgetter(
    controller,
    registry,
    store,
    { drains: { hostIds: () => [...drains], forget: (id) => forgotten.push(`drain ${id}`) && drains.delete(id) }, leases: forgets('lease'), agents: forgets('agent') },
    sink,
    { ttlMs: TTL_MS, forgetDownAfterMs },
    log,
    () => nowMs,
  );
  forgetter.start();
  forgetter.stop();
  return {
    store,
    get events() {
      return recorded.map(({ type, subject, data }) => ({ type, subject, data }));
    },
    registry,
    forgetter,
    forgotten,
    statuses,
    report,
    advance: (ms: number) => (nowMs += ms),
  };
}

const ids = (h: ReturnType<typeof harness>) => h.registry.list().map((x) => x.id);

describe('HostForgetter.remove (host rm)', () => {
  it.each([
    { host: 'h-up', error: FailedPreconditionError, message: /^host h-up is up: it reported 0 s ago; only a host that is down can be removed \(stop its agent first\)$/ },
    { host: 'h-back', error: FailedPreconditionError, message: /^host h-back is recovering/ },
    { host: 'h-busy', error: FailedPreconditionError, message: /^host h-busy holds 1 workload\(s\): busy-1 \(busy-1, unknown\); move or delete them first$/ },
    { host: 'h-none', error: NotFoundError, message: /host "h-none" not found/ },
  ])('refuses $host and changes nothing', ({ host, error, message }) => {
    const h = harness();
    const writes = h.store.writes;
    const before = ids(h);
    expect(() => h.forgetter.remove(host)).toThrow(error);
    expect(() => h.forgetter.remove(host)).toThrow(message);
    expect([h.store.writes, ids(h), h.events, h.forgotten]).toEqual([writes, before, [], []]);
  });

  it('forgets a down host that holds no workloads: out of the list, its marks, drain record and clients gone, with an event', () => {
    const h = harness();
    const removed = h.forgetter.remove('h-idle');
    expect(removed?.id).toBe('h-idle');
    expect(ids(h)).toEqual(['h-back', 'h-busy', 'h-up']);
    expect([h.store.hostsMarked('cordon'), h.store.hostsMarked('dead'), h.forgotten]).toEqual([[], [], ['drain h-idle', 'lease h-idle', 'agent h-idle']]);
    expect(h.events).toEqual([{ type: EVENT_TYPES.hostForgotten, subject: 'h-idle', data: expect.objectContaining({ id: 'h-idle', by: 'operator', reason: 'removed by an operator (host rm)' }) }]);
  });

  it('lets a forgotten host that reports again register again, first as recovering', () => {
    const h = harness();
    h.forgetter.remove('h-idle');
    h.report('h-idle');
    expect([h.registry.get('h-idle')?.status, h.registry.get('h-idle')?.cordoned, h.statuses.at(-1)]).toEqual(['recovering', false, 'h-idle new->recovering']);
  });

  it('forgets a host only durable marks know once it has had a TTL to report since the lead was taken', () => {
    const h = harness();
    h.store.setHostMark('cordon', 'h-gone', true);
    h.forgetter.start();
    expect(() => h.forgetter.remove('h-gone')).toThrow(/^host h-gone may still report: this coordinator took the lead 0 s ago; try again in 1 s$/);
    h.advance(TTL_MS);
    h.forgetter.remove('h-gone');
    h.forgetter.stop();
    expect(h.store.hostsMarked('cordon')).toEqual(['h-idle']);
  });
});

describe('HostForgetter.sweep (hosts.forgetDownAfterMs)', () => {
  it.each([
    { name: 'not yet', afterMs: FORGET_AFTER_MS, waitMs: FORGET_AFTER_MS - 2, forgotten: [] },
    { name: 'once down that long, only the empty one', afterMs: FORGET_AFTER_MS, waitMs: FORGET_AFTER_MS, forgotten: ['h-idle'] },
    { name: 'never with 0', afterMs: 0, waitMs: 365 * 86_400_000, forgotten: [] },
  ])('$name', ({ afterMs, waitMs, forgotten }) => {
    const h = harness(afterMs);
    h.advance(waitMs);
    h.registry.sweep();
    // Nothing else reported meanwhile: every host is down now, and only h-idle is empty.
    expect(h.forgetter.sweep()).toEqual(forgotten);
    expect(h.events.map((e) => [e.subject, e.data.by])).toEqual(forgotten.map((id) => [id, 'leader']));
    expect(ids(h)).toEqual(['h-back', 'h-busy', 'h-idle', 'h-up'].filter((id) => !forgotten.includes(id)));
  });
});
