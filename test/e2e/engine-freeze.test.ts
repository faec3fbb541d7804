import type { NatsConnection } from '@nats-io/transport-node';
import { Hypervisor } from '@unraid/libvirt';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { pb } from '@virtfleet/shared';
import { startCluster, waitForHostsUp, waitForState, type AgentOptions, type TestAgent, type TestCluster } from '../support/cluster.js';
import { agentConfigOf, coordinatorConfigOf } from '../support/configs.js';
import { removeContainersOf, removeDomains } from '../support/cleanup.js';
import { runningDomainCopies, virtfleetDomains } from '../support/copies.js';
import { startPrivateDockerd } from '../support/private-dockerd.js';
import { startPrivateLibvirtd } from '../support/private-libvirtd.js';
import { watchSignsOfLife } from '../support/signs-of-life.js';
import { waitFor, waitUntil } from '../support/wait.js';
import { retainedEvents, sleeperContainer, TEST_IMAGE } from '../support/workloads.js';

const FREEZE_MS = 20_000;
/** Short, so the freeze is noticed well within it; the default is 10 s. */
const READ_TIMEOUT_MS = 2000;
const SAMPLE_INTERVAL_MS = 250;
const machineDocker = new Docker({ socketPath: '/var/run/docker.sock' });
const machineLibvirt = new Hypervisor({ uri: 'qemu:///system' });

/** Running containers of a workload on one Docker daemon, by virtfleet's labels. */
async function runningContainers(docker: Docker, workloadId: string): Promise<number> {
  return (await docker.listContainers({ filters: { label: [`io.virtfleet.workload=${workloadId}`], status: ['running'] } })).length;
}

/** An engine of the test's own that it can freeze, and how to reach and count copies on it and on the machine's engine. */
interface FrozenEngine {
  /** Driver sections for A (on the private engine) and for B (on the machine's). */
  agentA: AgentOptions['drivers'];
  agentB: AgentOptions['drivers'];
  freeze(): void;
  thaw(): void;
  /** Running copies of a workload on the private engine (A) and on the machine's (B). */
  copiesOnA(workloadId: string): Promise<number>;
  copiesOnB(workloadId: string): Promise<number>;
  /** Removes what the test made on the machine's engine and stops the private one. */
  stop(hostIds: readonly string[], workloadIds: readonly string[]): Promise<void>;
}

const engines: { driver: 'docker' | 'libvirt'; spec: (name: string) => pb.WorkloadSpec; start: () => Promise<FrozenEngine> }[] = [
  {
    driver: 'docker',
    spec: (name) => sleeperContainer(name),
    start: async () => {
      const dockerd = await startPrivateDockerd();
      await dockerd.loadImage(TEST_IMAGE);
      return {
        agentA: { docker: { enabled: true, socketPath: dockerd.socketPath, readTimeoutMs: READ_TIMEOUT_MS } },
        agentB: { docker: { enabled: true } },
        freeze: () => dockerd.freeze(),
        thaw: () => dockerd.thaw(),
        copiesOnA: (id) => runningContainers(dockerd.docker, id),
        copiesOnB: (id) => runningContainers(machineDocker, id),
        stop: async (hostIds) => {
          await removeContainersOf(hostIds);
          await dockerd.stop();
        },
      };
    },
  },
  {
    driver: 'libvirt',
    spec: (name) => ({ name, kind: 'vm', vcpus: 1, memory_mib: 64 }),
    start: async () => {
      const libvirtd = await startPrivateLibvirtd();
      return {
        agentA: { libvirt: { enabled: true, uri: libvirtd.uri, readTimeoutMs: READ_TIMEOUT_MS } },
        agentB: { libvirt: { enabled: true, uri: 'qemu:///system' } },
        freeze: () => libvirtd.freeze(),
        thaw: () => libvirtd.thaw(),
        copiesOnA: (id) => runningDomainCopies(libvirtd.hypervisor, id),
        copiesOnB: (id) => runningDomainCopies(machineLibvirt, id),
        stop: async (_hostIds, workloadIds) => {
          const strays = (await virtfleetDomains(machineLibvirt)).filter((d) => d.workloadId !== undefined && workloadIds.includes(d.workloadId));
          await removeDomains(machineLibvirt, strays.map((d) => d.name));
          await libvirtd.stop();
        },
      };
    },
  },
];

