import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, waitForHostsUp, type TestCluster } from '../support/cluster.js';
import { waitFor, waitUntil } from '../support/wait.js';

// Above the ~5 s outage of the second test (the state store's write timeout), so nothing is rescheduled.
const TTL_MS = 10_000;

describe('NATS outages', () => {
  let cluster: TestCluster;

  beforeAll(async () => {
    cluster = await startCluster({ hostTtlMs: TTL_MS, agents: [{ drivers: { docker: { enabled: true } } }] });
    await waitForHostsUp(cluster);
  });
  afterAll(async () => {
    if (cluster && !cluster.coordinator.running) console.log(`coordinator exited:\n${cluster.coordinator.tail(60)}`);
    await cluster?.stop();
  });

  it('a NATS restart shorter than the TTL marks no host down, and telemetry resumes', async () => {
    const hostId = cluster.agents[0]!.hostId;
    const lastSeen = async () => Date.parse((await cluster.api.hosts()).hosts.find((h) => h.id === hostId)!.last_seen);
    const before = await lastSeen();
    let sawDown = false;
    const watching = (async () => {
      const until = Date.now() + TTL_MS + 1000;
      while (Date.now() < until) {
        const h = (await cluster.api.hosts()).hosts.find((x) => x.id === hostId);
        if (h?.status !== 'up') sawDown = true;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const restartedAt = Date.now();
    await cluster.nats.restart();
    await waitUntil('telemetry to resume', async () => (await lastSeen()) > restartedAt, { timeoutMs: TTL_MS, intervalMs: 50 });
    const resumedMs = Date.now() - restartedAt;
    await watching;
    console.log(`NATS restart: telemetry resumed ${resumedMs} ms after the restart began (TTL ${TTL_MS} ms); host marked down: ${sawDown}`);
    expect(sawDown).toBe(false);
    expect(await lastSeen()).toBeGreaterThan(before);
  });

  it('while NATS is down, a submit fails with UNAVAILABLE and changes nothing; afterwards it works', async () => {
    const countBefore = (await cluster.api.list({ state: '' })).workloads.length;
    await cluster.nats.down();
    try {
      await expect(
        cluster.api.submit({ request_id: 'outage-1', spec: { name: 'during-outage', kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.1, memory_mib: 16 } }),
      ).rejects.toMatchObject({ code: status.UNAVAILABLE, message: expect.stringContaining('state store unavailable') });
      expect((await cluster.api.list({ state: '' })).workloads.length).toBe(countBefore);
    } finally {
      await cluster.nats.up();
    }
    await waitForHostsUp(cluster);
    const w = await waitFor('a submit to succeed again', async () =>
      cluster.api.submit({ request_id: 'outage-2', spec: { name: 'after-outage', kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.1, memory_mib: 16, command: ['/bin/sleep', '100'] } }),
    { timeoutMs: 10_000, intervalMs: 250 });
    expect(w.spec?.name).toBe('after-outage');
    await waitUntil('it to run', async () => (await cluster.api.get(w.id)).state === 'running', { timeoutMs: 20_000 });
    await cluster.api.act('DeleteWorkload', { id: w.id }).catch((err: Error) => {
      throw new Error(`${err.message}\n${cluster.logs()}`);
    });
  });
});
