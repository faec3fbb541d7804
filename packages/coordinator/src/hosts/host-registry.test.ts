import { describe, expect, it } from 'vitest';
import { createLogger, type Msg, type NatsConnection } from '@virtfleet/shared';
import type { Host } from './host.js';
import { HostRegistry } from './host-registry.js';
import { testTelemetry as telemetry } from './telemetry.test-support.js';

const log = createLogger('test', 'silent');


function heartbeat(hostId: string, overrides: Record<string, unknown> = {}) {
  return { version: 1, host_id: hostId, boot_id: 'b', seq: 1, time: new Date().toISOString(), address: '127.0.0.1:1', ...overrides };
}

function driver(name: string, healthy: boolean, detail = '') {
  return { name, version: '1', kinds: ['container'], domain_types: [], healthy, detail };
}

function registry(ttlMs = 1000) {
  let now = 0;
  const changes: string[] = [];
  const driverChanges: string[] = [];
  let telemetryCount = 0;
  const r = new HostRegistry(
    ttlMs,
    {
      onStatusChange: (h: Host, previous) => changes.push(`${h.id} ${previous ?? 'new'}->${h.status}`),
      onTelemetry: () => telemetryCount++,
      onDriverHealthChange: (h, d) => driverChanges.push(`${h.id} ${d.name} ${d.healthy ? 'healthy' : `unhealthy: ${d.detail}`}`),
    },
    log,
    () => now,
  );
  return { r, changes, driverChanges, advance: (ms: number) => (now += ms), count: () => telemetryCount };
}

