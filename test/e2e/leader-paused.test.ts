import { KvWatchInclude, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CoordinatorApi } from '@virtfleet/cli';
import { startCluster, waitForHostsUp, type TestCluster } from '../support/cluster.js';
import { coordinatorConfigOf } from '../support/configs.js';
import { readLeaderLease } from '../support/leader.js';
import type { ManagedProcess } from '../support/processes.js';
import { waitUntil } from '../support/wait.js';
import { sleeperContainer } from '../support/workloads.js';

interface StoredWorkload {
  id: string;
  desiredState: string;
  state: string;
}

describe('a leader paused past its lease (SIGSTOP) writes nothing once its successor leads', () => {
  let cluster: TestCluster;
  let standby: { process: ManagedProcess; address: string };
  let api: CoordinatorApi;
  let nc: NatsConnection;
  const cleanups: (() => void)[] = [];

  beforeAll(async () => {
    cluster = await startCluster({ agents: [{ drivers: { fake: { enabled: true } } }] });
    standby = await cluster.addCoordinator('e2e-standby');
    api = cluster.client(`${cluster.coordinatorAddress},${standby.address}`, 30_000);
    await waitForHostsUp(cluster);
    nc = await cluster.nats.connect();
  });
  afterAll(async () => {
    cluster?.coordinator.signal('SIGCONT');
    for (const c of cleanups) c();
    api?.close();
    await nc?.close();
    await cluster?.stop();
  });

  it('keeps the successor’s records: no write of the paused leader lands after it resumes', async () => {
    const { state } = coordinatorConfigOf(cluster.coordinator);
    const kv = await new Kvm(nc).open(state.bucket);
    const submitted = await Promise.all(Array.from({ length: 12 }, (_, i) => api.submit({ request_id: `paused-${i}`, spec: sleeperContainer(`paused-${i}`) })));
    await waitUntil('every workload to run', async () => (await api.list({ state: 'running' })).workloads.length === submitted.length, { timeoutMs: 30_000 });

    cluster.coordinator.signal('SIGSTOP');
    await waitUntil('the standby to take the lease', async () => (await readLeaderLease(cluster.nats, state.bucket))?.coordinatorId === 'e2e-standby', { timeoutMs: 30_000 });
    // A paused process still accepts connections (the kernel does) but never answers: talk to the successor alone.
    const successor = cluster.client(standby.address, 30_000);
    cleanups.push(() => successor.close());
    // The successor stops half of them: the paused leader still holds them as desired running.
    const stopped = submitted.slice(0, 6).map((w) => w.id);
    await waitUntil('the successor to take changes', async () => (await successor.act('StopWorkload', { id: stopped[0]! })).desired_state === 'stopped', { timeoutMs: 30_000 });
    for (const id of stopped) expect((await successor.act('StopWorkload', { id })).desired_state).toBe('stopped');

    const writes: StoredWorkload[] = [];
    const watch = await kv.watch({ key: 'workload.>', include: KvWatchInclude.UpdatesOnly });
    void (async () => {
      for await (const e of watch) if (e.operation === 'PUT') writes.push(e.json<StoredWorkload>());
    })();
    const logBefore = cluster.coordinator.tail(10_000).length;
    cluster.coordinator.signal('SIGCONT');
    // Proof the resumed leader ran: it noticed it no longer leads. Its agent's telemetry, which shows the stops, reached it meanwhile.
    await waitUntil('the resumed leader to step down', () => cluster.coordinator.tail(10_000).slice(logBefore).includes('no longer the leader'), { timeoutMs: 20_000 });
    // One more placement through the successor proves its own writes still land after the resume.
    const after = await successor.submit({ request_id: 'paused-after', spec: sleeperContainer('paused-after') });
    await waitUntil('the successor to place and run a new workload', async () => (await successor.get(after.id)).state === 'running', { timeoutMs: 30_000 });
    watch.stop();

    const regressions = writes.filter((w) => stopped.includes(w.id) && w.desiredState !== 'stopped');
    expect(regressions, 'writes that set a stopped workload back to running').toEqual([]);
    for (const id of stopped) expect((await kv.get(`workload.${id}`))?.json<StoredWorkload>().desiredState).toBe('stopped');
    expect(writes.some((w) => w.id === after.id && w.state === 'running')).toBe(true);
  });
});
