import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { sleeperContainer } from '../support/workloads.js';

describe('stopped workloads: keep or release their booking (fake-driver host of 1 GiB, cluster default release)', () => {
  let cluster: TestCluster;

  beforeAll(async () => {
    cluster = await startCluster({
      agents: [{ drivers: { fake: { enabled: true, memoryMiB: 1024, vcpus: 4 } }, extra: { reserved: { vcpus: 0, memoryMiB: 0, diskGiB: 0 } } }],
      coordinatorExtra: { scheduler: { retryIntervalMs: 250, stoppedReservation: 'release' } },
    });
    await waitForHostsUp(cluster);
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  const host = async () => (await cluster.api.hosts()).hosts[0]!;

  it('a released booking lets another workload in, and then a start of the stopped one is refused for want of room', async () => {
    const a = await cluster.api.submit({ request_id: 'released-a', spec: sleeperContainer('released-a', { memory_mib: 600 }) });
    await waitForState(cluster, a.id, 'running');
    expect((await host()).allocated?.memory_mib).toBe(600);
    await cluster.api.act('StopWorkload', { id: a.id });
    expect((await host()).allocated?.memory_mib, 'a stopped workload that releases holds nothing').toBe(0);
    expect((await cluster.api.explain(a.id)).stopped_reservation).toBe('release');

    const b = await cluster.api.submit({ request_id: 'released-b', spec: sleeperContainer('released-b', { memory_mib: 600 }) });
    await waitForState(cluster, b.id, 'running');
    const before = await cluster.api.get(a.id);
    await expect(cluster.api.act('StartWorkload', { id: a.id })).rejects.toMatchObject({ code: status.FAILED_PRECONDITION, message: expect.stringMatching(/released its booking .* no room for it now: .*insufficient memory/) });
    expect(await cluster.api.get(a.id)).toEqual(before);

    await cluster.api.act('DeleteWorkload', { id: b.id });
    expect((await cluster.api.act('StartWorkload', { id: a.id })).state).toBe('running');
    expect((await host()).allocated?.memory_mib).toBe(600);
    await cluster.api.act('DeleteWorkload', { id: a.id });
  });

  it('a workload whose spec says keep holds its booking while stopped, shown in host ls and explain', async () => {
    const kept = await cluster.api.submit({ request_id: 'kept', spec: sleeperContainer('kept', { memory_mib: 600, stopped_reservation: 'keep' }) });
    await waitForState(cluster, kept.id, 'running');
    await cluster.api.act('StopWorkload', { id: kept.id });
    const h = await host();
    expect(h.allocated?.memory_mib).toBe(600);
    expect(h.held_by_stopped).toMatchObject({ memory_mib: 600 });
    expect((await cluster.api.explain(kept.id)).stopped_reservation).toBe('keep');
    const other = await cluster.api.submit({ request_id: 'kept-other', spec: sleeperContainer('kept-other', { memory_mib: 600 }) });
    await expect.poll(async () => (await cluster.api.get(other.id)).message, { timeout: 10_000 }).toMatch(/insufficient memory/);
    expect((await cluster.api.get(other.id)).state).toBe('pending');
    expect((await cluster.api.act('StartWorkload', { id: kept.id })).state).toBe('running');
  });
});
