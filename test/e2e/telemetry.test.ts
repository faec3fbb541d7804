import { readFileSync, statfsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { runCli } from '../support/processes.js';
import { waitFor, waitUntil } from '../support/wait.js';

interface HostJson {
  id: string;
  status: string;
  usage: { memory_total_mib: number; memory_used_mib: number; memory_available_mib: number; storage: { path: string; total_gib: number; used_gib: number }[] };
  capacity: { vcpus: number; memory_mib: number };
  drivers: { name: string; healthy: boolean; version: string; kinds: string[]; domain_types: string[] }[];
}

const TTL_MS = 3000;

describe('host telemetry over NATS', () => {
  let cluster: TestCluster;

  beforeAll(async () => {
    cluster = await startCluster({ hostTtlMs: TTL_MS });
  });
  afterAll(async () => cluster?.stop());

  const hostLs = async (): Promise<HostJson[]> => {
    const r = await runCli(['--coordinator', cluster.coordinatorAddress, 'host', 'ls', '-o', 'json']);
    if (r.code !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout) as HostJson[];
  };

  it('lists a new host within 2 s with real memory and storage, and marks it down within TTL + 2 s of its death', async () => {
    const started = Date.now();
    const agent = await cluster.addAgent({ telemetryIntervalMs: 1000 });
    // Polled through the API that `host ls` calls, so the CLI's own start-up does not count.
    await waitUntil('the host to appear up', async () => (await cluster.api.hosts()).hosts.some((h) => h.id === agent.hostId && h.status === 'up'), { timeoutMs: 5_000, intervalMs: 20 });
    const appearedMs = Date.now() - started;
    console.log(`host appeared ${appearedMs} ms after the agent process was spawned`);
    expect(appearedMs, cluster.logs()).toBeLessThanOrEqual(2000);
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
    await waitFor('the host to be marked down', async () => (await hostLs()).find((h) => h.id === agent.hostId && h.status === 'down'), { timeoutMs: TTL_MS + 4000 });
    const downAfterMs = Date.now() - killedAt;
    console.log(`host marked down ${downAfterMs} ms after SIGKILL (TTL ${TTL_MS} ms)`);
    expect(downAfterMs).toBeLessThanOrEqual(TTL_MS + 2000);

    // Telemetry is also the heartbeat: a restarted agent brings the host back up.
    await agent.restart();
    await waitFor('the host to come back up', async () => (await hostLs()).find((h) => h.id === agent.hostId && h.status === 'up'), { timeoutMs: 5_000 });
  });
});
