import { InvalidArgumentError } from '@virtfleet/shared';
import { AdmissionQueue } from '../scheduler/admission-queue.js';
import { PLACEMENT_POLICIES, type PlacementPolicy, type QueuePolicy } from '../scheduler/catalog.js';
import { createScheduler } from '../scheduler/create-scheduler.js';
import { toMilliCpus } from '../scheduler/milli-cpus.js';
import { release, type HostSnapshot } from '../scheduler/scheduler.js';
import { simSnapshot, type SimHost } from './hosts-file.js';
import type { Arrival } from './trace.js';

export interface SimulationOptions {
  arrivals: readonly Arrival[];
  hosts: readonly SimHost[];
  queuePolicy: QueuePolicy;
  placement: PlacementPolicy;
  /** Priority points per minute waited, under the priority policy. @default 1 */
  agingPerMinute?: number;
  /** false: strict queue order, nothing passes a blocked head. @default true */
  backfill?: boolean;
  /**
   * Feasible hosts to find before scoring; 0 evaluates every host, so each
   * placement is the best one and results do not depend on where the
   * scheduler's round-robin start happens to be. @default 0
   */
  candidateLimit?: number;
  /** Scorer weights over the placement policy's defaults, as in the coordinator's config. @default {} */
  weights?: Record<string, number>;
  /** Equal time buckets in the utilisation series. @default 10 */
  buckets?: number;
}

/** Mean and nearest-rank percentiles, in seconds; all 0 when there are no values. */
export interface Distribution {
  mean: number;
  p50: number;
  p95: number;
}

export type JobOutcome = 'completed' | 'rejected' | 'unplaced';

export interface JobResult {
  name: string;
  /** The trace line, when the arrival came from a file. */
  line?: number;
  tenant: string;
  priority: number;
  /** Seconds. */
  arrival: number;
  runtime: number;
  outcome: JobOutcome;
  /** Completed jobs only. */
  host?: string;
  start?: number;
  end?: number;
  /** start - arrival. */
  wait?: number;
  /** wait + runtime. */
  response?: number;
  /** Rejected and unplaced jobs: the scheduler's summary, e.g. "4 hosts: 4 insufficient memory". */
  reason?: string;
}

export interface UtilisationBucket {
  /** Seconds, [start, end). */
  start: number;
  end: number;
  cpu: number;
  memory: number;
}

/**
 * One run's result; `virtfleet simulate -o json` prints it as it is, so its
 * keys are snake_case like the API's (docs/simulator.md, "JSON output").
 */
export interface SimulationResult {
  queue_policy: QueuePolicy;
  placement: PlacementPolicy;
  backfill: boolean;
  aging_per_minute: number;
  hosts: number;
  jobs: number;
  /** Started, and so completed: the simulation runs every placed job to its end. */
  placed: number;
  rejected: number;
  /** Still queued when no event was left: only a blocked strict queue or a demand no empty host meets for a non-permanent reason. */
  unplaced: number;
  /** Over placed jobs. */
  waiting: Distribution;
  response: Distribution;
  /** Seconds from 0 to the last completion; 0 when nothing ran. */
  makespan: number;
  utilisation: {
    /** Time-weighted mean over [0, makespan] of allocated / allocatable vcpus, summed over hosts, 0-1. */
    cpu: number;
    memory: number;
    series: UtilisationBucket[];
  };
  fragmentation: {
    /** Mean of the samples, 0-1; 0 when nothing ever waited. */
    mean: number;
    /** Scheduling moments that left something waiting, where it was sampled. */
    samples: number;
  };
  /** Rejected jobs per reason, most frequent first. */
  rejections: { reason: string; count: number }[];
  job_results: JobResult[];
}

interface Job {
  id: string;
  seq: number;
  arrival: Arrival;
  arrivalMs: number;
  runtimeMs: number;
  hostId?: string;
  startMs?: number;
  endMs?: number;
  rejected?: string;
  lastReason?: string;
}

interface Segment {
  fromMs: number;
  toMs: number;
  cpu: number;
  memory: number;
}

/**
 * Replays arrivals against the hosts with the coordinator's own admission
 * queue and scheduler. Discrete events: at each time something arrives or
 * completes, completions release their resources first, then arrivals join
 * the queue, then the queue is tried once. Times resolve to the millisecond.
 * Pure and deterministic: no wall clock, no randomness.
 * @throws InvalidArgumentError for an unknown queue or placement policy.
 */
