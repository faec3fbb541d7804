import { describe, expect, it } from 'vitest';
import { createLogger } from '@virtfleet/shared';
import type { Host } from './host.js';
import { HostRegistry } from './host-registry.js';

const log = createLogger('test', 'silent');

function telemetry(hostId: string, overrides: Record<string, unknown> = {}) {
  return {
    version: 1,
    host_id: hostId,
    hostname: hostId,
    address: '127.0.0.1:1',
    agent_version: '0',
    boot_id: 'b',
    seq: 1,
    time: new Date().toISOString(),
    labels: {},
    drivers: [],
    capacity: { vcpus: 1, memory_mib: 1024, disk_gib: 1 },
    host: { cpu_count: 1, cpu_utilisation: 0, load1: 0, load5: 0, load15: 0, memory_total_mib: 1024, memory_used_mib: 1, memory_available_mib: 1023, storage: [] },
    workloads: [],
    ...overrides,
  };
}

function registry(ttlMs = 1000) {
  let now = 0;
  const changes: string[] = [];
  let telemetryCount = 0;
  const r = new HostRegistry(
    ttlMs,
    {
      onStatusChange: (h: Host, previous) => changes.push(`${h.id} ${previous ?? 'new'}->${h.status}`),
      onTelemetry: () => telemetryCount++,
    },
    log,
    () => now,
  );
  return { r, changes, advance: (ms: number) => (now += ms), count: () => telemetryCount };
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
