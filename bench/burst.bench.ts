import { performance } from 'node:perf_hooks';
import Docker from 'dockerode';
import { parseWorkloadSpec } from '@virtfleet/shared';
import { buildCreateOptions } from '../packages/agent/src/drivers/docker/docker-driver.js';
import type { CoordinatorApi } from '@virtfleet/cli';
import { removeContainersOf } from '../test/support/cleanup.js';
import { startCluster, waitForHostsUp } from '../test/support/cluster.js';
import { agentConfigOf, coordinatorConfigOf } from '../test/support/configs.js';
import { watchSignsOfLife } from '../test/support/signs-of-life.js';
import { waitUntil } from '../test/support/wait.js';
import { retainedEvents, sleeperContainer } from '../test/support/workloads.js';
import { formatTarget, type Target } from './targets.js';

/** virtfleet may take at most this many times as long as dockerode alone at the agent's concurrency. */
const MAX_RATIO = 1.5;
/** The smallest container (0.01 vCPU is the kernel's smallest CPU quota). */
const SPEC = { vcpus: 0.01, memory_mib: 8 } as const;
/** CPU overcommit on the test host, so that a thousand of them fit on two cores (the default, 4, fits 800). */
const CPU_OVERCOMMIT = 8;

export interface BurstResult {
  count: number;
  /** The agent's drivers.docker.concurrency, which the baseline uses too. */
  concurrency: number;
  /** dockerode create+start+inspect of `count` containers, `concurrency` at a time: ms for all. */
  rawMs: number;
  /** `count` submitted at once through the coordinator: ms until all run. */
  virtfleetMs: number;
  maxSilenceMs: number;
  ttlMs: number;
  hostDownEvents: number;
  reschedules: number;
  /** Running containers per workload, counted through Docker at the end: workloads with other than one. */
  notExactlyOne: number;
}

/** Runs `work` over `items`, `concurrency` at a time. */
async function pool<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

async function countRunning(api: CoordinatorApi): Promise<number> {
  let running = 0;
  let page_token = '';
  do {
    const page = await api.list({ state: 'running', page_size: 1000, page_token });
    running += page.workloads.length;
    page_token = page.next_page_token;
  } while (page_token !== '');
  return running;
}

/** The same containers the agent would create, straight through dockerode, `concurrency` at a time. */
async function rawBurst(docker: Docker, count: number, concurrency: number, options: Parameters<typeof buildCreateOptions>[3]): Promise<number> {
  const hostId = `bench-raw-${process.pid}`;
  const ids = Array.from({ length: count }, (_, i) => `raw-${i}`);
  const startedAt = performance.now();
  try {
    await pool(ids, concurrency, async (id) => {
      const spec = parseWorkloadSpec(sleeperContainer(id, SPEC));
      const c = await docker.createContainer(buildCreateOptions(hostId, id, spec, options));
      await c.start();
      await c.inspect();
    });
    return performance.now() - startedAt;
  } finally {
    await removeContainersOf([hostId]);
  }
}

/** `count` small containers submitted at once to a one-host cluster, beside the same through dockerode. */
export async function benchBurst(count: number): Promise<BurstResult> {
  const docker = new Docker({ socketPath: '/var/run/docker.sock' });
  const cluster = await startCluster({ agents: [{ drivers: { docker: { enabled: true } }, extra: { overcommit: { cpu: CPU_OVERCOMMIT, memory: 1 } } }] });
  const agent = cluster.agents[0]!;
  try {
    await waitForHostsUp(cluster);
    const agentConfig = agentConfigOf(agent.process);
    const { concurrency, network } = agentConfig.drivers.docker!;
    const ttlMs = coordinatorConfigOf(cluster.coordinator).hosts.ttlMs;
    const rawMs = await rawBurst(docker, count, concurrency, { network, stopTimeoutSeconds: agentConfig.stopTimeoutSeconds });

    const nc = await cluster.nats.connect();
    const life = watchSignsOfLife(nc, agent.hostId);
    const startedAt = performance.now();
    const submitted: string[] = [];
    // At once, as far as the client goes: every submit in flight together.
    await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const w = await cluster.api.submit({ request_id: `burst-${i}`, spec: sleeperContainer(`burst-${i}`, SPEC) });
        submitted.push(w.id);
      }),
    );
    await waitUntil(`all ${count} to run`, async () => (await countRunning(cluster.api)) === count, { timeoutMs: 2_400_000, intervalMs: 2000 });
    const virtfleetMs = performance.now() - startedAt;
    life.stop();
    await nc.close();

    const running = await docker.listContainers({ filters: { label: [`io.virtfleet.host=${agent.hostId}`], status: ['running'] } });
    const perWorkload = new Map<string, number>();
    for (const c of running) {
      const id = c.Labels['io.virtfleet.workload'] ?? '';
      perWorkload.set(id, (perWorkload.get(id) ?? 0) + 1);
    }
    const events = await retainedEvents(cluster.api);
    return {
      count,
      concurrency,
      rawMs,
      virtfleetMs,
      maxSilenceMs: life.longestGapMs(),
      ttlMs,
      hostDownEvents: events.filter((e) => e.type === 'io.virtfleet.host.down').length,
      reschedules: events.filter((e) => e.type === 'io.virtfleet.workload.rescheduled').length,
      notExactlyOne: submitted.filter((id) => perWorkload.get(id) !== 1).length,
    };
  } finally {
    await cluster.stop();
    await removeContainersOf([agent.hostId]);
  }
}

export function burstTargets(r: BurstResult): Target[] {
  const benchmark = 'burst';
  return [
    { benchmark, what: `time for ${r.count} creates, virtfleet / dockerode`, measured: r.virtfleetMs / r.rawMs, bound: 'at most', limit: MAX_RATIO, unit: '×', basis: `the engines' own time, at drivers.docker.concurrency ${r.concurrency}` },
    { benchmark, what: 'longest gap between signs of life (heartbeats, telemetry)', measured: Math.round(r.maxSilenceMs), bound: 'at most', limit: r.ttlMs / 2, unit: 'ms', basis: `half of hosts.ttlMs ${r.ttlMs} ms` },
    { benchmark, what: 'host.down events', measured: r.hostDownEvents, bound: 'at most', limit: 0, unit: '', basis: 'the host was never lost' },
    { benchmark, what: 'reschedules', measured: r.reschedules, bound: 'at most', limit: 0, unit: '', basis: 'nothing was lost' },
    { benchmark, what: 'workloads without exactly one running container', measured: r.notExactlyOne, bound: 'at most', limit: 0, unit: '', basis: 'counted through Docker' },
  ];
}

export function reportBurst(r: BurstResult): string {
  return [
    `burst: ${r.count} containers (${SPEC.vcpus} vCPU, ${SPEC.memory_mib} MiB) on one real Docker host, Docker concurrency ${r.concurrency}`,
    `  dockerode create+start+inspect: ${(r.rawMs / 1000).toFixed(1)} s (${((r.count * 1000) / r.rawMs).toFixed(2)}/s)`,
    `  virtfleet, all submitted at once → all running: ${(r.virtfleetMs / 1000).toFixed(1)} s (${((r.count * 1000) / r.virtfleetMs).toFixed(2)}/s), ratio ${(r.virtfleetMs / r.rawMs).toFixed(2)}×`,
    `  longest gap between signs of life ${Math.round(r.maxSilenceMs)} ms (TTL ${r.ttlMs} ms); host.down ${r.hostDownEvents}; reschedules ${r.reschedules}`,
    ...burstTargets(r).map((t) => `  ${formatTarget(t)}`),
  ].join('\n');
}
