import { status } from '@grpc/grpc-js';
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import { Hypervisor } from '@unraid/libvirt';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { pb } from '@virtfleet/shared';
import { backendName } from '../../packages/agent/src/drivers/driver.js';
import { removeContainersOf, removeDomains } from '../support/cleanup.js';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { runningContainerCopies } from '../support/copies.js';
import { sleeperContainer } from '../support/workloads.js';
import { waitUntil } from '../support/wait.js';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const SHUTOFF = 5; // virDomainState

/** The workload's record as stored in the state bucket: its bytes and revision. */
async function storedRecord(kv: KV, id: string): Promise<{ revision: number; value: string }> {
  const e = await kv.get(`workload.${id}`);
  if (!e) throw new Error(`no stored record for ${id}`);
  return { revision: e.revision, value: e.string() };
}

describe('operator verbs do exactly what they say (real Docker and libvirt, state read from JetStream)', () => {
  let cluster: TestCluster;
  let nc: NatsConnection;
  let kv: KV;
  const hypervisor = new Hypervisor({ uri: 'qemu:///system' });
  const domains: string[] = [];

  beforeAll(async () => {
    await hypervisor.connectOpen();
    cluster = await startCluster({ agents: [{}] });
    await waitForHostsUp(cluster);
    nc = await cluster.nats.connect();
    kv = await new Kvm(nc).open('virtfleet_state');
  });

  afterAll(async () => {
    const hostId = cluster?.agents[0]?.hostId;
    await nc?.close();
    await cluster?.stop();
    if (hostId) await removeContainersOf([hostId]);
    await removeDomains(hypervisor, domains);
    await hypervisor.connectClose();
  });

  const hostId = () => cluster.agents[0]!.hostId;
  const act = (method: 'StartWorkload' | 'StopWorkload' | 'PauseWorkload' | 'ResumeWorkload' | 'DeleteWorkload', id: string, requestId = '') =>
    cluster.api.act(method, { id, request_id: requestId, timeout_seconds: 1 });
  const refusal = { code: status.FAILED_PRECONDITION };

  const kinds: { kind: string; spec: (name: string) => pb.WorkloadSpec; stoppedInEngine: (w: pb.Workload__Output) => Promise<boolean> }[] = [
    {
      kind: 'container',
      spec: (name) => sleeperContainer(name),
      stoppedInEngine: async (w) => !(await docker.getContainer(w.driver_ref).inspect()).State.Running,
    },
    {
      kind: 'vm',
      spec: (name) => ({ name, kind: 'vm', vcpus: 1, memory_mib: 64 }),
      stoppedInEngine: async (w) => {
        const domain = await hypervisor.domainLookupByName(backendName(hostId(), w.id));
        return (await hypervisor.domainGetInfo(domain)).state === SHUTOFF;
      },
    },
  ];

  it.each(kinds)('a refused pause or resume of a stopped $kind leaves its stored record byte for byte as it was', async ({ kind, spec, stoppedInEngine }) => {
    const submitted = await cluster.api.submit({ request_id: `refused-${kind}`, spec: spec(`refused-${kind}`) });
    if (kind === 'vm') domains.push(backendName(hostId(), submitted.id));
    await waitForState(cluster, submitted.id, 'running', 60_000);
    const stopped = await act('StopWorkload', submitted.id);
    expect(stopped.state).toBe('stopped');
    const before = await storedRecord(kv, submitted.id);

    await expect(act('PauseWorkload', submitted.id)).rejects.toMatchObject({ ...refusal, message: expect.stringMatching(/only a running workload can be paused/) });
    await expect(act('ResumeWorkload', submitted.id)).rejects.toMatchObject({ ...refusal, message: expect.stringMatching(/only a paused workload can be resumed/) });
    await expect(act('PauseWorkload', `refused-${kind}`)).rejects.toMatchObject(refusal);

    expect(await storedRecord(kv, submitted.id)).toEqual(before);
    const after = await cluster.api.get(submitted.id);
    expect(after).toMatchObject({ state: 'stopped', desired_state: 'stopped' });
    expect(await stoppedInEngine(after)).toBe(true);
    await act('DeleteWorkload', submitted.id);
  });

  it('a repeated request id returns the first result and does not act again; reused for another verb it is refused', async () => {
    const w = await cluster.api.submit({ request_id: 'ids-1', spec: sleeperContainer('ids') });
    await waitForState(cluster, w.id, 'running');
    const first = await act('StopWorkload', w.id, 'stop-x');
    expect(first.state).toBe('stopped');
    expect((await act('StartWorkload', w.id, 'start-x-2')).state).toBe('running');
    const before = await storedRecord(kv, w.id);

    // The repeat answers what the first call answered, and nothing moves.
    expect(await act('StopWorkload', w.id, 'stop-x')).toEqual(first);
    expect(await act('StopWorkload', 'ids', 'stop-x')).toEqual(first);
    expect(await storedRecord(kv, w.id)).toEqual(before);
    expect(await cluster.api.get(w.id)).toMatchObject({ state: 'running', desired_state: 'running' });
    expect(await runningContainerCopies(w.id)).toBe(1);

    expect((await act('PauseWorkload', w.id, 'pause-r')).state).toBe('paused');
    const paused = await storedRecord(kv, w.id);
    await expect(act('ResumeWorkload', w.id, 'pause-r')).rejects.toMatchObject({ ...refusal, message: expect.stringMatching(/request_id pause-r was already used for a different request \(PauseWorkload/) });
    await expect(cluster.api.submit({ request_id: 'pause-r', spec: sleeperContainer('other') })).rejects.toMatchObject(refusal);
    expect(await storedRecord(kv, w.id)).toEqual(paused);
    expect((await docker.getContainer(first.driver_ref).inspect()).State.Paused).toBe(true);

    // Ids are durable: a new coordinator process honours them.
    await cluster.restartCoordinator('SIGKILL');
    expect(await act('StopWorkload', w.id, 'stop-x')).toEqual(first);
    await expect(act('ResumeWorkload', w.id, 'pause-r')).rejects.toMatchObject(refusal);
    expect((await storedRecord(kv, w.id)).value).toEqual(paused.value);
    expect((await docker.getContainer(first.driver_ref).inspect()).State.Paused).toBe(true);
    await act('DeleteWorkload', w.id);
  });

  it('deleting a deleted workload succeeds by id and by name alike', async () => {
    const w = await cluster.api.submit({ request_id: 'twice-1', spec: sleeperContainer('twice') });
    await waitForState(cluster, w.id, 'running');
    expect((await act('DeleteWorkload', 'twice')).state).toBe('deleted');
    const before = await storedRecord(kv, w.id);
    expect(await act('DeleteWorkload', 'twice')).toMatchObject({ id: w.id, state: 'deleted' });
    expect(await act('DeleteWorkload', w.id)).toMatchObject({ id: w.id, state: 'deleted' });
    expect(await storedRecord(kv, w.id)).toEqual(before);
    await expect(act('DeleteWorkload', 'never-existed')).rejects.toMatchObject({ code: status.NOT_FOUND });
  });

  it('accepts a delete of a workload still being created, and carries it out: no container is left', async () => {
    const submitted = await Promise.all(Array.from({ length: 8 }, (_, i) => cluster.api.submit({ request_id: `creating-${i}`, spec: sleeperContainer(`creating-${i}`) })));
    const answers = await Promise.all(
      submitted.map(async (w) => {
        await waitUntil(`${w.id} to be placed`, async () => (await cluster.api.get(w.id)).state !== 'pending', { intervalMs: 5 });
        return cluster.api.act('DeleteWorkload', { id: w.id });
      }),
    );
    expect(answers.every((a) => a.desired_state === 'deleted')).toBe(true);
    expect(answers.map((a) => a.state), 'at least one delete arrived while its create was in flight').toContain('creating');
    for (const w of submitted) await waitForState(cluster, w.id, 'deleted');
    const left = await docker.listContainers({ all: true, filters: { label: [`io.virtfleet.host=${hostId()}`] } });
    expect(left.filter((c) => submitted.some((w) => c.Labels['io.virtfleet.workload'] === w.id))).toEqual([]);
  });

  it('lists workloads page by page, oldest first, and refuses a forged page token', async () => {
    const names = ['page-a', 'page-b', 'page-c', 'page-d', 'page-e'];
    const ids: string[] = [];
    for (const name of names) ids.push((await cluster.api.submit({ request_id: name, spec: sleeperContainer(name, { host_selector: { never: 'matches' } }) })).id);
    const seen: string[] = [];
    let token = '';
    let pages = 0;
    do {
      const page = await cluster.api.list({ state: 'pending', page_size: 2, page_token: token });
      expect(page.workloads.length).toBeLessThanOrEqual(2);
      seen.push(...page.workloads.map((w) => w.id));
      token = page.next_page_token;
      pages++;
    } while (token);
    expect(seen).toEqual(ids);
    expect(pages).toBe(3);
    const queued: string[] = [];
    token = '';
    do {
      const page = await cluster.api.queue({ page_size: 2, page_token: token });
      expect(page.length).toBe(ids.length);
      queued.push(...page.entries.map((e) => e.workload_id));
      token = page.next_page_token;
    } while (token);
    expect(queued).toEqual(ids);
    await expect(cluster.api.list({ page_token: 'bm90IGEgdG9rZW4' })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, message: expect.stringMatching(/page_token/) });
    await expect(cluster.api.list({ page_size: 5001 })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, message: expect.stringMatching(/page_size/) });
    for (const id of ids) await act('DeleteWorkload', id);
  });
});