export function simulate(options: SimulationOptions): SimulationResult {
  const agingPerMinute = options.agingPerMinute ?? 1;
  const backfill = options.backfill ?? true;
  const bucketCount = options.buckets ?? 10;
  if (!(PLACEMENT_POLICIES as readonly string[]).includes(options.placement)) throw new InvalidArgumentError('placement', `must be one of ${PLACEMENT_POLICIES.join(', ')}`);
  if (!Number.isInteger(bucketCount) || bucketCount < 1) throw new InvalidArgumentError('buckets', 'must be a whole number of at least 1');
  if (!Number.isFinite(agingPerMinute) || agingPerMinute < 0) throw new InvalidArgumentError('agingPerMinute', 'must be a number of at least 0');

  const queue = new AdmissionQueue({ policy: options.queuePolicy, agingPerMinute, backfill });
  const scheduler = createScheduler({ placement: options.placement, weights: options.weights ?? {}, candidateLimit: options.candidateLimit ?? 0 });
  const hosts: HostSnapshot[] = options.hosts.map(simSnapshot);
  const hostById = new Map(hosts.map((h) => [h.id, h]));
  const onHost = new Map<string, Job[]>(hosts.map((h) => [h.id, []]));

  // Arrival order is time order, file order for ties: it is FCFS's order and every policy's tie-breaker.
  const jobs: Job[] = options.arrivals
    .map((arrival, i) => ({ arrival, i }))
    .sort((a, b) => a.arrival.time - b.arrival.time || a.i - b.i)
    .map(({ arrival }, seq) => ({
      id: `${seq}:${arrival.spec.name}`,
      seq,
      arrival,
      arrivalMs: Math.round(arrival.time * 1000),
      runtimeMs: Math.max(1, Math.round(arrival.runtime * 1000)),
    }));
  const byId = new Map(jobs.map((j) => [j.id, j]));

  // Running jobs by completion time, then arrival order.
  const running: Job[] = [];
  const segments: Segment[] = [];
  const fragmentationSamples: number[] = [];
  let nextArrival = 0;
  let lastMs = 0;
  let blockedBehind: string | undefined;

  for (;;) {
    const nextArrivalMs = jobs[nextArrival]?.arrivalMs ?? Infinity;
    const nextCompletionMs = running[0]?.endMs ?? Infinity;
    const now = Math.min(nextArrivalMs, nextCompletionMs);
    if (now === Infinity) break;
    if (now > lastMs) segments.push({ fromMs: lastMs, toMs: now, ...allocation(hosts) });
    lastMs = now;

    while (running[0]?.endMs === now) {
      const job = running.shift()!;
      const host = hostById.get(job.hostId!)!;
      const remaining = onHost.get(host.id)!.filter((j) => j !== job);
      onHost.set(host.id, remaining);
      release(host, job.arrival.spec, remaining.map((j) => j.arrival.spec));
    }
    for (let job = jobs[nextArrival]; job !== undefined && job.arrivalMs === now; job = jobs[++nextArrival]) {
      queue.add(job.id, job.arrival.spec, job.arrivalMs, job.seq);
    }

    blockedBehind = undefined;
    for (;;) {
      const pass = queue.pass(scheduler, hosts, now);
      for (const { entry, record } of pass.placed) {
        const job = byId.get(entry.workloadId)!;
        job.hostId = record.hostId!;
        job.startMs = now;
        job.endMs = now + job.runtimeMs;
        onHost.get(job.hostId)!.push(job);
        insertByCompletion(running, job);
      }
      let headRejected = false;
      for (const { entry, record } of pass.waiting) {
        const job = byId.get(entry.workloadId)!;
        job.lastReason = record.summary;
        if (!record.unresolvable) continue;
        queue.remove(entry.workloadId);
        job.rejected = record.summary;
        if (entry.workloadId === pass.blockedBehind) headRejected = true;
      }
      blockedBehind = pass.blockedBehind;
      // A strict queue stopped at a head that can never run: drop it and let the rest be tried now.
      if (!headRejected || queue.size === 0) break;
    }
    if (queue.size > 0) fragmentationSamples.push(fragmentation(hosts));
  }

  const blocker = blockedBehind === undefined ? undefined : byId.get(blockedBehind);
  if (blocker) {
    for (const entry of queue.ordered(lastMs)) {
      if (entry.workloadId !== blocker.id) byId.get(entry.workloadId)!.lastReason = `behind ${blocker.arrival.spec.name} in strict order`;
    }
  }
  const queued = new Set(queue.ordered(lastMs).map((e) => e.workloadId));

  const jobResults = jobs.map((job): JobResult => {
    const spec = job.arrival.spec;
    const base = {
      name: spec.name,
      ...(job.arrival.line === undefined ? {} : { line: job.arrival.line }),
      tenant: spec.tenant,
      priority: spec.priority,
      arrival: job.arrivalMs / 1000,
      runtime: job.runtimeMs / 1000,
    };
    if (job.startMs !== undefined && job.endMs !== undefined) {
      const wait = (job.startMs - job.arrivalMs) / 1000;
      return { ...base, outcome: 'completed', host: job.hostId!, start: job.startMs / 1000, end: job.endMs / 1000, wait, response: wait + job.runtimeMs / 1000 };
    }
    if (job.rejected !== undefined) return { ...base, outcome: 'rejected', reason: job.rejected };
    if (!queued.has(job.id)) throw new Error(`simulator bug: job ${job.id} neither placed, rejected nor queued`);
    return { ...base, outcome: 'unplaced', reason: job.lastReason ?? 'never tried' };
  });

  const completed = jobResults.filter((j) => j.outcome === 'completed');
  const makespanMs = jobs.reduce((m, j) => Math.max(m, j.endMs ?? 0), 0);
  const window = segments.filter((s) => s.fromMs < makespanMs).map((s) => ({ ...s, toMs: Math.min(s.toMs, makespanMs) }));
  const reasons = new Map<string, number>();
  for (const j of jobResults) if (j.outcome === 'rejected') reasons.set(j.reason!, (reasons.get(j.reason!) ?? 0) + 1);

  return {
    queue_policy: queue.policy,
    placement: options.placement,
    backfill,
    aging_per_minute: agingPerMinute,
    hosts: hosts.length,
    jobs: jobs.length,
    placed: completed.length,
    rejected: jobResults.filter((j) => j.outcome === 'rejected').length,
    unplaced: jobResults.filter((j) => j.outcome === 'unplaced').length,
    waiting: distribution(completed.map((j) => j.wait!)),
    response: distribution(completed.map((j) => j.response!)),
    makespan: makespanMs / 1000,
    utilisation: {
      cpu: timeWeightedMean(window, 0, makespanMs, 'cpu'),
      memory: timeWeightedMean(window, 0, makespanMs, 'memory'),
      series: Array.from({ length: bucketCount }, (_, k): UtilisationBucket => {
        const from = (makespanMs * k) / bucketCount;
        const to = (makespanMs * (k + 1)) / bucketCount;
        return { start: from / 1000, end: to / 1000, cpu: timeWeightedMean(window, from, to, 'cpu'), memory: timeWeightedMean(window, from, to, 'memory') };
      }),
    },
    fragmentation: { mean: mean(fragmentationSamples), samples: fragmentationSamples.length },
    rejections: [...reasons].map(([reason, count]) => ({ reason, count })).sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason)),
    job_results: jobResults,
  };
}

