import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { pb } from '@virtfleet/shared';
import { startCluster, waitForHostsUp, waitForState, type TestAgent, type TestCluster } from '../support/cluster.js';
import { coordinatorConfigOf } from '../support/configs.js';
import { GiveUp, waitFor, waitUntil } from '../support/wait.js';
import { retainedEvents, type RetainedEvent } from '../support/workloads.js';

// Simulated hosts: three agents with the in-memory fake driver, each reached through TCP proxies (NATS and
// gRPC) that the test cuts to make the host fall silent while its agent keeps running. What is checked is what
// the coordinator decides (failover suspended, rate, never back onto the lost host), read from its event log
// and from the agents' own lists; a copy started twice on one real engine would not show here.
const FAKE = { fake: { enabled: true } };
const RATE_PER_SECOND = 2;
const BURST = 1;
/**
 * A reschedule's event is emitted once the change is stored, a few milliseconds after its token was taken; two
 * events may therefore stand closer than the tokens did by the difference of two store writes. This margin covers it.
 */
const STORE_WRITE_JITTER_MS = 150;

const HEARTBEAT_MS = 500;
/**
 * Hosts cut at the same instant are declared down up to one heartbeat interval apart, and the grace must cover
 * that, or the first host's workloads move before the second is down: twice it.
 */
const GRACE_MS = 2 * HEARTBEAT_MS;
const coordinatorExtra = {
  failover: { graceMs: GRACE_MS, checkIntervalMs: 250, reschedulesPerSecond: RATE_PER_SECOND, rescheduleBurst: BURST, maxDownFraction: 0.5 },
  reconcile: { intervalMs: 1000 },
  scheduler: { retryIntervalMs: 250 },
};

const simulated = (name: string): pb.WorkloadSpec => ({ name, kind: 'container', image: 'sim:latest', vcpus: 1, memory_mib: 64 });

/** Workload ids the agent itself lists (it answers directly, not through the proxy the test cuts). */
async function copiesOn(cluster: TestCluster, agent: TestAgent): Promise<string[]> {
  const client = await cluster.agentClient(agent);
  try {
    return (await client.list()).filter((w) => w.state !== 'deleted').map((w) => w.workload_id);
  } finally {
    client.close();
  }
}

function cut(agent: TestAgent): void {
  agent.proxies!.nats.cut();
  agent.proxies!.grpc.cut();
}

function restore(agent: TestAgent): void {
  agent.proxies!.nats.restore();
  agent.proxies!.grpc.restore();
}

/** Submits `n` workloads while every other host is cordoned, so that all of them run on `host`. */
async function submitOnto(cluster: TestCluster, host: TestAgent, prefix: string, n: number): Promise<string[]> {
  const others = cluster.agents.filter((a) => a !== host);
  for (const a of others) await cluster.api.cordon(a.hostId, true);
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push((await cluster.api.submit({ request_id: `${prefix}-${i}`, spec: simulated(`${prefix}-${i}`) })).id);
  for (const id of ids) expect((await waitForState(cluster, id, 'running')).host_id, cluster.logs()).toBe(host.hostId);
  for (const a of others) await cluster.api.cordon(a.hostId, false);
  return ids;
}

/** A cluster of three fake-driver hosts behind TCP proxies, for one describe block; every host is restored before it stops. */
function threeSimulatedHosts(): () => TestCluster {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startCluster({ agents: [0, 1, 2].map(() => ({ drivers: FAKE, proxied: true, extra: { heartbeat: { intervalMs: HEARTBEAT_MS } } })), coordinatorExtra });
    await waitForHostsUp(cluster);
  });
  afterAll(async () => {
    for (const a of cluster?.agents ?? []) restore(a);
    await cluster?.stop();
  });
  return () => cluster;
}

const ofType = (events: RetainedEvent[], suffix: string) => events.filter((e) => e.type === `io.virtfleet.${suffix}`);

