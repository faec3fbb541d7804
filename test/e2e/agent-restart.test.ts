import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentClient } from '@virtfleet/coordinator';
import { parseWorkloadSpec } from '@virtfleet/shared';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { waitUntil } from '../support/wait.js';
import { removeContainersOf } from '../support/cleanup.js';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const spec = parseWorkloadSpec({ name: 'survivor', kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.2, memory_mib: 32, command: ['/bin/sleep', '1000'] });

describe('agent restarts', () => {
  let cluster: TestCluster;
  let agentClient: AgentClient;

  beforeAll(async () => {
    cluster = await startCluster({ agents: [{ drivers: { docker: { enabled: true } } }] });
    await waitForHostsUp(cluster);
    const agent = cluster.agents[0]!;
    agentClient = await cluster.agentClient(agent, { deadlineMs: 30_000, maxAttempts: 4 });
  });
  afterAll(async () => {
    agentClient?.close();
    const hostId = cluster?.agents[0]?.hostId;
    await cluster?.stop();
    if (hostId) await removeContainersOf([hostId]);
  });

  const ownedContainers = async () =>
    docker.listContainers({ all: true, filters: { label: [`io.virtfleet.host=${cluster.agents[0]!.hostId}`] } });

  it('leaves workloads running on SIGTERM and finds them again after a restart', async () => {
    const w = await cluster.api.submit({ request_id: 'restart-1', spec });
    const running = await waitForState(cluster, w.id, 'running');
    const agent = cluster.agents[0]!;

    const code = await agent.process.stop('SIGTERM');
    expect(code, agent.process.tail()).toBe(0);
    expect((await docker.getContainer(running.driver_ref).inspect()).State.Running).toBe(true);

    await agent.restart();
    await waitUntil('the restarted agent to list the workload', async () => {
      const s = await agentClient.get(w.id);
      return s.state === 'running' && s.driver_ref === running.driver_ref;
    });
    expect(await ownedContainers()).toHaveLength(1);

    const stopped = await cluster.api.act('StopWorkload', { id: w.id, timeout_seconds: 1 });
    expect(stopped.state).toBe('stopped');
    expect((await docker.getContainer(running.driver_ref).inspect()).State.Running).toBe(false);
    await cluster.api.act('DeleteWorkload', { id: w.id });
  });

  it('runs a create command id once, even when repeated across a restart', async () => {
    const first = await agentClient.create('cmd-create-direct-1', 'direct-0001', { ...spec, name: 'direct' });
    const again = await agentClient.create('cmd-create-direct-1', 'direct-0001', { ...spec, name: 'direct' });
    expect(again).toEqual(first);
    await cluster.agents[0]!.restart();
    const afterRestart = await agentClient.create('cmd-create-direct-1', 'direct-0001', { ...spec, name: 'direct' });
    expect(afterRestart.driver_ref).toBe(first.driver_ref);
    const mine = (await ownedContainers()).filter((c) => c.Labels['io.virtfleet.workload'] === 'direct-0001');
    expect(mine).toHaveLength(1);

    // The same command id for a different request is refused, not silently answered.
    await expect(agentClient.create('cmd-create-direct-1', 'direct-0002', { ...spec, name: 'other' })).rejects.toMatchObject({
      message: expect.stringContaining('different request'),
    });
    await agentClient.act('delete', 'cmd-delete-direct-1', 'direct-0001');
    expect((await ownedContainers()).filter((c) => c.Labels['io.virtfleet.workload'] === 'direct-0001')).toHaveLength(0);
  });
});
