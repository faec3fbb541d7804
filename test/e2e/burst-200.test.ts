import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { telemetrySchema, telemetrySubject } from '@virtfleet/shared';
import { removeContainersOf } from '../support/cleanup.js';
import { startCluster, waitForHostsUp, type TestCluster } from '../support/cluster.js';
import { agentConfigOf, coordinatorConfigOf } from '../support/configs.js';
import { containersOfHost, containersPerWorkloadSampler, samplingProblems, type CopySampler } from '../support/copies.js';
import { watchSignsOfLife, type SignsOfLife } from '../support/signs-of-life.js';
import { waitFor } from '../support/wait.js';
import { retainedEvents, sleeperContainer } from '../support/workloads.js';

const WORKLOADS = 200;
const SAMPLE_INTERVAL_MS = 500;

interface BurstOutcome {
  convergedMs: number;
  life: SignsOfLife;
  maxQueueDepth: number;
  maxInFlight: number;
  samples: number;
  longestBlindMs: number;
}

/**
 * Submits WORKLOADS small containers at once to the cluster's one Docker host
 * and waits until all run, while `during` (faults, probes) runs alongside. Asserts
 * what must hold with or without faults: every accepted workload runs on
 * that host as exactly one container, counted through Docker, never two at
 * any sample, and nothing was rescheduled.
 */
