import { status } from '@grpc/grpc-js';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { pb } from '@virtfleet/shared';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { waitUntil } from '../support/wait.js';
import { removeContainersOf } from '../support/cleanup.js';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const valid = { name: 'ok', kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.1, memory_mib: 16, command: ['/bin/sleep', '1000'] };

describe('bad input to the coordinator API', () => {
  let cluster: TestCluster;

  beforeAll(async () => {
    cluster = await startCluster({ agents: [{}], hostTtlMs: 2000 });
    await waitForHostsUp(cluster);
  });
  afterAll(async () => {
    const hostId = cluster?.agents[0]?.hostId;
    await cluster?.stop();
    if (hostId) await removeContainersOf([hostId]);
  });

  const cases: { name: string; spec: Record<string, unknown>; field: string }[] = [
    { name: 'upper-case name', spec: { ...valid, name: 'Web' }, field: 'spec.name' },
    { name: 'XML-breaking name', spec: { ...valid, name: 'x</name><devices>' }, field: 'spec.name' },
    { name: 'empty name', spec: { ...valid, name: '' }, field: 'spec.name' },
    { name: 'name over 63 characters', spec: { ...valid, name: 'a'.repeat(64) }, field: 'spec.name' },
    { name: 'zero memory', spec: { ...valid, memory_mib: 0 }, field: 'spec.memory_mib' },
    { name: 'negative memory', spec: { ...valid, memory_mib: -64 }, field: 'spec.memory_mib' },
    { name: 'absurd memory', spec: { ...valid, memory_mib: 2_000_000_000 }, field: 'spec.memory_mib' },
    { name: 'zero vcpus', spec: { ...valid, vcpus: 0 }, field: 'spec.vcpus' },
    { name: 'negative vcpus', spec: { ...valid, vcpus: -2 }, field: 'spec.vcpus' },
    { name: 'absurd vcpus', spec: { ...valid, vcpus: 1e9 }, field: 'spec.vcpus' },
    { name: 'negative disk', spec: { ...valid, disk_gib: -1 }, field: 'spec.disk_gib' },
    { name: 'fractional vcpus for a vm', spec: { name: 'vm1', kind: 'vm', vcpus: 0.5, memory_mib: 64 }, field: 'spec.vcpus' },
    { name: 'unknown kind', spec: { ...valid, kind: 'unikernel' }, field: 'spec.kind' },
    { name: 'missing kind', spec: { ...valid, kind: '' }, field: 'spec.kind' },
    { name: 'container without image', spec: { ...valid, image: '' }, field: 'spec.image' },
    { name: 'image with shell metacharacters', spec: { ...valid, image: 'busybox;rm -rf /' }, field: 'spec.image' },
    { name: 'vm disk path escaping upwards', spec: { name: 'vm2', kind: 'vm', vcpus: 1, memory_mib: 64, image: '/var/lib/../../etc/shadow' }, field: 'spec.image' },
    { name: 'env name with a space', spec: { ...valid, env: { 'A B': '1' } }, field: 'spec.env' },
  ];

  it.each(cases)('rejects $name with INVALID_ARGUMENT naming $field, changing nothing', async ({ spec, field }) => {
    const before = (await cluster.api.list({ state: '' })).workloads.length;
    const err = await cluster.api.submit({ request_id: '', spec: spec as pb.WorkloadSpec }).then(
      () => undefined,
      (e: unknown) => e as { code: number; message: string },
    );
    expect(err, 'the request should have been rejected').toBeDefined();
    expect(err?.code).toBe(status.INVALID_ARGUMENT);
    expect(err?.message).toContain(field);
    expect((await cluster.api.list({ state: '' })).workloads.length).toBe(before);
  });

  it('names every problem of a spec in one INVALID_ARGUMENT, each with its field', async () => {
    const err = await cluster.api.submit({ request_id: '', spec: { ...valid, name: 'Web', vcpus: 0, memory_mib: 0, env: { 'A B': '1' } } as pb.WorkloadSpec }).then(
      () => undefined,
      (e: unknown) => e as { code: number; message: string; field: string },
    );
    expect(err?.code).toBe(status.INVALID_ARGUMENT);
    expect(err?.field).toBe('spec.name');
    expect(err?.message).toMatch(/^spec\.name: must be a DNS label[^;]*; spec\.vcpus: must be greater than 0; spec\.memory_mib: must be at least 6; spec\.env\.A B: environment names [^;]*$/);
    expect(err?.message).not.toMatch(/more problem/);
  });

  it('rejects a missing spec and a malformed request id', async () => {
    await expect(cluster.api.submit({ request_id: 'x' })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, message: expect.stringContaining('spec') });
    await expect(cluster.api.submit({ request_id: 'bad id with spaces', spec: valid })).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      message: expect.stringContaining('request_id'),
    });
  });

  it('answers NOT_FOUND for an unknown workload id, for reads and commands', async () => {
    await expect(cluster.api.get('no-such-workload')).rejects.toMatchObject({ code: status.NOT_FOUND, message: expect.stringContaining('no-such-workload') });
    await expect(cluster.api.act('StopWorkload', { id: 'no-such-workload' })).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(cluster.api.get('Bad/Id')).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, message: expect.stringContaining('id') });
  });

  it('answers UNAVAILABLE for a command to a workload whose host is down, and keeps its state', async () => {
    const w = await cluster.api.submit({ request_id: 'host-down-1', spec: { ...valid, name: 'orphan' } });
    await waitForState(cluster, w.id, 'running');
    const agent = cluster.agents[0]!;
    agent.process.signal('SIGKILL');
    await agent.process.waitExit();
    await waitUntil('the host to be down', async () => (await cluster.api.hosts()).hosts.find((h) => h.id === agent.hostId)?.status === 'down', { timeoutMs: 8000 });
    await expect(cluster.api.act('PauseWorkload', { id: w.id })).rejects.toMatchObject({
      code: status.UNAVAILABLE,
      message: expect.stringContaining(agent.hostId),
    });
    const after = await cluster.api.get(w.id);
    expect(after.state).toBe('unknown');
    expect(after.desired_state).toBe('running');
    // The container itself was untouched by the failed command.
    const info = await docker.getContainer(after.driver_ref).inspect();
    expect(info.State.Paused).toBe(false);
    expect(info.State.Running).toBe(true);
  });
});