describe('HostRegistry', () => {
  it('brings a host up on telemetry, down after the TTL, recovering when it returns, and up once marked ready', () => {
    const { r, changes, advance } = registry(1000);
    expect(r.ingest('virtfleet.telemetry.h1', telemetry('h1'))).toBe(true);
    advance(1000);
    r.sweep();
    expect(r.get('h1')?.status).toBe('up');
    advance(1);
    r.sweep();
    expect(r.get('h1')?.status).toBe('down');
    r.sweep();
    r.ingest('virtfleet.telemetry.h1', telemetry('h1'));
    r.ingest('virtfleet.telemetry.h1', telemetry('h1'));
    expect(r.get('h1')?.status, 'more telemetry does not make it ready').toBe('recovering');
    r.markReady('h1');
    r.markReady('h1');
    expect(changes).toEqual(['h1 new->up', 'h1 up->down', 'h1 down->recovering', 'h1 recovering->up']);
  });

  it('takes a recovering host down again when it falls silent', () => {
    const { r, changes, advance } = registry(1000);
    r.ingest('virtfleet.telemetry.h1', telemetry('h1'));
    advance(1001);
    r.sweep();
    r.ingest('virtfleet.telemetry.h1', telemetry('h1'));
    advance(1001);
    r.sweep();
    r.markReady('h1');
    expect(r.get('h1')?.status).toBe('down');
    expect(changes).toEqual(['h1 new->up', 'h1 up->down', 'h1 down->recovering', 'h1 recovering->down']);
  });

  it('keeps a host up on heartbeats alone while its telemetry stops, and takes it down once they stop too', () => {
    const { r, changes, advance } = registry(1000);
    r.ingest('virtfleet.telemetry.h1', telemetry('h1'));
    for (let i = 0; i < 5; i++) {
      advance(900);
      expect(r.ingestHeartbeat('virtfleet.heartbeat.h1', heartbeat('h1', { seq: i }))).toBe(true);
      r.sweep();
    }
    expect(r.get('h1')?.status, '4.5 s without telemetry, heartbeats every 0.9 s').toBe('up');
    expect(r.get('h1')?.lastHeartbeat).toMatchObject({ bootId: 'b', seq: 4 });
    advance(1001);
    r.sweep();
    expect(changes).toEqual(['h1 new->up', 'h1 up->down']);
  });

  it('counts telemetry that arrived but waits to be applied as a sign of life, so a registry behind on telemetry marks no host down', async () => {
    const { r, changes, advance } = registry(1000);
    const subscribers = new Map<string, (err: Error | null, msg: Msg) => void>();
    const nc = { subscribe: (subject: string, opts: { callback: (err: Error | null, msg: Msg) => void }) => (subscribers.set(subject, opts.callback), { unsubscribe: () => undefined }) };
    r.start(nc as unknown as NatsConnection);
    try {
      r.ingest('virtfleet.telemetry.h1', telemetry('h1'));
      advance(900);
      const body = JSON.stringify(telemetry('h1', { seq: 2 }));
      subscribers.get('virtfleet.telemetry.*')!(null, { subject: 'virtfleet.telemetry.h1', headers: undefined, json: () => JSON.parse(body) as unknown } as unknown as Msg);
      advance(500);
      r.sweep();
      expect(r.get('h1')?.status, 'silent 1.4 s by what was applied, 0.5 s by what arrived').toBe('up');
      await new Promise((resolve) => setImmediate(resolve));
      expect(r.get('h1')?.telemetry.seq, 'applied on the next turn').toBe(2);
      advance(1001);
      r.sweep();
      expect(changes).toEqual(['h1 new->up', 'h1 up->down']);
    } finally {
      r.stop();
    }
  });

  it('notes when each telemetry message was applied, which heartbeats do not move (the ingest lag ListHosts shows)', () => {
    const { r, advance } = registry(10_000);
    advance(5000);
    r.ingest('virtfleet.telemetry.h1', telemetry('h1', { published_at: new Date(4990).toISOString() }));
    expect(r.get('h1')).toMatchObject({ telemetryAppliedMs: 5000, lastSeenMs: 5000 });
    advance(400);
    r.ingestHeartbeat('virtfleet.heartbeat.h1', heartbeat('h1'));
    expect(r.get('h1'), 'a heartbeat is seen but applies no telemetry').toMatchObject({ telemetryAppliedMs: 5000, lastSeenMs: 5400 });
    advance(600);
    r.ingest('virtfleet.telemetry.h1', telemetry('h1', { published_at: new Date(5980).toISOString() }));
    expect(r.get('h1')?.telemetryAppliedMs).toBe(6000);
    expect(r.get('h1')?.telemetry.published_at).toBe(new Date(5980).toISOString());
    r.ingest('virtfleet.telemetry.h1', telemetry('h1'));
    expect(r.ingestLag.take(), 'each message with a published_at counted once, by its lag').toEqual({ messages: 2, p50: 20, p99: 20, max: 20 });
  });

  it('lets neither a heartbeat of an unknown host nor one of a down host change anything; a down host returns through telemetry', () => {
    const { r, changes, advance } = registry(1000);
    expect(r.ingestHeartbeat('virtfleet.heartbeat.h9', heartbeat('h9'))).toBe(true);
    expect(r.list()).toEqual([]);
    r.ingest('virtfleet.telemetry.h1', telemetry('h1'));
    advance(1001);
    r.sweep();
    r.ingestHeartbeat('virtfleet.heartbeat.h1', heartbeat('h1'));
    r.sweep();
    expect(r.get('h1')?.status).toBe('down');
    r.ingest('virtfleet.telemetry.h1', telemetry('h1'));
    expect(changes).toEqual(['h1 new->up', 'h1 up->down', 'h1 down->recovering']);
  });

  const badBeats: { name: string; subject: string; body: unknown }[] = [
    { name: 'a body that is not a heartbeat', subject: 'virtfleet.heartbeat.h1', body: { hello: 1 } },
    { name: 'a host id that does not match the subject', subject: 'virtfleet.heartbeat.h2', body: heartbeat('h1') },
    { name: 'a subject that only ends in the host id', subject: 'virtfleet.heartbeat.x.h1', body: heartbeat('h1') },
    { name: 'a negative seq', subject: 'virtfleet.heartbeat.h1', body: heartbeat('h1', { seq: -1 }) },
  ];
  it.each(badBeats)('drops a heartbeat with $name and does not count it as a sign of life', ({ subject, body }) => {
    const { r, changes, advance } = registry(1000);
    r.ingest('virtfleet.telemetry.h1', telemetry('h1'));
    advance(900);
    expect(r.ingestHeartbeat(subject, body)).toBe(false);
    advance(200);
    r.sweep();
    expect(changes).toEqual(['h1 new->up', 'h1 up->down']);
    expect(r.rejected).toBe(1);
  });

  it('reports a driver turning unhealthy and healthy again once each, without changing the host status', () => {
    const { r, changes, driverChanges } = registry();
    r.ingest('virtfleet.telemetry.h1', telemetry('h1', { drivers: [driver('docker', true), driver('libvirt', true)] }));
    r.ingest('virtfleet.telemetry.h1', telemetry('h1', { drivers: [driver('docker', false, 'list timed out'), driver('libvirt', true)] }));
    r.ingest('virtfleet.telemetry.h1', telemetry('h1', { drivers: [driver('docker', false, 'list timed out'), driver('libvirt', true)] }));
    r.ingest('virtfleet.telemetry.h1', telemetry('h1', { drivers: [driver('docker', true), driver('libvirt', true)] }));
    r.ingest('virtfleet.telemetry.h2', telemetry('h2', { drivers: [driver('libvirt', false, 'no libvirtd')] }));
    expect(driverChanges).toEqual(['h1 docker unhealthy: list timed out', 'h1 docker healthy', 'h2 libvirt unhealthy: no libvirtd']);
    expect(changes).toEqual(['h1 new->up', 'h2 new->up']);
  });

  it('restores exactly the stored cordons, for known hosts and ones yet to report', () => {
    const { r } = registry();
    r.ingest('virtfleet.telemetry.h1', telemetry('h1'));
    r.ingest('virtfleet.telemetry.h2', telemetry('h2'));
    r.restoreCordons(['h1', 'h3']);
    r.restoreCordons(['h2', 'h3']);
    r.ingest('virtfleet.telemetry.h3', telemetry('h3'));
    expect(r.list().map((h) => [h.id, h.cordoned])).toEqual([['h1', false], ['h2', true], ['h3', true]]);
  });

  const bad: { name: string; subject: string; body: unknown }[] = [
    { name: 'a body that is not telemetry', subject: 'virtfleet.telemetry.h1', body: { hello: 1 } },
    { name: 'a host id that does not match the subject', subject: 'virtfleet.telemetry.h2', body: telemetry('h1') },
    { name: 'a subject that only ends in the host id', subject: 'virtfleet.telemetry.x.h1', body: telemetry('h1') },
    { name: 'another subject family', subject: 'virtfleet.heartbeat.h1', body: telemetry('h1') },
    { name: 'a negative capacity', subject: 'virtfleet.telemetry.h1', body: telemetry('h1', { capacity: { vcpus: -1, memory_mib: 1, disk_gib: 1 } }) },
    { name: 'null', subject: 'virtfleet.telemetry.h1', body: null },
  ];
  it.each(bad)('drops $name without changing state', ({ subject, body }) => {
    const { r, changes, count } = registry();
    expect(r.ingest(subject, body)).toBe(false);
    expect(r.list()).toEqual([]);
    expect(changes).toEqual([]);
    expect(count()).toBe(0);
    expect(r.rejected).toBe(1);
  });
});
