import { readFileSync, statfsSync } from 'node:fs';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { telemetrySchema, telemetrySubject } from '@virtfleet/shared';
import { startCluster, uniqueHostId, type TestCluster } from '../support/cluster.js';
import { waitFor, waitUntil } from '../support/wait.js';

interface HostJson {
  id: string;
  status: string;
  usage: { memory_total_mib: number; memory_used_mib: number; memory_available_mib: number; storage: { path: string; total_gib: number; used_gib: number }[] };
  capacity: { vcpus: number; memory_mib: number };
  drivers: { name: string; healthy: boolean; version: string; kinds: string[]; domain_types: string[] }[];
}

const TTL_MS = 3000;
const TELEMETRY_MS = 1000;
/** How often the coordinator's host registry looks for silent hosts (HostRegistry.start). */
const SWEEP_MS = Math.max(100, Math.min(1000, TTL_MS / 4));

describe('host telemetry over NATS', () => {
  let cluster: TestCluster;
  let nc: NatsConnection;

  beforeAll(async () => {
    cluster = await startCluster({ hostTtlMs: TTL_MS });
    nc = await cluster.nats.connect();
  });
  afterAll(async () => {
    await nc?.close();
    await cluster?.stop();
  });

  /** Arrival times of a host's valid telemetry, as a second subscriber next to the coordinator sees them. */
  const heartbeats = (hostId: string) => {
    const arrivals: number[] = [];
    nc.subscribe(telemetrySubject(hostId), {
      callback: (err, msg) => {
        if (!err && telemetrySchema.safeParse(msg.json()).success) arrivals.push(Date.now());
      },
    });
    return arrivals;
  };
  const statusOf = async (hostId: string) => (await cluster.api.hosts()).hosts.find((h) => h.id === hostId)?.status;

  const hostLs = async (): Promise<HostJson[]> => {
    const r = await cluster.cli('host', 'ls', '-o', 'json');
    if (r.code !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout) as HostJson[];
  };

  it('lists a new host on its first heartbeat with real memory and storage, and marks it down a TTL after its last', async () => {
    const hostId = uniqueHostId();
    const arrivals = heartbeats(hostId);
    const spawnedAt = Date.now();
    const agent = await cluster.addAgent({ hostId, telemetryIntervalMs: TELEMETRY_MS });
    // Polled through the API that `host ls` calls, so the CLI's own start-up does not count; the agent's (Node, drivers) does not either.
    await waitUntil('the host to appear up', async () => (await statusOf(hostId)) === 'up', { timeoutMs: 30_000, intervalMs: 20 });
    const appearedAt = Date.now();
    const firstAt = arrivals[0];
    if (firstAt === undefined) throw new Error(`the host is listed, but no telemetry from ${hostId} was seen on NATS`);
    const listedMs = appearedAt - firstAt;
    console.log(`first heartbeat ${firstAt - spawnedAt} ms after the agent process was spawned; host listed up ${listedMs} ms after it (telemetry every ${TELEMETRY_MS} ms)`);
    // The first valid heartbeat makes a host up: listed before the next one is due.
    expect(listedMs, cluster.logs()).toBeLessThanOrEqual(TELEMETRY_MS);
    const host = (await hostLs()).find((h) => h.id === agent.hostId);
    if (!host) throw new Error('host ls does not list the host');
    expect(host.status).toBe('up');

    const memTotalKiB = Number(/MemTotal:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1]);
    expect(host.usage.memory_total_mib).toBe(Math.round(memTotalKiB / 1024));
    expect(host.usage.memory_used_mib).toBeGreaterThan(0);
    expect(host.usage.memory_used_mib + host.usage.memory_available_mib).toBe(host.usage.memory_total_mib);
    const root = statfsSync('/');
    const rootGiB = (root.blocks * root.bsize) / 2 ** 30;
    expect(host.usage.storage[0]?.path).toBe('/');
    expect(host.usage.storage[0]?.total_gib).toBeCloseTo(rootGiB, 1);
    expect(host.usage.storage[0]?.used_gib).toBeGreaterThan(0);
    const docker = host.drivers.find((d) => d.name === 'docker');
    const libvirt = host.drivers.find((d) => d.name === 'libvirt');
    expect(docker?.healthy).toBe(true);
    expect(docker?.kinds).toEqual(['container']);
    expect(libvirt?.healthy).toBe(true);
    expect(libvirt?.domain_types.length).toBeGreaterThan(0);

    agent.process.signal('SIGKILL');
    const killedAt = Date.now();
    await agent.process.waitExit();
    await waitUntil('the host to be marked down', async () => (await statusOf(hostId)) === 'down', { timeoutMs: 10 * TTL_MS, intervalMs: 20 });
    const downAt = Date.now();
    const lastAt = arrivals[arrivals.length - 1]!;
    console.log(`last heartbeat ${killedAt - lastAt} ms before the SIGKILL; host marked down ${downAt - lastAt} ms after it (TTL ${TTL_MS} ms, sweep every ${SWEEP_MS} ms)`);
    // Down once the TTL has passed since the last heartbeat, at the next sweep; one more sweep period for sweeps and polls running late.
    expect(downAt - lastAt).toBeLessThanOrEqual(TTL_MS + 2 * SWEEP_MS);
    expect((await hostLs()).find((h) => h.id === hostId)?.status, '`host ls` shows it down').toBe('down');

    // Telemetry is also the heartbeat: a restarted agent brings the host back up.
    const heardBefore = arrivals.length;
    await agent.restart();
    await waitFor('the host to come back up', async () => (await hostLs()).find((h) => h.id === hostId && h.status === 'up'), { timeoutMs: 30_000 });
    expect(arrivals.length, 'the restarted agent sent telemetry').toBeGreaterThan(heardBefore);
  });
});
