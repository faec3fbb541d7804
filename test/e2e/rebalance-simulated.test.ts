import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, type pb } from '@virtfleet/shared';
import { startCluster, waitForHostsUp, waitForState, type TestAgent, type TestCluster } from '../support/cluster.js';

// PlanRebalance against a real coordinator and three agents on the in-memory fake driver: the plan is
// made from the coordinator's own records (controller.snapshots() and workloads()), in its worker
// thread, and changes nothing. Whether the moves then work is the migration machinery's to show.
const FAKE = { fake: { enabled: true } };

const spec = (name: string, extra: Partial<pb.WorkloadSpec> = {}): pb.WorkloadSpec => ({ name, kind: 'container', image: 'sim:latest', vcpus: 1, memory_mib: 256, ...extra });

describe('PlanRebalance on simulated hosts', () => {
  let cluster: TestCluster;
  /** Workload id → the host it was placed on. */
  const placed = new Map<string, string>();

  /** Submits a workload while every other host is cordoned, so that it runs on `host`. */
  async function submitOnto(host: TestAgent, workload: pb.WorkloadSpec): Promise<string> {
    const others = cluster.agents.filter((a) => a !== host);
    for (const a of others) await cluster.api.cordon(a.hostId, true);
    const { id } = await cluster.api.submit({ request_id: `submit-${workload.name}`, spec: workload });
    expect((await waitForState(cluster, id, 'running')).host_id, cluster.logs()).toBe(host.hostId);
    for (const a of others) await cluster.api.cordon(a.hostId, false);
    placed.set(id, host.hostId);
    return id;
  }

  beforeAll(async () => {
    cluster = await startCluster({ agents: [0, 1, 2].map(() => ({ drivers: FAKE })) });
    await waitForHostsUp(cluster);
    const [a, b, c] = cluster.agents as [TestAgent, TestAgent, TestAgent];
    await submitOnto(a, spec('web-a'));
    await submitOnto(b, spec('web-b'));
    await submitOnto(c, spec('web-c'));
    await submitOnto(c, spec('keep-me', { restart_policy: 'never' }));
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('plans to free the hosts it can, leaving restart_policy never workloads where they are, and changes nothing', async () => {
    const plan = await cluster.api.planRebalance('consolidate');
    expect(plan, cluster.logs()).toMatchObject({ goal: 'consolidate', hosts_used_before: 3, hosts_used_after: 1, hosts_lower_bound: 1 });
    expect(plan.pinned.map((p) => [p.name, p.host, p.reason])).toEqual([['keep-me', cluster.agents[2]!.hostId, 'restart_policy never']]);
    // Everything goes where the pinned workload is: the only way to one host.
    expect(plan.moves.map((m) => [m.name, m.from, m.to]).sort()).toEqual([
      ['web-a', cluster.agents[0]!.hostId, cluster.agents[2]!.hostId],
      ['web-b', cluster.agents[1]!.hostId, cluster.agents[2]!.hostId],
    ]);
    expect(plan.gain).toMatchObject({ hosts_freed: 2, freed_hosts: [cluster.agents[0]!.hostId, cluster.agents[1]!.hostId].sort() });
    for (const [id, host] of placed) expect((await cluster.api.get(id)).host_id, `${id} has not moved`).toBe(host);
  });

  it('balance finds nothing to move on evenly loaded hosts', async () => {
    const plan = await cluster.api.planRebalance('balance');
    expect(plan).toMatchObject({ goal: 'balance', hosts_used_before: 3, hosts_used_after: 3 });
    expect(plan.moves).toEqual([]);
  });

  it('refuses an unknown goal with INVALID_ARGUMENT', async () => {
    await expect(cluster.api.planRebalance('shuffle')).rejects.toThrow(InvalidArgumentError);
  });

  it('virtfleet rebalance plan asks the coordinator without --hosts and --workloads', async () => {
    const r = await cluster.cli('-o', 'json', 'rebalance', 'plan', '--goal', 'consolidate');
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as { hosts_used_before: number; hosts_used_after: number; moves: unknown[] };
    expect([plan.hosts_used_before, plan.hosts_used_after, plan.moves.length]).toEqual([3, 1, 2]);
  });
});
