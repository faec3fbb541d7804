import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorApi } from '@virtfleet/cli';
import { AgentClient } from '@virtfleet/coordinator';
import { startCluster, waitForHostsUp, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/wait.js';

// Fleet-scale simulation: three agents with the in-memory fake driver stand in for many hosts.
const AGENTS = 3;
const WORKLOADS = 200;

describe('200 submissions with the leading coordinator SIGKILLed in the middle', () => {
  let cluster: TestCluster;
  let client: CoordinatorApi;

  beforeAll(async () => {
    cluster = await startCluster({ agents: Array.from({ length: AGENTS }, () => ({ drivers: { fake: { enabled: true } } })) });
    const standby = await cluster.addCoordinator('standby');
    client = new CoordinatorApi({ address: `${cluster.coordinatorAddress},${standby.address}`, timeoutMs: 30_000 });
    await waitForHostsUp(cluster);
  });
  afterAll(async () => {
    client?.close();
    await cluster?.stop();
  });

  it('accounts for every workload in the end: none lost, none placed twice', async () => {
    const submitted = new Map<string, string>();
    const submitOne = async (i: number) => {
      const w = await client.submit({ request_id: `bulk-${i}`, spec: { name: `bulk-${i}`, kind: i % 2 ? 'vm' : 'container', image: i % 2 ? '' : 'sim:latest', vcpus: 1, memory_mib: 64 } });
      submitted.set(`bulk-${i}`, w.id);
    };
    let killedAt = 0;
    for (let i = 0; i < WORKLOADS; i += 10) {
      if (i === WORKLOADS / 2) {
        cluster.coordinator.signal('SIGKILL');
        killedAt = Date.now();
      }
      await Promise.all(Array.from({ length: 10 }, (_, k) => submitOne(i + k)));
    }
    expect(killedAt).toBeGreaterThan(0);
    expect(new Set(submitted.values()).size).toBe(WORKLOADS);

    const all = await waitFor(
      'every workload to run',
      async () => {
        const { workloads } = await client.list();
        return workloads.length === WORKLOADS && workloads.every((w) => w.state === 'running') ? workloads : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    expect(all.map((w) => w.id).sort()).toEqual([...submitted.values()].sort());

    // Counted on the agents themselves: each workload exactly once across all hosts.
    const copies = new Map<string, number>();
    for (const agent of cluster.agents) {
      const api = new AgentClient(agent.hostId, `127.0.0.1:${agent.port}`, { deadlineMs: 10_000, maxAttempts: 3 });
      try {
        for (const w of await api.list()) copies.set(w.workload_id, (copies.get(w.workload_id) ?? 0) + 1);
      } finally {
        api.close();
      }
    }
    const twice = [...copies].filter(([, n]) => n > 1);
    console.log(`${WORKLOADS} submitted, ${all.length} running, ${copies.size} on agents, ${twice.length} placed twice, leader killed after ${WORKLOADS / 2}`);
    expect(twice).toEqual([]);
    expect(copies.size).toBe(WORKLOADS);
  });
});
