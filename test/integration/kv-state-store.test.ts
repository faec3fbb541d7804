import { afterEach, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { createLogger, parseWorkloadSpec } from '@virtfleet/shared';
import { KvStateStore } from '../../packages/coordinator/src/state/kv-state-store.js';
import type { Workload } from '../../packages/coordinator/src/workloads/workload.js';
import { startNatsServer, type NatsServer, type NatsUsers } from '../support/nats-server.js';
import { startNatsCluster, type NatsCluster } from '../support/nats-cluster.js';
import { waitFor, waitUntil } from '../support/wait.js';

const log = createLogger('kv-state-store-test', 'silent');

function workload(n: number): Workload {
  const now = new Date().toISOString();
  return {
    id: `w-${n}`,
    spec: parseWorkloadSpec({ name: `w-${n}`, kind: 'container', image: 'busybox', vcpus: 1, memory_mib: 64 }),
    hostId: '',
    desiredState: 'running',
    state: 'pending',
    message: '',
    driverRef: '',
    requestId: `req-${n}`,
    arrivalSeq: n,
    arrivalMs: n,
    createdAt: now,
    updatedAt: now,
  };
}

describe('KvStateStore against a real nats-server', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  const open = async (nats: NatsUsers, replicas = 1): Promise<{ nc: NatsConnection; store: KvStateStore }> => {
    const nc = await nats.connect({ maxReconnectAttempts: -1 });
    cleanups.push(() => nc.close());
    // A fresh cluster answers JetStream requests only once it has elected a meta leader.
    const store = await waitFor('the state bucket to open', () => KvStateStore.open(nc, { bucket: 'state_test', replicas }, log), { timeoutMs: 30_000, intervalMs: 500 });
    cleanups.push(() => store.close(1_000));
    return { nc, store };
  };

  it('reloads workloads, request ids and cordons as written, and forgets what was deleted', async () => {
    const nats: NatsServer = await startNatsServer();
    cleanups.push(() => nats.stop());
    const { store } = await open(nats);
    await store.setFollowing(false);
    for (let n = 0; n < 250; n++) await store.insert(workload(n));
    await store.put({ ...workload(8), state: 'running', hostId: 'h1' });
    await store.put({ ...workload(8), state: 'pending', hostId: '' });
    await store.put({ ...workload(7), state: 'running', hostId: 'h1' });
    expect(store.listOnHost('h1').map((w) => w.id), 'a workload leaves its host index when it moves').toEqual(['w-7']);
    store.setHostMark('cordon', 'h1', true);
    store.setHostMark('cordon', 'h2', true);
    store.setHostMark('cordon', 'h2', false);
    store.setHostMark('dead', 'h3', true);
    // The last writes of a burst must be stored without a later write to push them.
    expect(await store.flush()).toBe(true);

    const { store: reopened } = await open(nats);
    expect(reopened.list()).toHaveLength(250);
    expect(reopened.get('w-7')).toMatchObject({ state: 'running', hostId: 'h1' });
    expect(reopened.listOnHost('h1').map((w) => w.id)).toEqual(['w-7']);
    expect(reopened.getByRequestId('req-249')?.id).toBe('w-249');
    expect(reopened.hostsMarked('cordon')).toEqual(['h1']);
    expect(reopened.hostsMarked('dead')).toEqual(['h3']);
  });

  it('tells which records were stored since a time: by the clock of JetStream after a reload, by its own for its writes', async () => {
    const nats: NatsServer = await startNatsServer();
    cleanups.push(() => nats.stop());
    const { store } = await open(nats);
    await store.setFollowing(false);
    await store.insert(workload(1));
    await store.put({ ...workload(2), state: 'creating' });
    expect(await store.flush()).toBe(true);
    // Milliseconds apart from both writes.
    await new Promise((r) => setTimeout(r, 20));
    const between = Date.now();
    await new Promise((r) => setTimeout(r, 20));
    await store.put({ ...workload(1), state: 'creating' });
    expect(await store.flush()).toBe(true);
    expect(store.storedSince(between).map((w) => w.id)).toEqual(['w-1']);

    const { store: successor } = await open(nats);
    await successor.setFollowing(false);
    expect(successor.storedSince(between).map((w) => w.id), 'as the bucket dated them').toEqual(['w-1']);
    expect(successor.storedSince(0).map((w) => w.id).sort()).toEqual(['w-1', 'w-2']);
    successor.remove('w-1');
    expect(successor.storedSince(0).map((w) => w.id)).toEqual(['w-2']);
  });

  it('keeps operation records (host drains): a reload and a follower read them, and a removed one is gone and compacted', async () => {
    const nats: NatsServer = await startNatsServer();
    cleanups.push(() => nats.stop());
    const { nc, store } = await open(nats);
    await store.setFollowing(false);
    const { store: follower } = await open(nats);
    await follower.setFollowing(true);
    await store.putOperation('drain', 'h1', { id: 'drain-1', state: 'draining' });
    await store.putOperation('drain', 'h1', { id: 'drain-1', state: 'drained' });
    await store.putOperation('drain', 'h2', { id: 'drain-2', state: 'draining' });
    expect(await follower.readOperation('drain', 'h1'), 'a follower reads the bucket, not its memory').toEqual({ id: 'drain-1', state: 'drained' });
    await store.putOperation('drain', 'h2', undefined);
    expect([...store.operations('drain').keys()]).toEqual(['h1']);

    const { store: reopened } = await open(nats);
    expect([...reopened.operations('drain')]).toEqual([['h1', { id: 'drain-1', state: 'drained' }]]);
    expect(await reopened.readOperation('drain', 'h2')).toBeUndefined();
    const jsm = await jetstreamManager(nc);
    const subjects = async () => Object.keys((await jsm.streams.info('KV_state_test', { subjects_filter: '$KV.state_test.>' })).state.subjects ?? {});
    await store.compact(0);
    expect(await subjects()).toEqual(['$KV.state_test.op.drain.h1']);
  });

  it('pipelines a burst of writes: each key ends with its last write, every caller hears once it is stored, and no write is sent twice', async () => {
    const nats: NatsServer = await startNatsServer();
    cleanups.push(() => nats.stop());
    const { nc, store } = await open(nats);
    await store.setFollowing(false);
    const COUNT = 2000;
    for (let n = 0; n < COUNT; n++) await store.insert(workload(n));
    const jsm = await jetstreamManager(nc);
    const seqBefore = (await jsm.streams.info('KV_state_test')).state.last_seq;
    // Three writes of every workload, interleaved, none awaited before the next is made.
    const acks: Promise<void>[] = [];
    for (const state of ['creating', 'running', 'stopped'] as const) for (let n = 0; n < COUNT; n++) acks.push(store.put({ ...workload(n), state, hostId: 'h1' }));
    await Promise.all(acks);
    expect(await store.flush()).toBe(true);
    // Writes still queued when a newer one of the same key arrived were replaced, never stored after it.
    const stored = (await jsm.streams.info('KV_state_test')).state.last_seq - seqBefore;
    expect(stored).toBeGreaterThanOrEqual(COUNT);
    expect(stored).toBeLessThanOrEqual(3 * COUNT);
    const { store: reopened } = await open(nats);
    expect(reopened.list().filter((w) => w.state !== 'stopped').map((w) => w.id)).toEqual([]);
    expect(reopened.list()).toHaveLength(COUNT);
  });

  it('keeps request records, pages in arrival order, and removes a workload from leader, follower, reload and stream alike', async () => {
    const nats: NatsServer = await startNatsServer();
    cleanups.push(() => nats.stop());
    const { nc, store } = await open(nats);
    await store.setFollowing(false);
    const { store: follower } = await open(nats);
    await follower.setFollowing(true);
    for (let n = 0; n < 5; n++) await store.insert(workload(n));
    await store.putRequest({ requestId: 'op:stop/1', method: 'StopWorkload', subjects: ['w-1'], params: '{}', response: { id: 'w-1' }, completedAtMs: 1 });

    const first = store.page(() => true, undefined, 2);
    const second = store.page(() => true, first.next, 2);
    const third = store.page(() => true, second.next, 2);
    expect([first, second, third].map((p) => p.workloads.map((w) => w.id))).toEqual([['w-0', 'w-1'], ['w-2', 'w-3'], ['w-4']]);
    expect(third.next).toBeUndefined();

    store.remove('w-3');
    expect(await store.flush()).toBe(true);
    expect(store.get('w-3')).toBeUndefined();
    expect(store.getByRequestId('req-3')).toBeUndefined();
    await waitUntil('the follower to forget the removed workload', () => follower.get('w-3') === undefined);

    const { store: reopened } = await open(nats);
    expect(reopened.list().map((w) => w.id).sort()).toEqual(['w-0', 'w-1', 'w-2', 'w-4']);
    expect(reopened.getRequest('op:stop/1')).toMatchObject({ method: 'StopWorkload', response: { id: 'w-1' } });

    // The removal leaves a marker per key in the stream until compaction drops it.
    const jsm = await jetstreamManager(nc);
    const subjects = async () => Object.keys((await jsm.streams.info('KV_state_test', { subjects_filter: '$KV.state_test.>' })).state.subjects ?? {});
    expect(await subjects()).toContain('$KV.state_test.workload.w-3');
    await store.compact(0);
    expect(await subjects()).not.toContain('$KV.state_test.workload.w-3');
    expect(await subjects()).toContain('$KV.state_test.workload.w-4');
  });

  it('fences writes by leadership: none go out without the lease, and a deposed leader cannot overwrite its successor', async () => {
    const nats: NatsServer = await startNatsServer();
    cleanups.push(() => nats.stop());
    const { store: old } = await open(nats);
    let oldHoldsLease = true;
    const supplanted: string[] = [];
    old.fenceWrites(() => oldHoldsLease, (reason) => supplanted.push(reason));
    await old.setFollowing(false);
    for (let n = 0; n < 3; n++) await old.insert(workload(n));

    // A successor takes over and writes w-1.
    const { store: successor } = await open(nats);
    await successor.setFollowing(false);
    await successor.put({ ...workload(1), message: 'successor' });
    expect(await successor.flush()).toBe(true);

    // The old leader still believes it leads: its write of w-1 is refused, and so is everything queued behind it.
    const late = old.put({ ...workload(1), message: 'late' });
    const behind = old.put({ ...workload(2), message: 'behind' });
    await expect(late).rejects.toThrow(/changed by another coordinator/);
    await expect(behind).rejects.toThrow(/changed by another coordinator/);
    expect(supplanted).toHaveLength(1);

    // Without the lease, nothing is sent at all.
    oldHoldsLease = false;
    await expect(old.put({ ...workload(0), message: 'no lease' })).rejects.toThrow(/no longer holds the leader lease/);
    await expect(old.insert(workload(9))).rejects.toThrow(/no longer holds the leader lease/);

    const { store: reader } = await open(nats);
    expect(reader.get('w-1')?.message).toBe('successor');
    expect(reader.get('w-2')?.message).toBe('');
    expect(reader.get('w-0')?.message).toBe('');
    expect(reader.get('w-9')).toBeUndefined();
  });

  it('reloads every time while one node of a three-node cluster is down', async () => {
    const cluster: NatsCluster = await startNatsCluster(3);
    cleanups.push(() => cluster.stop());
    const { store } = await open(cluster, 3);
    await store.setFollowing(false);
    for (let n = 0; n < 20; n++) await store.insert(workload(n));
    const lost = cluster.nodes[2]!;
    lost.process.signal('SIGKILL');
    await lost.process.waitExit();
    // The stream's replicas elect a new leader if the lost node led it; allow for that once.
    await waitUntil('the bucket to answer again', () => store.reload().then(() => true), { timeoutMs: 30_000, intervalMs: 500 });
    const timings: number[] = [];
    for (let attempt = 0; attempt < 8; attempt++) {
      const started = Date.now();
      await store.reload();
      timings.push(Date.now() - started);
      expect(store.list()).toHaveLength(20);
    }
    console.log(`reloads with a node down: ${timings.join(', ')} ms`);
  });
});
