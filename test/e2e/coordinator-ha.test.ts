import { status } from '@grpc/grpc-js';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CoordinatorApi } from '@virtfleet/cli';
import { LEADER_KEY, type LeaseRecord } from '../../packages/coordinator/src/ha/leader-lease.js';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { coordinatorConfigOf } from '../support/configs.js';
import type { ManagedProcess } from '../support/processes.js';
import { waitFor, waitUntil } from '../support/wait.js';
import { removeContainersOf } from '../support/cleanup.js';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const spec = (name: string) => ({ name, kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.1, memory_mib: 16, command: ['/bin/sleep', '1000'] });

/** Every write of the leader lease, in order, with when its writer sent it (the record's expiry less the TTL; one machine, one wall clock). */
async function watchLease(nc: NatsConnection, bucket: string, ttlMs: number) {
  const writes: { sentAt: number; record: LeaseRecord }[] = [];
  const watch = await (await new Kvm(nc).open(bucket)).watch({ key: LEADER_KEY });
  void (async () => {
    for await (const e of watch) {
      if (e.operation !== 'PUT') continue;
      const record = e.json<LeaseRecord>();
      if (record.expiresAtMs > 0) writes.push({ sentAt: record.expiresAtMs - ttlMs, record });
    }
  })();
  return { writes, stop: () => watch.stop() };
}

describe('two coordinators: one leader by lease, a follower that takes over', () => {
  let cluster: TestCluster;
  let second: { process: ManagedProcess; address: string };
  let both: CoordinatorApi;
  let nc: NatsConnection;

  beforeAll(async () => {
    cluster = await startCluster({ agents: [{ drivers: { docker: { enabled: true } } }] });
    second = await cluster.addCoordinator('e2e-standby');
    both = cluster.client(`${cluster.coordinatorAddress},${second.address}`, 20_000);
    await waitForHostsUp(cluster);
    nc = await cluster.nats.connect();
  });
  afterAll(async () => {
    both?.close();
    await nc?.close();
    const hostId = cluster?.agents[0]?.hostId;
    await cluster?.stop();
    if (hostId) await removeContainersOf([hostId]);
  });

  it('refuses changes on the follower, serves reads there, and fails over within the lease after the leader is killed', async () => {
    const config = coordinatorConfigOf(cluster.coordinator);
    expect(coordinatorConfigOf(second.process).ha.leaseTtlMs, 'both coordinators run with one lease TTL').toBe(config.ha.leaseTtlMs);
    const ttlMs = config.ha.leaseTtlMs;
    // The holder renews, and the others look, every TTL / 3 (LeaderLease's default; the README's "renewed every ha.leaseTtlMs / 3").
    const checkMs = Math.max(100, Math.floor(ttlMs / 3));
    const lease = await watchLease(nc, config.state.bucket, ttlMs);

    const first = await both.submit({ request_id: 'ha-1', spec: spec('before-failover') });
    await waitForState(cluster, first.id, 'running');

    const standby = cluster.client(second.address, 2_000);
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

    // Until the kill, only the first coordinator holds the lease, renewing it.
    expect(lease.writes.length, 'the leader renewed its lease').toBeGreaterThan(1);
    expect(new Set(lease.writes.map((w) => w.record.coordinatorId))).toEqual(new Set(['e2e']));

    cluster.coordinator.signal('SIGKILL');
    const killedAt = Date.now();
    const afterFailover = await both.submit({ request_id: 'ha-2', spec: spec('after-failover') });
    const takeover = await waitFor('the standby to take the lease', () => lease.writes.find((w) => w.record.coordinatorId === 'e2e-standby'), { timeoutMs: 10 * ttlMs });
    const lastRenewal = lease.writes.filter((w) => w.record.coordinatorId === 'e2e').at(-1)!;
    const running = await waitFor('the new leader to run it', async () => {
      const w = await both.get(afterFailover.id);
      return w.state === 'running' ? w : undefined;
    }, { timeoutMs: 20_000, intervalMs: 50 });
    const failoverMs = Date.now() - killedAt;
    lease.stop();
    const heldOffMs = takeover.sentAt - lastRenewal.sentAt;
    console.log(
      `lease TTL ${ttlMs} ms, checks every ${checkMs} ms: last renewal ${killedAt - lastRenewal.sentAt} ms before the SIGKILL; ` +
        `the standby took the lease (term ${takeover.record.term}) ${heldOffMs} ms after that renewal; the next placement ran ${failoverMs} ms after the SIGKILL (timed in bench/failover.bench.ts)`,
    );
    expect(takeover.record.term).toBe(lastRenewal.record.term + 1);
    // Never two leaders: the standby waits a full TTL after the last renewal it could have seen...
    expect(heldOffMs, 'no take-over before the lease ran out').toBeGreaterThanOrEqual(ttlMs);
    // ...and takes over at its first look after that: one look to see the last renewal, one to find it expired, one more for looks running late.
    expect(heldOffMs, 'take-over within the TTL and the checks').toBeLessThanOrEqual(ttlMs + 3 * checkMs);
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
