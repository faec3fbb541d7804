import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simulatedHostId } from '@virtfleet/agent';
import { AgentClient } from '@virtfleet/coordinator';
import { CertificateFiles, type pb } from '@virtfleet/shared';
import { startCluster, TEST_FENCE_TIMEOUT_MS, uniqueHostId, waitForState, type TestCluster } from '../support/cluster.js';
import { CLI_ENTRY, spawnProcess, type ManagedProcess } from '../support/processes.js';
import { waitFor, waitUntil } from '../support/wait.js';

// One agent process simulating HOSTS hosts on the fake driver, against a real coordinator and nats-server:
// every host must come up on its own, take workloads dispatched to its own gRPC endpoint, and keep reporting.
const HOSTS = 50;
const WORKLOADS = 6;
const TELEMETRY_MS = 1000;

async function listHosts(cluster: TestCluster, prefix: string): Promise<pb.Host__Output[]> {
  const { hosts } = await cluster.api.hosts({ page_size: 5000 });
  return hosts.filter((h) => h.id.startsWith(`${prefix}-`));
}

describe(`an agent simulating ${HOSTS} hosts in one process`, () => {
  let cluster: TestCluster;
  let fleet: ManagedProcess;
  let dir: string;
  const prefix = uniqueHostId('fleet');
  const ids = Array.from({ length: HOSTS }, (_, i) => simulatedHostId(prefix, i + 1, HOSTS));

  beforeAll(async () => {
    cluster = await startCluster({ hostTtlMs: 5000 });
    dir = mkdtempSync(join(tmpdir(), 'virtfleet-fleet-'));
    const configFile = join(dir, 'agent.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        hostId: prefix,
        stateDir: join(dir, 'state'),
        grpc: { listen: '127.0.0.1:0', tls: await cluster.pki.fleetTls(ids) },
        nats: await cluster.nats.daemonConfig('agent', prefix, ids),
        fencing: { timeoutMs: TEST_FENCE_TIMEOUT_MS },
        telemetry: { intervalMs: TELEMETRY_MS },
        drivers: { fake: { enabled: true, vcpus: 4, memoryMiB: 8192 } },
      }),
    );
    fleet = spawnProcess('simulated fleet', process.execPath, [CLI_ENTRY, 'agent', '--config', configFile, '--simulate-hosts', String(HOSTS)], { VIRTFLEET_LOG_LEVEL: 'info' });
  });

  afterAll(async () => {
    await fleet?.stop('SIGTERM');
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('brings every host up, places workloads on different hosts through their own endpoints, deletes them, and stays healthy', async () => {
    const logs = () => `${cluster.logs()}\n--- fleet\n${fleet.tail(40)}`;
    await waitUntil(
      `all ${HOSTS} simulated hosts to be up`,
      async () => {
        if (!fleet.running) throw new Error(`the fleet process exited: ${fleet.tail()}`);
        const up = (await listHosts(cluster, prefix)).filter((h) => h.status === 'up');
        return up.length === HOSTS;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    const hosts = await listHosts(cluster, prefix);
    expect(hosts.map((h) => h.id).sort()).toEqual(ids);
    expect(new Set(hosts.map((h) => h.address)).size, 'each host has its own gRPC endpoint').toBe(HOSTS);
    for (const h of hosts) {
      expect(h.capacity, `${h.id} reports the fake driver's capacity`).toMatchObject({ vcpus: 4, memory_mib: 8192 });
      expect(h.drivers.map((d) => d.name), h.id).toEqual(['fake']);
      expect(Date.parse(h.telemetry_applied_at) - Date.parse(h.telemetry_published_at), `${h.id} telemetry ingest lag`).toBeGreaterThanOrEqual(0);
    }

    // Anti-affinity puts each on a host of its own.
    const submitted: pb.Workload__Output[] = [];
    for (let i = 0; i < WORKLOADS; i++) {
      submitted.push(
        await cluster.api.submit({
          request_id: `${prefix}-w${i}`,
          spec: { name: `fleet-${i}`, kind: 'container', image: 'sim:latest', vcpus: 1, memory_mib: 256, security: { anti_affinity_group: 'fleet-e2e' } },
        }),
      );
    }
    const running = await Promise.all(submitted.map((w) => waitForState(cluster, w.id, 'running', 30_000)));
    const placedOn = running.map((w) => w.host_id);
    expect(new Set(placedOn).size, `placed on ${placedOn.join(', ')}`).toBe(WORKLOADS);
    for (const hostId of placedOn) expect(ids, logs()).toContain(hostId);

    // Each simulated host's own endpoint lists exactly what was placed there.
    const byAddress = new Map(hosts.map((h) => [h.id, h.address]));
    const listedOn = async (hostId: string) => {
      const client = new AgentClient(hostId, byAddress.get(hostId)!, { deadlineMs: 10_000, maxAttempts: 2, certificates: new CertificateFiles(await cluster.pki.issue('coordinator', 'e2e'), 'tls') });
      try {
        return (await client.list()).map((w) => w.workload_id);
      } finally {
        client.close();
      }
    };
    for (const w of running) expect(await listedOn(w.host_id), `${w.id} on ${w.host_id}`).toEqual([w.id]);
    expect(await listedOn(ids.find((id) => !placedOn.includes(id))!), 'a host that was given nothing').toEqual([]);

    for (const w of running) expect((await cluster.api.act('DeleteWorkload', { id: w.id })).state).toBe('deleted');
    for (const w of running) expect(await listedOn(w.host_id), `${w.id} deleted from ${w.host_id}`).toEqual([]);
    await waitUntil('the hosts to report no workloads', async () => (await listHosts(cluster, prefix)).every((h) => h.workload_count === 0), { timeoutMs: 10_000 });

    // Healthy afterwards: still running, every host up and still reporting, nothing logged as going wrong.
    const before = new Map((await listHosts(cluster, prefix)).map((h) => [h.id, Date.parse(h.telemetry_applied_at)]));
    await waitFor(
      'fresh telemetry from every host',
      async () => {
        const now = await listHosts(cluster, prefix);
        return now.length === HOSTS && now.every((h) => h.status === 'up' && Date.parse(h.telemetry_applied_at) > before.get(h.id)!) ? now : undefined;
      },
      { timeoutMs: 3 * TELEMETRY_MS + 5000, intervalMs: 250 },
    );
    expect(fleet.running, fleet.tail()).toBe(true);
    const output = fleet.output.join('');
    expect(output, 'no unhandled rejection').not.toMatch(/unhandled rejection/);
    expect(output, 'no host fenced itself').not.toMatch(/"msg":"fenced/);
    expect(output).toMatch(new RegExp(`"hosts":${HOSTS}.*simulated fleet started`));

    expect(await fleet.stop('SIGTERM'), `exit code after SIGTERM:\n${fleet.tail()}`).toBe(0);
  }, 120_000);
});
