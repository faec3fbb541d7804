import type { NatsConnection } from '@nats-io/transport-node';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { removeContainersOf } from '../support/cleanup.js';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const IMAGE = 'virtfleet-test/busybox:latest';

describe('container lifecycle through the coordinator API, checked against Docker', () => {
  let cluster: TestCluster;
  let nc: NatsConnection;
  const natsEvents: { type: string; subject: string; data: { to?: string } }[] = [];

  beforeAll(async () => {
    cluster = await startCluster();
    nc = await cluster.nats.connect();
    nc.subscribe('virtfleet.events.>', {
      callback: (_err, msg) => {
        natsEvents.push(msg.json());
      },
    });
    await nc.flush();
    await cluster.addAgent();
    await waitForHostsUp(cluster);
  });

  afterAll(async () => {
    const hostId = cluster?.agents[0]?.hostId;
    await nc?.close();
    await cluster?.stop();
    if (hostId) await removeContainersOf([hostId]);
  });

  const inspect = (ref: string) => docker.getContainer(ref).inspect();

  it('creates, pauses, resumes, stops, starts and deletes a container with its memory limit', async () => {
    const submitted = await cluster.api.submit({
      request_id: 'container-lifecycle-1',
      spec: { name: 'web', kind: 'container', image: IMAGE, vcpus: 0.5, memory_mib: 64, command: ['/bin/sleep', '1000'], labels: { app: 'web' } },
    });
    expect(submitted.state).toBe('pending');
    const running = await waitForState(cluster, submitted.id, 'running');
    expect(running.host_id).toBe(cluster.agents[0]?.hostId);

    const ref = running.driver_ref;
    let info = await inspect(ref);
    expect(info.State.Running, cluster.logs()).toBe(true);
    expect(info.HostConfig.Memory).toBe(64 * 1024 * 1024);
    expect(info.HostConfig.NanoCpus).toBe(0.5e9);
    expect(info.Config.Labels['io.virtfleet.workload']).toBe(submitted.id);

    const paused = await cluster.api.act('PauseWorkload', { id: submitted.id });
    expect(paused.state).toBe('paused');
    info = await inspect(ref);
    expect(info.State.Paused).toBe(true);

    const resumed = await cluster.api.act('ResumeWorkload', { id: submitted.id });
    expect(resumed.state).toBe('running');
    info = await inspect(ref);
    expect(info.State.Paused).toBe(false);
    expect(info.State.Running).toBe(true);

    const stopped = await cluster.api.act('StopWorkload', { id: submitted.id, timeout_seconds: 1 });
    expect(stopped.state).toBe('stopped');
    expect(stopped.desired_state).toBe('stopped');
    info = await inspect(ref);
    expect(info.State.Running).toBe(false);

    const restarted = await cluster.api.act('StartWorkload', { id: submitted.id });
    expect(restarted.state).toBe('running');
    expect((await inspect(ref)).State.Running).toBe(true);

    const deleted = await cluster.api.act('DeleteWorkload', { id: submitted.id });
    expect(deleted.state).toBe('deleted');
    await expect(inspect(ref)).rejects.toMatchObject({ statusCode: 404 });
    const listed = await cluster.api.list();
    expect(listed.workloads.map((w) => w.id)).not.toContain(submitted.id);

    // Every state change also went out on NATS as a CloudEvent.
    await nc.flush();
    const mine = natsEvents.filter((e) => e.subject === submitted.id);
    expect(mine.map((e) => e.type)).toEqual(
      expect.arrayContaining(['io.virtfleet.workload.submitted', 'io.virtfleet.workload.placed', 'io.virtfleet.workload.deleted']),
    );
    const transitions = mine.filter((e) => e.type === 'io.virtfleet.workload.state_changed').map((e) => e.data.to);
    expect(transitions).toEqual(expect.arrayContaining(['creating', 'running', 'paused', 'stopped']));
    expect(natsEvents.some((e) => e.type === 'io.virtfleet.host.up' && e.subject === cluster.agents[0]?.hostId)).toBe(true);
  });

  it('runs a submit with the same request id once', async () => {
    const spec = { name: 'once', kind: 'container', image: IMAGE, vcpus: 0.25, memory_mib: 32, command: ['/bin/sleep', '1000'] };
    const [a, b] = await Promise.all([
      cluster.api.submit({ request_id: 'same-request-id', spec }),
      cluster.api.submit({ request_id: 'same-request-id', spec }),
    ]);
    const c = await cluster.api.submit({ request_id: 'same-request-id', spec });
    expect(b?.id).toBe(a?.id);
    expect(c.id).toBe(a?.id);
    await waitForState(cluster, a.id, 'running');
    const containers = await docker.listContainers({ all: true, filters: { label: [`io.virtfleet.workload=${a.id}`] } });
    expect(containers).toHaveLength(1);
    const named = (await cluster.api.list()).workloads.filter((w) => w.spec?.name === 'once');
    expect(named).toHaveLength(1);
    await cluster.api.act('DeleteWorkload', { id: a.id });
  });
});
