import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, uniqueHostId, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { runCli } from '../support/processes.js';
import { waitFor } from '../support/wait.js';
import { removeContainersOf } from '../support/cleanup.js';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const container = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  kind: 'container',
  image: 'virtfleet-test/busybox:latest',
  vcpus: 0.1,
  memory_mib: 16,
  command: ['/bin/sleep', '1000'],
  ...extra,
});

describe('coordinator state on JetStream survives SIGKILL', () => {
  let cluster: TestCluster;
  const hostA = uniqueHostId('restart-a');

  beforeAll(async () => {
    cluster = await startCluster({ agents: [{ hostId: hostA, drivers: { docker: { enabled: true } }, extra: { trustLevel: 1 } }] });
    await waitForHostsUp(cluster);
  });
  afterAll(async () => {
    const hostIds = cluster?.agents.map((a) => a.hostId) ?? [];
    await cluster?.stop();
    await removeContainersOf(hostIds);
  });

  it('keeps placed workloads, the queue in its order, cordons and decisions; no request is lost or run twice', async () => {
    const running = await cluster.api.submit({ request_id: 'restart-running', spec: container('kept') });
    await waitForState(cluster, running.id, 'running');
    // Three requests no current host can take (trust 5), queued in this order.
    const queued = [];
    for (const name of ['q-first', 'q-second', 'q-third']) queued.push(await cluster.api.submit({ request_id: `restart-${name}`, spec: container(name, { security: { min_trust_level: 5 } }) }));
    await cluster.api.cordon(hostA, true);
    const beforeQueue = (await cluster.api.queue()).entries.map((e) => e.workload_id);
    expect(beforeQueue).toEqual(queued.map((w) => w.id));
    // Accepted just before the crash: it must not be lost.
    const lastMinute = await cluster.api.submit({ request_id: 'restart-last-minute', spec: container('last-minute') });

    await cluster.restartCoordinator('SIGKILL');
    await waitForHostsUp(cluster);

    const after = await cluster.api.list();
    const byName = new Map(after.workloads.map((w) => [w.spec?.name, w]));
    expect(byName.get('kept')).toMatchObject({ id: running.id, host_id: hostA });
    expect(byName.get('kept')?.state).toMatch(/running|unknown/);
    expect((await cluster.api.queue()).entries.map((e) => e.workload_id)).toEqual([...queued.map((w) => w.id), lastMinute.id]);
    expect((await cluster.api.hosts()).hosts.find((h) => h.id === hostA)?.cordoned).toBe(true);
    const explained = await runCli(['--coordinator', cluster.coordinatorAddress, 'explain', running.id]);
    expect(explained.stdout).toContain(`placed on ${hostA}`);

    // Same request id after the restart: the same workload, not a second one.
    expect((await cluster.api.submit({ request_id: 'restart-running', spec: container('kept') })).id).toBe(running.id);

    await cluster.api.cordon(hostA, false);
    await waitForState(cluster, lastMinute.id, 'running');
    const trusted = await cluster.addAgent({ drivers: { docker: { enabled: true } }, extra: { trustLevel: 5 } });
    for (const w of queued) expect((await waitForState(cluster, w.id, 'running')).host_id).toBe(trusted.hostId);

    // Counted through Docker, not through virtfleet: one container per workload.
    const all = [running, lastMinute, ...queued];
    for (const w of all) {
      const copies = await waitFor(`one container for ${w.id}`, async () => {
        const list = await docker.listContainers({ all: true, filters: { label: [`io.virtfleet.workload=${w.id}`] } });
        return list.length === 1 ? list : undefined;
      });
      expect(copies).toHaveLength(1);
    }
    console.log(`after SIGKILL: ${all.length} workloads accounted for, each with exactly one container`);
  });
});