describe('two of three simulated hosts (fake driver) cut off at once', () => {
  const three = threeSimulatedHosts();

  it('moves nothing while two of three are down, says so in io.virtfleet.failover.suspended, and moves the workloads once one returns', async () => {
    const cluster = three();
    const [a, b, c] = cluster.agents as [TestAgent, TestAgent, TestAgent];
    const config = coordinatorConfigOf(cluster.coordinator);
    const onA = await submitOnto(cluster, a, 'cut-a', 3);
    const onB = await submitOnto(cluster, b, 'cut-b', 3);

    cut(a);
    cut(b);
    const suspended = await waitFor(
      'failover to be suspended',
      async () => ofType(await retainedEvents(cluster.api), 'failover.suspended')[0],
      { timeoutMs: config.hosts.ttlMs + 20_000, intervalMs: 250 },
    );
    expect(suspended.subject).toBe('hosts');
    expect(suspended.data, cluster.logs()).toMatchObject({ down_hosts: [a.hostId, b.hostId].sort(), down: 2, total: 3, max_down_fraction: config.failover.maxDownFraction });

    // The supervisor looked at every lost workload past the TTL and grace and decided not to move it, saying why.
    const decided = await waitFor(
      'every workload of the lost hosts to say failover is suspended',
      async () => {
        const all = await Promise.all([...onA, ...onB].map((id) => cluster.api.get(id)));
        const moved = all.find((w) => w.host_id !== a.hostId && w.host_id !== b.hostId);
        if (moved) throw new GiveUp(`${moved.id} moved while two of three hosts were down: ${moved.state} on ${moved.host_id || '(queue)'}: ${moved.message}\n${cluster.logs()}`);
        return all.every((w) => w.state === 'unknown' && /failover suspended: 2 of 3 hosts down/.test(w.message)) ? all : undefined;
      },
      { timeoutMs: config.failover.graceMs + 20_000, intervalMs: 250 },
    );
    for (const w of decided) expect([a.hostId, b.hostId]).toContain(w.host_id);
    // C, the one host left, was given none of them.
    expect(await copiesOn(cluster, c)).toEqual([]);

    // B returns: one of three is down, failover resumes, and A's workloads move (proof that the loop that held them ran).
    const restoredAt = Date.now();
    restore(b);
    await waitUntil(
      `A's workloads to run on another host`,
      async () => (await Promise.all(onA.map((id) => cluster.api.get(id)))).every((w) => w.state === 'running' && w.host_id !== a.hostId),
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    const events = await retainedEvents(cluster.api);
    const resumed = ofType(events, 'failover.resumed');
    expect(resumed, cluster.logs()).toHaveLength(1);
    expect(Date.parse(resumed[0]!.time)).toBeGreaterThanOrEqual(restoredAt);
    expect(ofType(events, 'failover.suspended'), 'one event per change, not one per check').toHaveLength(1);
    const rescheduled = ofType(events, 'workload.rescheduled');
    // Nothing moved while suspended; after it, only A's workloads (B is back, its own workloads stay on it).
    expect(rescheduled.filter((e) => e.sequence < resumed[0]!.sequence), 'reschedules while suspended').toEqual([]);
    expect(rescheduled.map((e) => e.subject).sort()).toEqual([...onA].sort());
    for (const e of rescheduled) expect(e.data.from_host).toBe(a.hostId);
    // Counted on the agents: each of A's workloads once on B or C.
    const [listedB, listedC] = await Promise.all([copiesOn(cluster, b), copiesOn(cluster, c)]);
    for (const id of onA) expect([...listedB, ...listedC].filter((w) => w === id), id).toHaveLength(1);
    for (const id of onB) expect(listedB, id).toContain(id);
  });
});

describe('one of three simulated hosts (fake driver) cut off', () => {
  const three = threeSimulatedHosts();

  it('moves its workloads no faster than failover.reschedulesPerSecond, none back onto the lost host', async () => {
    const cluster = three();
    const [a, b, c] = cluster.agents as [TestAgent, TestAgent, TestAgent];
    const config = coordinatorConfigOf(cluster.coordinator);
    const onA = await submitOnto(cluster, a, 'lost', 6);

    cut(a);
    await waitUntil(
      'every workload of the lost host to run elsewhere',
      async () => (await Promise.all(onA.map((id) => cluster.api.get(id)))).every((w) => w.state === 'running' && w.host_id !== a.hostId),
      { timeoutMs: config.hosts.ttlMs + 60_000, intervalMs: 250 },
    );
    const events = await retainedEvents(cluster.api);
    expect(ofType(events, 'failover.suspended'), 'one of three down is no disruption').toEqual([]);
    const rescheduled = ofType(events, 'workload.rescheduled');
    expect(rescheduled.map((e) => e.subject).sort(), cluster.logs()).toEqual([...onA].sort());
    for (const e of rescheduled) expect(e.data.from_host).toBe(a.hostId);

    // The rate: after the burst, event k + BURST comes at least 1/rate later than event k.
    const times = rescheduled.map((e) => Date.parse(e.time)).sort((x, y) => x - y);
    const minGapMs = (1000 * BURST) / config.failover.reschedulesPerSecond;
    const gaps = times.slice(BURST).map((t, i) => t - times[i]!);
    console.log(`${onA.length} rescheduled at ${times.map((t) => t - times[0]!).join(', ')} ms (rate ${config.failover.reschedulesPerSecond}/s, burst ${BURST})`);
    expect(Math.min(...gaps), `reschedule times ${times.map((t) => t - times[0]!).join(', ')} ms`).toBeGreaterThanOrEqual(minGapMs - STORE_WRITE_JITTER_MS);
    const minSpanMs = ((onA.length - BURST) * 1000) / config.failover.reschedulesPerSecond;
    expect(times.at(-1)! - times[0]!).toBeGreaterThanOrEqual(minSpanMs - STORE_WRITE_JITTER_MS);

    // Never back onto the host being left: every placement after a reschedule names another host.
    const placedAfter = ofType(events, 'workload.placed').filter((e) => rescheduled.some((r) => r.subject === e.subject && r.sequence < e.sequence));
    expect(placedAfter.map((e) => e.subject).sort()).toEqual([...onA].sort());
    for (const e of placedAfter) expect(e.data.host_id).not.toBe(a.hostId);
    // Counted on the agents: each once on B or C.
    const [listedB, listedC] = await Promise.all([copiesOn(cluster, b), copiesOn(cluster, c)]);
    for (const id of onA) expect([...listedB, ...listedC].filter((w) => w === id), id).toHaveLength(1);
  });
});
