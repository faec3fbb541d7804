import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heartbeatSchema, heartbeatSubject, telemetrySchema, telemetrySubject } from '@virtfleet/shared';
import { removeContainersOf } from '../support/cleanup.js';
import { startCluster, waitForHostsUp, type TestCluster } from '../support/cluster.js';
import { agentConfigOf, coordinatorConfigOf } from '../support/configs.js';
import { containersOfHost, containersPerWorkloadSampler, samplingProblems, type CopySampler } from '../support/copies.js';
import { waitFor } from '../support/wait.js';
import { retainedEvents, sleeperContainer } from '../support/workloads.js';

const WORKLOADS = 200;
const SAMPLE_INTERVAL_MS = 500;

describe('a burst of 200 small containers submitted at once to the one real Docker host', () => {
  let cluster: TestCluster;
  let nc: NatsConnection;
  const samplers: CopySampler[] = [];

  beforeAll(async () => {
    cluster = await startCluster({ agents: [{ drivers: { docker: { enabled: true } } }] });
    await waitForHostsUp(cluster);
    nc = await connect({ servers: cluster.nats.url });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(samplers.map((s) => s.stop().catch(() => undefined)));
    await nc?.close();
    const hostIds = cluster?.agents.map((a) => a.hostId) ?? [];
    await cluster?.stop();
    await removeContainersOf(hostIds);
  }, 300_000);

  it('all run, one container each counted through Docker, with no host.down, no reschedule and heartbeats never later than half the TTL', async () => {
    const { api } = cluster;
    const agent = cluster.agents[0]!;
    const hostId = agent.hostId;
    const coordinatorConfig = coordinatorConfigOf(cluster.coordinator);
    const ttlMs = coordinatorConfig.hosts.ttlMs;
    const dockerConcurrency = agentConfigOf(agent.process).drivers.docker!.concurrency;

    // Heartbeats and telemetry as a plain NATS subscriber sees them, from before the burst to the end.
    const beats: number[] = [];
    let maxQueueDepth = 0;
    let maxInFlight = 0;
    const beatSub = nc.subscribe(heartbeatSubject(hostId), {
      callback: (err, msg) => {
        if (!err && heartbeatSchema.safeParse(msg.json()).success) beats.push(performance.now());
      },
    });
    const telemetrySub = nc.subscribe(telemetrySubject(hostId), {
      callback: (err, msg) => {
        const t = err ? undefined : telemetrySchema.safeParse(msg.json());
        const docker = t?.success ? t.data.drivers.find((d) => d.name === 'docker') : undefined;
        maxQueueDepth = Math.max(maxQueueDepth, docker?.queue_depth ?? 0);
        maxInFlight = Math.max(maxInFlight, docker?.in_flight ?? 0);
      },
    });
    const accepted: string[] = [];
    const { sampler, maxPerWorkload } = containersPerWorkloadSampler(() => accepted, SAMPLE_INTERVAL_MS);
    samplers.push(sampler);
    sampler.start();
    const startedAt = performance.now();

    const submitted = await Promise.all(
      Array.from({ length: WORKLOADS }, (_, i) => api.submit({ request_id: `burst200-${i}`, spec: sleeperContainer(`burst200-${i}`, { vcpus: 0.01, memory_mib: 8 }) })),
    );
    accepted.push(...submitted.map((w) => w.id));
    expect(new Set(accepted).size, 'distinct workloads accepted').toBe(WORKLOADS);

    const all = await waitFor(
      `all ${WORKLOADS} workloads to run`,
      async () => {
        const { workloads, next_page_token } = await api.list({ page_size: 1000 });
        if (next_page_token !== '') throw new Error('more workloads than one page holds');
        const running = workloads.filter((w) => w.state === 'running').length;
        return workloads.length >= WORKLOADS && running === WORKLOADS ? workloads : undefined;
      },
      { timeoutMs: 600_000, intervalMs: 1000 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${cluster.logs()}`);
    });
    const convergedMs = performance.now() - startedAt;
    const report = await sampler.stop();
    beatSub.unsubscribe();
    telemetrySub.unsubscribe();

    // Counted through Docker: one running container per workload, on this host.
    const containers = await containersOfHost(hostId);
    for (const w of all) {
      expect(w.host_id).toBe(hostId);
      expect(containers.filter((c) => c.workloadId === w.id).map((c) => c.state), `containers of ${w.id}`).toEqual(['running']);
    }
    expect(containers, 'no container of any other workload').toHaveLength(WORKLOADS);
    // Never two containers of one workload at any sample, and the sampler watched throughout.
    expect(samplingProblems(report, SAMPLE_INTERVAL_MS, { maxBlindMs: coordinatorConfig.reconcile.intervalMs }), JSON.stringify(report.timeline)).toEqual([]);
    expect(Math.max(...maxPerWorkload.values()), JSON.stringify(report.timeline)).toBe(1);

    const events = await retainedEvents(api);
    expect(events.filter((e) => e.type === 'io.virtfleet.host.down'), 'no host went down').toEqual([]);
    expect(events.filter((e) => e.type === 'io.virtfleet.workload.rescheduled'), 'nothing rescheduled').toEqual([]);

    // Heartbeats kept coming throughout, never later than half the TTL.
    const gaps = beats.slice(1).map((t, i) => t - beats[i]!);
    const maxGap = Math.max(...gaps);
    expect(beats.length, 'heartbeats seen').toBeGreaterThan(convergedMs / agentConfigOf(agent.process).heartbeat.intervalMs / 2);
    expect(maxGap, `longest heartbeat gap ${Math.round(maxGap)} ms`).toBeLessThan(ttlMs / 2);
    // The agent's queue held the creates back: never more than its concurrency at the engine at once.
    expect(maxInFlight, 'creates at Docker at once').toBeLessThanOrEqual(dockerConcurrency);
    console.log(
      `burst of ${WORKLOADS}: all running after ${Math.round(convergedMs / 1000)} s; longest heartbeat gap ${Math.round(maxGap)} ms (TTL ${ttlMs} ms); docker queue depth up to ${maxQueueDepth}, in flight up to ${maxInFlight}; ${report.samples} copy samples, longest blind ${Math.round(report.longestBlindMs)} ms`,
    );
  }, 900_000);
});