describe.each(engines)('$driver engine frozen (SIGSTOP) for 20 s under running workloads', ({ driver, spec, start }) => {
  let engine: FrozenEngine;
  let cluster: TestCluster;
  let a: TestAgent;
  let b: TestAgent;
  let nc: NatsConnection;
  const workloadIds: string[] = [];

  beforeAll(async () => {
    engine = await start();
    await machineLibvirt.connectOpen();
    cluster = await startCluster({
      agents: [
        // A: its workloads on the private engine, which the test freezes.
        { drivers: engine.agentA },
        // B: on the machine's engine, somewhere A's workloads could go if A were wrongly declared lost.
        { drivers: engine.agentB },
      ],
      coordinatorExtra: { failover: { graceMs: 1000, checkIntervalMs: 250 }, reconcile: { intervalMs: 2000 } },
    });
    [a, b] = cluster.agents as [TestAgent, TestAgent];
    await waitForHostsUp(cluster);
    await waitUntil(`the ${driver} driver of A to be healthy`, async () => (await cluster.api.hosts()).hosts.find((h) => h.id === a.hostId)?.drivers.find((d) => d.name === driver)?.healthy === true);
    nc = await cluster.nats.connect();
  }, 120_000);

  afterAll(async () => {
    engine?.thaw();
    await nc?.close();
    const hostIds = cluster?.agents.map((x) => x.hostId) ?? [];
    await cluster?.stop();
    await engine?.stop(hostIds, workloadIds);
  }, 120_000);

  it(`marks the ${driver} driver unhealthy (ListHosts, host ls, an event) while the host stays up and nothing moves, and healthy again after SIGCONT`, async () => {
    const { api } = cluster;
    const ttlMs = coordinatorConfigOf(cluster.coordinator).hosts.ttlMs;
    const agentConfig = agentConfigOf(a.process);
    const readTimeoutMs = agentConfig.drivers[driver]!.readTimeoutMs;
    const probeIntervalMs = agentConfig.telemetry.intervalMs;

    // Three workloads on A (B cordoned while they are placed), then B is open to take them.
    await api.cordon(b.hostId, true);
    const workloads = await Promise.all([0, 1, 2].map((i) => api.submit({ request_id: `freeze-${driver}-${i}`, spec: spec(`freeze-${driver}-${i}`) })));
    workloadIds.push(...workloads.map((w) => w.id));
    for (const w of workloads) expect((await waitForState(cluster, w.id, 'running')).host_id, cluster.logs()).toBe(a.hostId);
    await api.cordon(b.hostId, false);
    for (const w of workloads) expect(await engine.copiesOnA(w.id), 'one copy on the private engine').toBe(1);
    const hostOf = async (id: string) => (await api.hosts()).hosts.find((h) => h.id === id);
    expect((await hostOf(a.hostId))?.drivers.find((d) => d.name === driver)?.healthy).toBe(true);

    const life = watchSignsOfLife(nc, a.hostId);
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
    engine.freeze();
    const unhealthy = await waitFor(
      `the ${driver} driver of A to be listed unhealthy`,
      async () => {
        const d = (await hostOf(a.hostId))?.drivers.find((x) => x.name === driver);
        return d && !d.healthy ? d : undefined;
      },
      { timeoutMs: FREEZE_MS - 2000 },
    );
    const unhealthyAfterMs = performance.now() - frozenAt;
    expect(unhealthy.detail, 'the detail says the engine missed its deadline').toContain(`did not answer within ${readTimeoutMs} ms`);
    const table = await cluster.cli('host', 'ls');
    expect(table.stdout.split('\n').find((l) => l.startsWith(a.hostId)), table.stdout + table.stderr).toContain(`${driver}(down)`);

    // The rest of the 20 s, then thaw.
    await new Promise((r) => setTimeout(r, Math.max(0, FREEZE_MS - (performance.now() - frozenAt))));
    const thawedAt = performance.now();
    engine.thaw();
    await waitUntil(`the ${driver} driver of A to be healthy again`, async () => (await hostOf(a.hostId))?.drivers.find((x) => x.name === driver)?.healthy === true, {
      timeoutMs: 30_000,
    });
    const healthyAfterMs = performance.now() - thawedAt;
    sampling = false;
    await sampler;
    life.stop();

    // Detection within a read deadline plus a probe interval (and generous slack for a shared machine).
    expect(unhealthyAfterMs, `unhealthy ${Math.round(unhealthyAfterMs)} ms after the freeze`).toBeLessThan(readTimeoutMs + probeIntervalMs + 5000);
    // The host was up at every sample, and the samples cover the freeze.
    const during = statuses.filter((s) => s.at >= frozenAt && s.at <= thawedAt);
    expect(during.length, 'status samples during the freeze').toBeGreaterThan(FREEZE_MS / SAMPLE_INTERVAL_MS / 4);
    expect(statuses.filter((s) => s.status !== 'up'), cluster.logs()).toEqual([]);
    // Signs of life (heartbeats, or telemetry standing in for them) kept coming throughout, never late by half the TTL.
    const maxGap = life.longestGapMs(frozenAt);
    expect(life.at.filter((t) => t >= frozenAt && t <= thawedAt).length, 'signs of life during the freeze').toBeGreaterThan(FREEZE_MS / agentConfig.heartbeat.intervalMs / 2);
    expect(maxGap, `longest gap between signs of life ${Math.round(maxGap)} ms`).toBeLessThan(ttlMs / 2);

    // Nothing moved: each workload still placed on A, one running copy each on A's engine, none on the machine's.
    for (const w of workloads) {
      const now = await api.get(w.id);
      expect(now.host_id).toBe(a.hostId);
      await waitUntil(`${w.id} to be running again`, async () => (await api.get(w.id)).state === 'running');
      expect(await engine.copiesOnA(w.id), `${w.id} on A`).toBe(1);
      expect(await engine.copiesOnB(w.id), `${w.id} on B`).toBe(0);
    }
    const events = await retainedEvents(api);
    const ofA = events.filter((e) => e.subject === a.hostId).map((e) => e.type);
    expect(ofA, 'A never went down').not.toContain('io.virtfleet.host.down');
    expect(ofA.filter((t) => t.includes('driver_')), `one unhealthy and one healthy event; frozen at ${new Date(Date.now() - (performance.now() - frozenAt)).toISOString()}, thawed at ${new Date(Date.now() - (performance.now() - thawedAt)).toISOString()}: ${JSON.stringify(events.filter((e) => e.subject === a.hostId && e.type.includes('driver_')))}`).toEqual(['io.virtfleet.host.driver_unhealthy', 'io.virtfleet.host.driver_healthy']);
    expect(events.find((e) => e.type === 'io.virtfleet.host.driver_unhealthy' && e.subject === a.hostId)?.data).toMatchObject({ driver, healthy: false });
    const ids = new Set(workloads.map((w) => w.id));
    expect(events.filter((e) => e.type === 'io.virtfleet.workload.rescheduled' && ids.has(e.subject)), 'no reschedule').toEqual([]);
    console.log(`${driver} freeze: unhealthy after ${Math.round(unhealthyAfterMs)} ms, healthy ${Math.round(healthyAfterMs)} ms after SIGCONT, longest heartbeat gap ${Math.round(maxGap)} ms (TTL ${ttlMs} ms), ${during.length} status samples during the freeze`);
  }, 180_000);
});
