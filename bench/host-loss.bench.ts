import { performance } from 'node:perf_hooks';
import { removeContainersOf } from '../test/support/cleanup.js';
import { runningContainerCopies } from '../test/support/copies.js';
import { startCluster, waitForHostsUp, waitForState, type TestAgent, type TestCluster } from '../test/support/cluster.js';
import { agentConfigOf, coordinatorConfigOf } from '../test/support/configs.js';
import { waitFor, waitUntil } from '../test/support/wait.js';
import { formatTarget, type Target } from './targets.js';

/** The coordinator settings this benchmark starts its cluster with (the agents' fence timeout is the test cluster's). */
const COORDINATOR_OVERRIDES = { ttlMs: 3000, graceMs: 1000, fenceMarginMs: 1000, checkIntervalMs: 250 } as const;

/** The settings every trial ran under, read back from the daemons' own config files; printed with the results. */
export interface HostLossSettings {
  /** coordinator hosts.ttlMs */
  ttlMs: number;
  /** coordinator failover.graceMs */
  graceMs: number;
  /** coordinator failover.fenceMarginMs */
  fenceMarginMs: number;
  /** coordinator failover.checkIntervalMs */
  checkIntervalMs: number;
  /** the agents' fencing.timeoutMs */
  fenceTimeoutMs: number;
}

export interface HostLossTrial {
  /** ms from the fault to the coordinator listing the host as down. */
  detectionMs: number;
  /** ms from the fault to the coordinator having taken every workload off the host (rescheduled). */
  rescheduledMs: number;
  /** ms from the fault to every one of the host's workloads running on another host. */
  movedMs: number;
  /** fence-first only: ms from the fault to the last copy on the lost host having stopped (Docker's view). */
  fencedMs?: number;
}

export interface HostLossResult {
  settings: HostLossSettings;
  workloadsPerTrial: number;
  /** Agent SIGKILL, reschedule-mode containers. */
  reschedule: HostLossTrial[];
  /** Both proxies of a proxied agent cut, one fence-first container. */
  fenceFirst: HostLossTrial[];
}

const container = (name: string, failover: 'reschedule' | 'fence-first') => ({
  name,
  kind: 'container',
  image: 'virtfleet-test/busybox:latest',
  vcpus: 0.1,
  memory_mib: 16,
  command: ['/bin/sleep', '100000'],
  failover,
});

/**
 * Places `count` containers on a fresh agent (every other host cordoned
 * meanwhile) and returns their ids once all run there.
 */
async function placeOn(cluster: TestCluster, victim: TestAgent, others: readonly TestAgent[], names: string[], failover: 'reschedule' | 'fence-first'): Promise<string[]> {
  for (const o of others) await cluster.api.cordon(o.hostId, true);
  try {
    const ids: string[] = [];
    for (const name of names) ids.push((await cluster.api.submit({ request_id: name, spec: container(name, failover) })).id);
    for (const id of ids) {
      const w = await waitForState(cluster, id, 'running', 30_000);
      if (w.host_id !== victim.hostId) throw new Error(`${id} was placed on ${w.host_id}, not on ${victim.hostId}`);
    }
    return ids;
  } finally {
    for (const o of others) await cluster.api.cordon(o.hostId, false);
  }
}

/**
 * Polls the coordinator every 20 ms from `faultAt` until every workload runs
 * on a host other than `victim`, noting when the victim was first listed down.
 */
