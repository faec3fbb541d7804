import { connect, type NatsConnection } from '@nats-io/transport-node';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heartbeatSchema, heartbeatSubject } from '@virtfleet/shared';
import { startCluster, waitForHostsUp, waitForState, type TestAgent, type TestCluster } from '../support/cluster.js';
import { agentConfigOf, coordinatorConfigOf } from '../support/configs.js';
import { removeContainersOf } from '../support/cleanup.js';
import { startPrivateDockerd, type PrivateDockerd } from '../support/private-dockerd.js';
import { runCli } from '../support/processes.js';
import { waitFor, waitUntil } from '../support/wait.js';
import { retainedEvents, sleeperContainer, TEST_IMAGE } from '../support/workloads.js';

const FREEZE_MS = 20_000;
/** Short, so the freeze is noticed well within it; the default is 10 s. */
const READ_TIMEOUT_MS = 2000;
const SAMPLE_INTERVAL_MS = 250;
const machineDocker = new Docker({ socketPath: '/var/run/docker.sock' });

/** Running containers of a workload on one Docker daemon, by virtfleet's labels. */
async function runningCopies(docker: Docker, workloadId: string): Promise<number> {
  return (await docker.listContainers({ filters: { label: [`io.virtfleet.workload=${workloadId}`], status: ['running'] } })).length;
}