describe('retention: deleted workloads and request ids are forgotten after their configured time', () => {
  let cluster: TestCluster;
  let nc: NatsConnection;
  let kv: KV;
  const RETENTION_HOURS = 2 / 3600; // 2 s

  beforeAll(async () => {
    cluster = await startCluster({ agents: [{ drivers: { fake: { enabled: true } } }], coordinatorExtra: { retention: { deletedWorkloadsHours: RETENTION_HOURS, requestHours: RETENTION_HOURS } } });
    await waitForHostsUp(cluster);
    nc = await cluster.nats.connect();
    kv = await new Kvm(nc).open('virtfleet_state');
  });

  afterAll(async () => {
    await nc?.close();
    await cluster?.stop();
  });

  it('purges a deleted workload from memory and from the bucket, and lets an expired request id act again', async () => {
    const w = await cluster.api.submit({ request_id: 'kept-briefly', spec: sleeperContainer('brief') });
    await waitForState(cluster, w.id, 'running');
    const stopped = await cluster.api.act('StopWorkload', { id: w.id, request_id: 'stop-brief' });
    expect(stopped.state).toBe('stopped');
    await cluster.api.act('StartWorkload', { id: w.id, request_id: 'start-brief' });
    // Once the id has expired, the same id is a new request and acts.
    await waitUntil('the stop request id to expire and act again', async () => (await cluster.api.act('StopWorkload', { id: w.id, request_id: 'stop-brief' })).updated_at !== stopped.updated_at, { timeoutMs: 20_000 });
    expect((await cluster.api.get(w.id)).state).toBe('stopped');

    await cluster.api.act('DeleteWorkload', { id: w.id });
    await waitUntil('the deleted workload to be forgotten', async () => (await cluster.api.get(w.id).then(() => false, (err: { code?: number }) => err.code === status.NOT_FOUND)), { timeoutMs: 20_000 });
    await waitUntil('its record to leave the bucket', async () => (await kv.get(`workload.${w.id}`))?.operation !== 'PUT', { timeoutMs: 20_000 });
    expect((await cluster.api.list({ state: 'deleted' })).workloads.map((x) => x.id)).not.toContain(w.id);
  });
});
