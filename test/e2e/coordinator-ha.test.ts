import { status } from '@grpc/grpc-js';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorApi } from '@virtfleet/cli';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import type { ManagedProcess } from '../support/processes.js';
import { waitFor, waitUntil } from '../support/wait.js';
import { removeContainersOf } from '../support/cleanup.js';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const spec = (name: string) => ({ name, kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.1, memory_mib: 16, command: ['/bin/sleep', '1000'] });

describe('two coordinators: one leader by lease, a follower that takes over', () => {
  let cluster: TestCluster;
  let second: { process: ManagedProcess; address: string };
  let both: CoordinatorApi;

  beforeAll(async () => {
    cluster = await startCluster({ agents: [{ drivers: { docker: { enabled: true } } }] });
    second = await cluster.addCoordinator('e2e-standby');
    both = new CoordinatorApi({ address: `${cluster.coordinatorAddress},${second.address}`, timeoutMs: 20_000 });
    await waitForHostsUp(cluster);
  });
  afterAll(async () => {
    both?.close();
    const hostId = cluster?.agents[0]?.hostId;
    await cluster?.stop();
    if (hostId) await removeContainersOf([hostId]);
  });

  it('refuses changes on the follower, serves reads there, and fails over within the lease after the leader is killed', async () => {
    const first = await both.submit({ request_id: 'ha-1', spec: spec('before-failover') });
    await waitForState(cluster, first.id, 'running');

    const standby = new CoordinatorApi({ address: second.address, timeoutMs: 2_000 });
    try {
      await expect(standby.submit({ request_id: 'ha-refused', spec: spec('refused') })).rejects.toMatchObject({
        code: status.UNAVAILABLE,
        message: expect.stringContaining('not the leader (the leader is e2e at'),
      });
      const mirrored = await waitFor('the follower to mirror the workload', async () => {
        const w = await standby.get(first.id);
        return w.state === 'running' ? w : undefined;
      });
      expect(mirrored).toMatchObject({ id: first.id, host_id: cluster.agents[0]!.hostId, spec: { name: 'before-failover' } });
      // Cordons change on the leader; the follower's host list follows.
      const hostId = cluster.agents[0]!.hostId;
      const cordonedOnFollower = async () => (await standby.hosts()).hosts.find((h) => h.id === hostId)?.cordoned;
      await both.cordon(hostId, true);
      await waitUntil('the follower to show the cordon', async () => (await cordonedOnFollower()) === true);
      await both.cordon(hostId, false);
      await waitUntil('the follower to show the uncordon', async () => (await cordonedOnFollower()) === false);
    } finally {
      standby.close();
    }

    cluster.coordinator.signal('SIGKILL');
    const killedAt = Date.now();
    const afterFailover = await both.submit({ request_id: 'ha-2', spec: spec('after-failover') });
    const running = await waitFor('the new leader to run it', async () => {
      const w = await both.get(afterFailover.id);
      return w.state === 'running' ? w : undefined;
    }, { timeoutMs: 20_000, intervalMs: 50 });
    const failoverMs = Date.now() - killedAt;
    console.log(`leader SIGKILL to the next placement running on the new leader: ${failoverMs} ms (lease TTL 3000 ms)`);
    expect(failoverMs).toBeLessThanOrEqual(6000);
    expect(running.host_id).toBe(cluster.agents[0]!.hostId);

    // Nothing lost, nothing doubled: the new leader knows both, Docker runs one container each.
    const names = (await both.list()).workloads.map((w) => w.spec?.name).sort();
    expect(names).toEqual(['after-failover', 'before-failover']);
    for (const w of [first, afterFailover]) {
      expect(await docker.listContainers({ all: true, filters: { label: [`io.virtfleet.workload=${w.id}`] } })).toHaveLength(1);
    }
    // The same request id on the new leader returns the workload the old leader accepted.
    expect((await both.submit({ request_id: 'ha-1', spec: spec('before-failover') })).id).toBe(first.id);
  });
});