async function burst(cluster: TestCluster, nc: NatsConnection, samplers: CopySampler[], prefix: string, during?: () => Promise<void>): Promise<BurstOutcome> {
  const agent = cluster.agents[0]!;
  const hostId = agent.hostId;
  const coordinatorConfig = coordinatorConfigOf(cluster.coordinator);
  // Heartbeats and telemetry as a plain NATS subscriber sees them, from before the burst to the end.
  const life = watchSignsOfLife(nc, hostId);
  let maxQueueDepth = 0;
  let maxInFlight = 0;
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
    Array.from({ length: WORKLOADS }, (_, i) => cluster.api.submit({ request_id: `${prefix}-${i}`, spec: sleeperContainer(`${prefix}-${i}`, { vcpus: 0.01, memory_mib: 8 }) })),
  );
  accepted.push(...submitted.map((w) => w.id));
  expect(new Set(accepted).size, 'distinct workloads accepted').toBe(WORKLOADS);
  await during?.();

  const all = await waitFor(
    `all ${WORKLOADS} workloads to run`,
    async () => {
      const { workloads, next_page_token } = await cluster.api.list({ page_size: 1000 });
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
  life.stop();
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
  const events = await retainedEvents(cluster.api);
  expect(events.filter((e) => e.type === 'io.virtfleet.workload.rescheduled'), 'nothing rescheduled').toEqual([]);
  return { convergedMs, life, maxQueueDepth, maxInFlight, samples: report.samples, longestBlindMs: report.longestBlindMs };
}

/** Starts a cluster with one real Docker host for a burst, and cleans it up. */
function burstCluster(): { cluster: () => TestCluster; nc: () => NatsConnection; samplers: CopySampler[] } {
  let cluster: TestCluster;
  let nc: NatsConnection;
  const samplers: CopySampler[] = [];
  beforeAll(async () => {
    cluster = await startCluster({ agents: [{ drivers: { docker: { enabled: true } } }] });
    await waitForHostsUp(cluster);
    nc = await cluster.nats.connect();
  }, 60_000);
  afterAll(async () => {
    await Promise.all(samplers.map((s) => s.stop().catch(() => undefined)));
    await nc?.close();
    const hostIds = cluster?.agents.map((a) => a.hostId) ?? [];
    await cluster?.stop();
    await removeContainersOf(hostIds);
  }, 300_000);
  return { cluster: () => cluster, nc: () => nc, samplers };
}

describe('a burst of 200 small containers submitted at once to the one real Docker host', () => {
  const setup = burstCluster();

  it('all run, one container each counted through Docker, with no host.down, no reschedule and signs of life never later than half the TTL', async () => {
    const cluster = setup.cluster();
    const agent = cluster.agents[0]!;
    const ttlMs = coordinatorConfigOf(cluster.coordinator).hosts.ttlMs;
    const agentConfig = agentConfigOf(agent.process);
    let queueInHostList = 0;
    const outcome = await burst(cluster, setup.nc(), setup.samplers, 'burst200', async () => {
      // The agent's queue is visible to operators in ListHosts (`host ls`) while it holds creates back.
      const seen = await waitFor('the docker queue to show in ListHosts', async () => {
        const docker = (await cluster.api.hosts()).hosts[0]?.drivers.find((d) => d.name === 'docker');
        return docker && docker.queue_depth > 0 ? docker : undefined;
      }, { timeoutMs: 60_000, intervalMs: 200 });
      queueInHostList = seen.queue_depth;
      expect(seen.concurrency).toBe(agentConfig.drivers.docker!.concurrency);
    });
    expect(queueInHostList).toBeGreaterThan(0);

    const events = await retainedEvents(cluster.api);
    expect(events.filter((e) => e.type === 'io.virtfleet.host.down'), 'no host went down').toEqual([]);
    // Signs of life (heartbeats, or telemetry standing in for them) kept coming throughout, never later than half the TTL.
    const maxGap = outcome.life.longestGapMs();
    expect(outcome.life.at.length, 'signs of life seen').toBeGreaterThan(outcome.convergedMs / agentConfig.heartbeat.intervalMs / 2);
    expect(maxGap, `longest gap between signs of life ${Math.round(maxGap)} ms`).toBeLessThan(ttlMs / 2);
    // The agent's queue held the creates back: never more than its concurrency at the engine at once.
    expect(outcome.maxInFlight, 'creates at Docker at once').toBeLessThanOrEqual(agentConfig.drivers.docker!.concurrency);
    console.log(
      `burst of ${WORKLOADS}: all running after ${Math.round(outcome.convergedMs / 1000)} s; longest gap between signs of life ${Math.round(maxGap)} ms (TTL ${ttlMs} ms); docker queue depth up to ${outcome.maxQueueDepth}, in flight up to ${outcome.maxInFlight}; ${outcome.samples} copy samples, longest blind ${Math.round(outcome.longestBlindMs)} ms`,
    );
  }, 900_000);
});

describe('the same burst with the coordinator SIGKILLed and restarted twice and the agent once while it runs', () => {
  const setup = burstCluster();

  it('still ends with every workload running as exactly one container, never two at any sample, and nothing rescheduled', async () => {
    const cluster = setup.cluster();
    const runningNow = async () => (await cluster.api.list({ state: 'running', page_size: 1000 })).workloads.length;
    const faultsAt: { fault: string; running: number }[] = [];
    const outcome = await burst(cluster, setup.nc(), setup.samplers, 'burst200-faults', async () => {
      for (const [fault, threshold] of [
        ['coordinator', 40],
        ['agent', 90],
        ['coordinator', 140],
      ] as const) {
        await waitFor(`${threshold} workloads to run before the ${fault} is killed`, async () => {
          const running = await runningNow();
          return running >= threshold ? { running } : undefined;
        }, { timeoutMs: 600_000, intervalMs: 500 }).then(({ running }) => faultsAt.push({ fault, running }));
        if (fault === 'coordinator') await cluster.restartCoordinator('SIGKILL');
        else await cluster.agents[0]!.restart('SIGKILL');
      }
    });
    // Each fault landed in the middle of the burst, not after it.
    expect(faultsAt.map((f) => f.fault)).toEqual(['coordinator', 'agent', 'coordinator']);
    for (const f of faultsAt) expect(f.running, `${f.fault} killed with ${f.running} of ${WORKLOADS} running`).toBeLessThan(WORKLOADS);
    console.log(`burst of ${WORKLOADS} with faults at ${JSON.stringify(faultsAt)}: all running after ${Math.round(outcome.convergedMs / 1000)} s; ${outcome.samples} copy samples, longest blind ${Math.round(outcome.longestBlindMs)} ms`);
  }, 900_000);
});
