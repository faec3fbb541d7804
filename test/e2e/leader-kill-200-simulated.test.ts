import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CoordinatorApi } from '@virtfleet/cli';
import { startCluster, waitForHostsUp, type TestCluster } from '../support/cluster.js';
import { coordinatorConfigOf } from '../support/configs.js';
import { readLeaderLease } from '../support/leader.js';
import { waitFor, waitUntil } from '../support/wait.js';
import { retainedEvents } from '../support/workloads.js';

// Control-plane scale, simulated: three agents with the in-memory fake driver stand in for hosts. The fake
// driver answers a repeated create with the existing entry, so a create sent twice to one host cannot show
// here; this test checks what the coordinators decide (nothing lost, nothing placed on two hosts).
// leader-kill-burst.test.ts runs a smaller burst against real Docker, where a second container would show.
const AGENTS = 3;
const WORKLOADS = 200;

describe('200 submissions with the leading coordinator SIGKILLed in the middle, on simulated hosts (fake driver)', () => {
  let cluster: TestCluster;
  let client: CoordinatorApi;

  beforeAll(async () => {
    cluster = await startCluster({ agents: Array.from({ length: AGENTS }, () => ({ drivers: { fake: { enabled: true } } })) });
    const standby = await cluster.addCoordinator('standby');
    client = cluster.client(`${cluster.coordinatorAddress},${standby.address}`, 30_000);
    await waitForHostsUp(cluster);
  });
  afterAll(async () => {
    client?.close();
    await cluster?.stop();
  });

  it('places every accepted submission, half of them accepted by the standby after the kill, on exactly one fake host', async () => {
    const submitted = new Map<string, string>();
    const submitOne = async (i: number) => {
      const w = await client.submit({ request_id: `bulk-${i}`, spec: { name: `bulk-${i}`, kind: i % 2 ? 'vm' : 'container', image: i % 2 ? '' : 'sim:latest', vcpus: 1, memory_mib: 64 } });
      submitted.set(`bulk-${i}`, w.id);
    };
    const lease = () => readLeaderLease(cluster.nats, coordinatorConfigOf(cluster.coordinator).state.bucket);
    const before = await lease();
    expect(before?.coordinatorId, 'the leader before the kill').toBe(coordinatorConfigOf(cluster.coordinator).id);
    let acceptedBeforeKill = 0;
    for (let i = 0; i < WORKLOADS; i += 10) {
      if (i === WORKLOADS / 2) {
        acceptedBeforeKill = submitted.size;
        cluster.coordinator.signal('SIGKILL');
      }
      await Promise.all(Array.from({ length: 10 }, (_, k) => submitOne(i + k)));
    }
    expect(acceptedBeforeKill, 'submissions accepted by the first leader').toBe(WORKLOADS / 2);
    expect(new Set(submitted.values()).size).toBe(WORKLOADS);
    // The rest were accepted after the kill: the first leader is gone and the standby holds the lease, in a later term.
    expect(cluster.coordinator.running, 'the SIGKILLed leader is gone').toBe(false);
    expect(await lease(), 'the leader after the kill').toMatchObject({ coordinatorId: 'standby', term: before!.term + 1 });

    const all = await waitFor(
      'every workload to run',
      async () => {
        const { workloads, next_page_token } = await client.list();
        if (next_page_token !== '') throw new Error('more workloads than one page holds');
        return workloads.length === WORKLOADS && workloads.every((w) => w.state === 'running') ? workloads : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    expect(all.map((w) => w.id).sort()).toEqual([...submitted.values()].sort());

    // Counted on the agents themselves: each workload exactly once across all hosts.
    const copies = new Map<string, number>();
    for (const agent of cluster.agents) {
      const api = await cluster.agentClient(agent);
      try {
        for (const w of await api.list()) copies.set(w.workload_id, (copies.get(w.workload_id) ?? 0) + 1);
      } finally {
        api.close();
      }
    }
    const twice = [...copies].filter(([, n]) => n > 1);
    console.log(`${WORKLOADS} submitted, ${all.length} running, ${copies.size} on agents, ${twice.length} placed twice, leader killed after ${acceptedBeforeKill}`);
    expect(twice).toEqual([]);
    expect(copies.size).toBe(WORKLOADS);

    // The event log holds each workload's history once, the kill notwithstanding: submitted, placed, creating, running.
    // (An event follows its stored change by a moment, so the last ones are waited for; a repeat never goes away.)
    const incomplete = async () => {
      const history = new Map<string, string[]>();
      for (const e of await retainedEvents(client)) {
        if (!e.type.startsWith('io.virtfleet.workload.')) continue;
        const step = e.type === 'io.virtfleet.workload.state_changed' ? `${String(e.data.to)}` : e.type.slice('io.virtfleet.workload.'.length);
        history.set(e.subject, [...(history.get(e.subject) ?? []), step]);
      }
      return all.map((w) => [w.id, history.get(w.id) ?? []] as const).filter(([, steps]) => steps.join(',') !== 'submitted,placed,creating,running');
    };
    await waitUntil('every workload history to be complete in the event log', async () => (await incomplete()).length === 0, { timeoutMs: 10_000 }).catch(() => undefined);
    expect(await incomplete(), 'workloads whose events are missing or repeated').toEqual([]);
  });
});