describe('dockerd frozen (SIGSTOP) for 20 s under running workloads', () => {
  let dockerd: PrivateDockerd;
  let cluster: TestCluster;
  let a: TestAgent;
  let b: TestAgent;
  let nc: NatsConnection;

  beforeAll(async () => {
    dockerd = await startPrivateDockerd();
    await dockerd.loadImage(TEST_IMAGE);
    cluster = await startCluster({
      agents: [
        // A: its containers on the private dockerd, which the test freezes.
        { drivers: { docker: { enabled: true, socketPath: dockerd.socketPath, readTimeoutMs: READ_TIMEOUT_MS } } },
        // B: on the machine's dockerd, somewhere A's workloads could go if A were wrongly declared lost.
        { drivers: { docker: { enabled: true } } },
      ],
      coordinatorExtra: { failover: { graceMs: 1000, checkIntervalMs: 250 }, reconcile: { intervalMs: 2000 } },
    });
    [a, b] = cluster.agents as [TestAgent, TestAgent];
    await waitForHostsUp(cluster);
    nc = await connect({ servers: cluster.nats.url });
  }, 120_000);

  afterAll(async () => {
    dockerd?.thaw();
    await nc?.close();
    const hostIds = cluster?.agents.map((x) => x.hostId) ?? [];
    await cluster?.stop();
    await removeContainersOf(hostIds);
    await dockerd?.stop();
  }, 120_000);

  it('marks the docker driver unhealthy (ListHosts, host ls, an event) while the host stays up and nothing moves, and healthy again after SIGCONT', async () => {
    const { api } = cluster;
    const ttlMs = coordinatorConfigOf(cluster.coordinator).hosts.ttlMs;
    const agentConfig = agentConfigOf(a.process);
    const readTimeoutMs = agentConfig.drivers.docker!.readTimeoutMs;
    const probeIntervalMs = agentConfig.telemetry.intervalMs;

    // Three workloads on A (B cordoned while they are placed), then B is open to take them.
    await api.cordon(b.hostId, true);
    const workloads = await Promise.all([0, 1, 2].map((i) => api.submit({ request_id: `freeze-${i}`, spec: sleeperContainer(`freeze-${i}`) })));
    for (const w of workloads) expect((await waitForState(cluster, w.id, 'running')).host_id, cluster.logs()).toBe(a.hostId);
    await api.cordon(b.hostId, false);
    for (const w of workloads) expect(await runningCopies(dockerd.docker, w.id), 'one copy on the private dockerd').toBe(1);
    const hostOf = async (id: string) => (await api.hosts()).hosts.find((h) => h.id === id);
    expect((await hostOf(a.hostId))?.drivers.find((d) => d.name === 'docker')?.healthy).toBe(true);

    // Heartbeats as a plain NATS subscriber sees them.
    const beats: number[] = [];
    const sub = nc.subscribe(heartbeatSubject(a.hostId), {
      callback: (err, msg) => {
        if (!err && heartbeatSchema.safeParse(msg.json()).success) beats.push(performance.now());
      },
    });
    // A's status through the coordinator, sampled throughout.
    const statuses: { at: number; status: string }[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const h = await hostOf(a.hostId).catch(() => undefined);
        statuses.push({ at: performance.now(), status: h?.status ?? 'error' });
        await new Promise((r) => setTimeout(r, SAMPLE_INTERVAL_MS));
      }
    })();

    const frozenAt = performance.now();
    dockerd.freeze();
    const unhealthy = await waitFor(
      'the docker driver of A to be listed unhealthy',
      async () => {
        const d = (await hostOf(a.hostId))?.drivers.find((x) => x.name === 'docker');
        return d && !d.healthy ? d : undefined;
      },
      { timeoutMs: FREEZE_MS - 2000 },
    );
    const unhealthyAfterMs = performance.now() - frozenAt;
    expect(unhealthy.detail, 'the detail says the engine missed its deadline').toContain(`did not answer within ${readTimeoutMs} ms`);
    const table = await runCli(['--coordinator', cluster.coordinatorAddress, 'host', 'ls']);
    expect(table.stdout.split('\n').find((l) => l.startsWith(a.hostId)), table.stdout + table.stderr).toContain('docker(down)');

    // The rest of the 20 s, then thaw.
    await new Promise((r) => setTimeout(r, Math.max(0, FREEZE_MS - (performance.now() - frozenAt))));
    const thawedAt = performance.now();
    dockerd.thaw();
    await waitUntil('the docker driver of A to be healthy again', async () => (await hostOf(a.hostId))?.drivers.find((x) => x.name === 'docker')?.healthy === true, {
      timeoutMs: 30_000,
    });
    const healthyAfterMs = performance.now() - thawedAt;
    sampling = false;
    await sampler;
    sub.unsubscribe();

    // Detection within a read deadline plus a probe interval (and generous slack for a shared machine).
    expect(unhealthyAfterMs, `unhealthy ${Math.round(unhealthyAfterMs)} ms after the freeze`).toBeLessThan(readTimeoutMs + probeIntervalMs + 5000);
    // The host was up at every sample, and the samples cover the freeze.
    const during = statuses.filter((s) => s.at >= frozenAt && s.at <= thawedAt);
    expect(during.length, 'status samples during the freeze').toBeGreaterThan(FREEZE_MS / SAMPLE_INTERVAL_MS / 4);
    expect(statuses.filter((s) => s.status !== 'up'), cluster.logs()).toEqual([]);
    // Heartbeats kept coming throughout, never late by half the TTL.
    const gaps = beats.slice(1).map((t, i) => t - beats[i]!);
    const maxGap = Math.max(...gaps, beats[0]! - frozenAt);
    expect(beats.filter((t) => t >= frozenAt && t <= thawedAt).length, 'heartbeats during the freeze').toBeGreaterThan(FREEZE_MS / agentConfig.heartbeat.intervalMs / 2);
    expect(maxGap, `longest heartbeat gap ${Math.round(maxGap)} ms`).toBeLessThan(ttlMs / 2);

    // Nothing moved: each workload still placed on A, one running copy each on A's dockerd, none on the machine's.
    for (const w of workloads) {
      const now = await api.get(w.id);
      expect(now.host_id).toBe(a.hostId);
      await waitUntil(`${w.id} to be running again`, async () => (await api.get(w.id)).state === 'running');
      expect(await runningCopies(dockerd.docker, w.id), `${w.id} on A`).toBe(1);
      expect(await runningCopies(machineDocker, w.id), `${w.id} on B`).toBe(0);
    }
    const events = await retainedEvents(api);
    const ofA = events.filter((e) => e.subject === a.hostId).map((e) => e.type);
    expect(ofA, 'A never went down').not.toContain('io.virtfleet.host.down');
    expect(ofA.filter((t) => t.includes('driver_')), 'one unhealthy and one healthy event').toEqual(['io.virtfleet.host.driver_unhealthy', 'io.virtfleet.host.driver_healthy']);
    expect(events.find((e) => e.type === 'io.virtfleet.host.driver_unhealthy' && e.subject === a.hostId)?.data).toMatchObject({ driver: 'docker', healthy: false });
    const ids = new Set(workloads.map((w) => w.id));
    expect(events.filter((e) => e.type === 'io.virtfleet.workload.rescheduled' && ids.has(e.subject)), 'no reschedule').toEqual([]);
    console.log(`dockerd freeze: unhealthy after ${Math.round(unhealthyAfterMs)} ms, healthy ${Math.round(healthyAfterMs)} ms after SIGCONT, longest heartbeat gap ${Math.round(maxGap)} ms (TTL ${ttlMs} ms), ${during.length} status samples during the freeze`);
  }, 180_000);
});