function insertByCompletion(running: Job[], job: Job): void {
  let lo = 0;
  let hi = running.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const other = running[mid]!;
    if (other.endMs! < job.endMs! || (other.endMs === job.endMs && other.seq < job.seq)) lo = mid + 1;
    else hi = mid;
  }
  running.splice(lo, 0, job);
}

/** Allocated over allocatable, summed over all hosts (CPU in whole milli-CPUs, so the sums are exact). */
function allocation(hosts: readonly HostSnapshot[]): { cpu: number; memory: number } {
  let cpu = 0;
  let cpuTotal = 0;
  let memory = 0;
  let memoryTotal = 0;
  for (const h of hosts) {
    cpu += toMilliCpus(h.allocated.vcpus);
    cpuTotal += toMilliCpus(h.allocatable.vcpus);
    memory += h.allocated.memoryMiB;
    memoryTotal += h.allocatable.memoryMiB;
  }
  return { cpu: cpuTotal > 0 ? cpu / cpuTotal : 0, memory: memoryTotal > 0 ? memory / memoryTotal : 0 };
}

/**
 * 1 - (largest free memory on one host / free memory on all hosts), free
 * being allocatable minus allocated. 0: all free memory is on one host; near
 * 1: it is scattered in small pieces. 0 when nothing is free.
 */
export function fragmentation(hosts: readonly HostSnapshot[]): number {
  let largest = 0;
  let total = 0;
  for (const h of hosts) {
    const free = Math.max(0, h.allocatable.memoryMiB - h.allocated.memoryMiB);
    largest = Math.max(largest, free);
    total += free;
  }
  return total > 0 ? 1 - largest / total : 0;
}

function timeWeightedMean(segments: readonly Segment[], fromMs: number, toMs: number, key: 'cpu' | 'memory'): number {
  if (toMs <= fromMs) return 0;
  let sum = 0;
  for (const s of segments) {
    const overlap = Math.min(s.toMs, toMs) - Math.max(s.fromMs, fromMs);
    if (overlap > 0) sum += overlap * s[key];
  }
  return sum / (toMs - fromMs);
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
}

/** Nearest rank: the smallest value with at least p% of the values at or below it. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  // p * n first: (p / 100) * n can land a hair above a whole number and round up a rank.
  const rank = Math.max(1, Math.ceil((p * sorted.length) / 100));
  return sorted[rank - 1]!;
}

function distribution(values: readonly number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  return { mean: mean(sorted), p50: percentile(sorted, 50), p95: percentile(sorted, 95) };
}