async function timeMove(
  cluster: TestCluster,
  victim: TestAgent,
  ids: readonly string[],
  faultAt: number,
  extra?: () => Promise<void>,
): Promise<{ detectionMs: number; rescheduledMs: number; movedMs: number }> {
  let detectionMs: number | undefined;
  let rescheduledMs: number | undefined;
  const { movedMs } = await waitFor(
    `workloads ${ids.join(', ')} to run elsewhere`,
    async () => {
      const [{ hosts }, ...ws] = await Promise.all([cluster.api.hosts(), ...ids.map((id) => cluster.api.get(id))]);
      await extra?.();
      if (detectionMs === undefined && hosts.find((h) => h.id === victim.hostId)?.status === 'down') detectionMs = performance.now() - faultAt;
      if (rescheduledMs === undefined && ws.every((w) => w.host_id !== victim.hostId)) rescheduledMs = performance.now() - faultAt;
      return ws.every((w) => w.state === 'running' && w.host_id !== '' && w.host_id !== victim.hostId) ? { movedMs: performance.now() - faultAt } : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 20 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${cluster.logs()}`);
  });
  // The host may be listed down only after its workloads moved (checks and polls interleave): wait for it.
  if (detectionMs === undefined) {
    await waitUntil('the host to be down', async () => (await cluster.api.hosts()).hosts.find((h) => h.id === victim.hostId)?.status === 'down', { timeoutMs: 10_000, intervalMs: 20 });
    detectionMs = performance.now() - faultAt;
  }
  return { detectionMs: Math.round(detectionMs), rescheduledMs: Math.round(rescheduledMs ?? movedMs), movedMs: Math.round(movedMs) };
}

/**
 * Host loss, end to end with real processes and Docker. One surviving agent
 * takes the workloads; each trial adds a fresh agent, places workloads on it
 * and then loses it:
 * - reschedule: the agent is SIGKILLed (its containers keep running, as on a
 *   host whose agent died); timed until its `workloadsPerTrial` containers run
 *   on the survivor.
 * - fence-first: the agent is proxied and both its proxies are cut; timed until
 *   its one fence-first container runs on the survivor, and until the cut-off
 *   agent had stopped its own copy. The cut-off agent's fence record cannot get
 *   out, so the bench confirms the host dead once it sees the copy stopped and
 *   the host down, as an operator would.
 */
export async function benchHostLoss(rescheduleTrials = 10, fenceFirstTrials = 5, workloadsPerTrial = 2): Promise<HostLossResult> {
  const o = COORDINATOR_OVERRIDES;
  const cluster = await startCluster({
    hostTtlMs: o.ttlMs,
    agents: [{ drivers: { docker: { enabled: true } } }],
    coordinatorExtra: { failover: { graceMs: o.graceMs, fenceMarginMs: o.fenceMarginMs, checkIntervalMs: o.checkIntervalMs } },
  });
  const survivor = cluster.agents[0]!;
  const coordinator = coordinatorConfigOf(cluster.coordinator);
  const settings: HostLossSettings = {
    ttlMs: coordinator.hosts.ttlMs,
    graceMs: coordinator.failover.graceMs,
    fenceMarginMs: coordinator.failover.fenceMarginMs,
    checkIntervalMs: coordinator.failover.checkIntervalMs,
    fenceTimeoutMs: agentConfigOf(survivor.process).fencing.timeoutMs,
  };
  /** Every victim must fence on the timeout the results are judged by. */
  const sameFenceTimeout = (victim: TestAgent) => {
    const timeoutMs = agentConfigOf(victim.process).fencing.timeoutMs;
    if (timeoutMs !== settings.fenceTimeoutMs) throw new Error(`agent ${victim.hostId} runs with fencing.timeoutMs ${timeoutMs}, not ${settings.fenceTimeoutMs}`);
  };
  const result: HostLossResult = { settings, workloadsPerTrial, reschedule: [], fenceFirst: [] };
  const victims: string[] = [];
  try {
    await waitForHostsUp(cluster);
    for (let trial = 0; trial < rescheduleTrials; trial++) {
      const victim = await cluster.addAgent({ drivers: { docker: { enabled: true } } });
      victims.push(victim.hostId);
      sameFenceTimeout(victim);
      await waitUntil(`host ${victim.hostId} to be up`, async () => (await cluster.api.hosts()).hosts.some((h) => h.id === victim.hostId && h.status === 'up'));
      const ids = await placeOn(cluster, victim, [survivor], Array.from({ length: workloadsPerTrial }, (_, i) => `loss-${trial}-${i}`), 'reschedule');
      victim.process.signal('SIGKILL');
      const killedAt = performance.now();
      result.reschedule.push(await timeMove(cluster, victim, ids, killedAt));
      for (const id of ids) await cluster.api.act('DeleteWorkload', { id });
      await removeContainersOf([victim.hostId]);
      // The victim is gone for good, as an operator would say, so that dead victims do not add up to more than
      // failover.maxDownFraction of the hosts and suspend failover for the next trial.
      await cluster.api.confirmDead(victim.hostId);
    }
    for (let trial = 0; trial < fenceFirstTrials; trial++) {
      const victim = await cluster.addAgent({ proxied: true, drivers: { docker: { enabled: true } } });
      victims.push(victim.hostId);
      sameFenceTimeout(victim);
      await waitUntil(`host ${victim.hostId} to be up`, async () => (await cluster.api.hosts()).hosts.some((h) => h.id === victim.hostId && h.status === 'up'));
      const [id] = await placeOn(cluster, victim, [survivor], [`fence-${trial}`], 'fence-first');
      let fencedMs: number | undefined;
      let confirmed = false;
      victim.proxies!.nats.cut();
      victim.proxies!.grpc.cut();
      const cutAt = performance.now();
      const timed = await timeMove(cluster, victim, [id!], cutAt, async () => {
        // The victim's copy is the only one until the move: zero copies means it fenced itself.
        if (fencedMs === undefined && (await runningContainerCopies(id!)) === 0) fencedMs = Math.round(performance.now() - cutAt);
        // Cut off, its fence record cannot reach NATS, and a lapsed lease is no proof: an operator who sees
        // the copy stopped confirms the host dead as soon as it is listed down (refused before).
        if (fencedMs !== undefined && !confirmed) confirmed = await cluster.api.confirmDead(victim.hostId).then(() => true, () => false);
      });
      if (fencedMs === undefined) throw new Error(`fence-${trial}: never saw the cut-off host's copy stopped before the new one ran (two copies at once?)\n${cluster.logs()}`);
      result.fenceFirst.push({ ...timed, fencedMs });
      await cluster.api.act('DeleteWorkload', { id: id! });
      await victim.process.stop('SIGKILL');
      await removeContainersOf([victim.hostId]);
    }
  } finally {
    await cluster.stop();
    await removeContainersOf([survivor.hostId, ...victims]);
  }
  return result;
}

