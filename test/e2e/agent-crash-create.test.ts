import { Hypervisor } from '@unraid/libvirt';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { pb } from '@virtfleet/shared';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { waitUntil } from '../support/wait.js';
import { removeContainersOf, removeDomains } from '../support/cleanup.js';
import { backendName } from '../../packages/agent/src/drivers/driver.js';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });

describe('an agent SIGKILLed in the middle of a create', () => {
  let cluster: TestCluster;
  const hypervisor = new Hypervisor({ uri: 'qemu:///system' });
  const domains: string[] = [];

  beforeAll(async () => {
    await hypervisor.connectOpen();
    cluster = await startCluster({ agents: [{}] });
    await waitForHostsUp(cluster);
  });
  afterAll(async () => {
    const hostId = cluster?.agents[0]?.hostId;
    await cluster?.stop();
    if (hostId) await removeContainersOf([hostId]);
    await removeDomains(hypervisor, domains);
    await hypervisor.connectClose();
  });

  it.each([
    ['container', { kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.1, memory_mib: 16, command: ['/bin/sleep', '1000'] }],
    ['vm', { kind: 'vm', vcpus: 1, memory_mib: 64 }],
  ] satisfies [string, pb.WorkloadSpec][])('ends with exactly one running %s, no duplicate and no orphan', async (kind, spec) => {
    const agent = cluster.agents[0]!;
    const w = await cluster.api.submit({ request_id: `crash-${kind}`, spec: { name: `crash-${kind}`, ...spec } });
    if (kind === 'vm') domains.push(backendName(agent.hostId, w.id));
    await waitUntil('the create to be dispatched', async () => (await cluster.api.get(w.id)).state !== 'pending', { timeoutMs: 10_000, intervalMs: 10 });
    agent.process.signal('SIGKILL');
    await agent.process.waitExit();
    const stateAtKill = (await cluster.api.get(w.id)).state;
    await agent.restart();

    const running = await waitForState(cluster, w.id, 'running', 60_000);
    expect(running.host_id).toBe(agent.hostId);
    let copies: number;
    if (kind === 'container') {
      copies = (await docker.listContainers({ all: true, filters: { label: [`io.virtfleet.workload=${w.id}`] } })).length;
      const owned = await docker.listContainers({ all: true, filters: { label: [`io.virtfleet.host=${agent.hostId}`] } });
      expect(owned.map((c) => c.Labels['io.virtfleet.workload'])).toEqual([w.id]);
    } else {
      const all = await hypervisor.connectListAllDomains();
      const names = await Promise.all(all.map((d) => hypervisor.domainGetName(d)));
      copies = names.filter((n) => n === backendName(agent.hostId, w.id)).length;
      const domain = await hypervisor.domainLookupByName(backendName(agent.hostId, w.id));
      expect((await hypervisor.domainGetInfo(domain)).state).toBe(1);
    }
    console.log(`${kind}: state when the agent died: ${stateAtKill}; copies after restart: ${copies}`);
    expect(copies).toBe(1);
    await cluster.api.act('DeleteWorkload', { id: w.id });
  });
});