const median = (xs: readonly number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? 0;
};
const max = (xs: readonly number[]) => Math.max(0, ...xs);

/** A fence-first workload moves at the later of the TTL and the fence timeout plus the margin (docs/failover.md). */
const fenceFirstBound = (s: HostLossSettings) => Math.max(s.ttlMs, s.fenceTimeoutMs + s.fenceMarginMs);

/**
 * Limits, each from the settings the trials ran under (docs/failover.md says
 * when each move is due; the rest is the failover check, placement and a
 * container start):
 * - reschedule: the host is listed down within 1.5 × TTL; its workloads run
 *   elsewhere within 1.5 × (TTL + grace) in the median and 2 × in every trial.
 * - fence-first: the cut-off agent stops its copy within the fence timeout plus
 *   the margin (what the coordinator assumes before it moves the workload);
 *   the workload runs elsewhere within 1.5 × its due time in the median, 2 × in
 *   every trial.
 */
export function hostLossTargets(r: HostLossResult): Target[] {
  const s = r.settings;
  const base = { benchmark: 'host-loss', bound: 'at most', unit: 'ms' } as const;
  const due = s.ttlMs + s.graceMs;
  const moved = r.reschedule.map((t) => t.movedMs);
  const targets: Target[] = [
    { ...base, what: 'reschedule: kill → host down, max', measured: max(r.reschedule.map((t) => t.detectionMs)), limit: 1.5 * s.ttlMs, basis: `1.5 × hosts.ttlMs ${s.ttlMs} ms` },
    { ...base, what: 'reschedule: kill → running elsewhere, median', measured: median(moved), limit: 1.5 * due, basis: `1.5 × (TTL + grace) ${due} ms` },
    { ...base, what: 'reschedule: kill → running elsewhere, max', measured: max(moved), limit: 2 * due, basis: `2 × (TTL + grace) ${due} ms` },
  ];
  if (r.fenceFirst.length > 0) {
    const fenceDue = fenceFirstBound(s);
    const fenceMoved = r.fenceFirst.map((t) => t.movedMs);
    targets.push(
      {
        ...base,
        what: 'fence-first: cut → copy stopped by its agent, max',
        measured: max(r.fenceFirst.map((t) => t.fencedMs ?? Infinity)),
        limit: s.fenceTimeoutMs + s.fenceMarginMs,
        basis: `fencing.timeoutMs ${s.fenceTimeoutMs} + failover.fenceMarginMs ${s.fenceMarginMs} ms`,
      },
      { ...base, what: 'fence-first: cut → running elsewhere, median', measured: median(fenceMoved), limit: 1.5 * fenceDue, basis: `1.5 × max(TTL, fence timeout + margin) ${fenceDue} ms` },
      { ...base, what: 'fence-first: cut → running elsewhere, max', measured: max(fenceMoved), limit: 2 * fenceDue, basis: `2 × max(TTL, fence timeout + margin) ${fenceDue} ms` },
    );
  }
  return targets;
}

export function reportHostLoss(r: HostLossResult): string {
  const s = r.settings;
  const row = (name: string, xs: readonly number[], baselineName: string, baseline: number) =>
    `  ${name.padEnd(40)} median ${String(median(xs)).padStart(6)} ms  max ${String(max(xs)).padStart(6)} ms  ratio to ${baselineName}: median ${(median(xs) / baseline).toFixed(2)}x, max ${(max(xs) / baseline).toFixed(2)}x`;
  const fenceBound = fenceFirstBound(s);
  const lines = [
    `host loss (coordinator hosts.ttlMs ${s.ttlMs}, failover.graceMs ${s.graceMs}, failover.fenceMarginMs ${s.fenceMarginMs}, failover.checkIntervalMs ${s.checkIntervalMs}; agent fencing.timeoutMs ${s.fenceTimeoutMs}; Docker containers)`,
    `reschedule: agent SIGKILL, ${r.reschedule.length} trials, ${r.workloadsPerTrial} containers each`,
    row('detection (kill → host down)', r.reschedule.map((t) => t.detectionMs), `TTL ${s.ttlMs} ms`, s.ttlMs),
    row('decision (kill → all rescheduled)', r.reschedule.map((t) => t.rescheduledMs), `TTL + grace ${s.ttlMs + s.graceMs} ms`, s.ttlMs + s.graceMs),
    row('host loss (kill → all running elsewhere)', r.reschedule.map((t) => t.movedMs), `TTL + grace ${s.ttlMs + s.graceMs} ms`, s.ttlMs + s.graceMs),
    `  samples (detection/rescheduled/moved): ${r.reschedule.map((t) => `${t.detectionMs}/${t.rescheduledMs}/${t.movedMs}`).join(', ')} ms`,
  ];
  if (r.fenceFirst.length > 0) {
    lines.push(
      `fence-first: both proxies of the agent cut, ${r.fenceFirst.length} trials, 1 fence-first container each`,
      row('self-fenced (cut → copy stopped)', r.fenceFirst.map((t) => t.fencedMs ?? 0), `fence timeout ${s.fenceTimeoutMs} ms`, s.fenceTimeoutMs),
      row('detection (cut → host down)', r.fenceFirst.map((t) => t.detectionMs), `TTL ${s.ttlMs} ms`, s.ttlMs),
      row('decision (cut → rescheduled)', r.fenceFirst.map((t) => t.rescheduledMs), `max(TTL, fence timeout + margin) ${fenceBound} ms`, fenceBound),
      row('host loss (cut → running elsewhere)', r.fenceFirst.map((t) => t.movedMs), `max(TTL, fence timeout + margin) ${fenceBound} ms`, fenceBound),
      `  samples (fenced/detection/rescheduled/moved): ${r.fenceFirst.map((t) => `${t.fencedMs}/${t.detectionMs}/${t.rescheduledMs}/${t.movedMs}`).join(', ')} ms`,
    );
  }
  lines.push(...hostLossTargets(r).map(formatTarget));
  return lines.join('\n');
}
