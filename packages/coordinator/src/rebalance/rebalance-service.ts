import { Worker } from 'node:worker_threads';
import { InvalidArgumentError, unary, type Logger, type pb, type StoppedReservation } from '@virtfleet/shared';
import type { HostSnapshot } from '../scheduler/scheduler.js';
import { holdsResources, type Workload } from '../workloads/workload.js';
import { pinnedReason } from './movability.js';
import { REBALANCE_GOALS, type PlanWorkload, type RebalanceGoal, type RebalanceInput, type RebalanceOptions, type RebalancePlan, type UtilisationSpread } from './rebalance.js';

/** What the planner reads from the coordinator: the workload controller's view. */
export interface RebalanceSource {
  /** Every host as the scheduler sees it now (`buildSnapshots`). */
  snapshots(): HostSnapshot[];
  workloads(): Workload[];
  /** A command for the workload is on its way to an agent. */
  isBusy(id: string): boolean;
  readonly stoppedReservation: StoppedReservation;
}

/** Computes a plan; may run elsewhere than the caller's thread. */
export type PlanFunction = (input: RebalanceInput, options: RebalanceOptions) => Promise<RebalancePlan>;

/**
 * The planner in a worker thread, so that the search never blocks the
 * coordinator's event loop. One worker per plan; it ends with it.
 */
export const planInWorker: PlanFunction = (input, options) =>
  new Promise<RebalancePlan>((resolve, reject) => {
    const worker = new Worker(new URL('./rebalance-worker.js', import.meta.url), { workerData: { input, options } });
    worker.once('message', (plan: RebalancePlan) => resolve(plan));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the rebalance planner's worker ended with code ${code} before answering`)));
  });

/**
 * The planner's input from the coordinator's records: every workload that
 * holds resources books its host, as `HostBookings` counts it (a migration
 * under way books its target too, listed there pinned), and each is pinned
 * unless `pinnedReason` lets it move. A host is up unless its snapshot says
 * it is unschedulable for another reason than a cordon.
 */
export function clusterInput(source: RebalanceSource): RebalanceInput {
  const hosts = source.snapshots();
  const up = new Map(hosts.map((h) => [h.id, h.schedulable || h.unschedulableReason === 'cordoned']));
  const workloads: PlanWorkload[] = [];
  for (const w of source.workloads()) {
    if (!holdsResources(w, source.stoppedReservation)) continue;
    const pinned = pinnedReason({
      spec: w.spec,
      state: w.state,
      desiredState: w.desiredState,
      migrating: w.migration !== undefined,
      busy: source.isBusy(w.id),
      hostUp: up.get(w.hostId) ?? false,
    });
    workloads.push({ id: w.id, name: w.spec.name, spec: w.spec, hostId: w.hostId, ...(pinned === undefined ? {} : { pinned }) });
    if (w.migration && w.migration.targetHostId !== w.hostId)
      workloads.push({ id: w.id, name: w.spec.name, spec: w.spec, hostId: w.migration.targetHostId, pinned: `migrating here from ${w.hostId}` });
  }
  return { hosts, workloads };
}

const spreadOf = (s: UtilisationSpread): pb.RebalanceSpread__Output => ({ max: s.max, mean: s.mean, stddev: s.stddev });

/** A plan on the wire; also the CLI's JSON, whichever way the plan was made. */
export function toProtoRebalancePlan(plan: RebalancePlan): pb.RebalancePlan__Output {
  return {
    goal: plan.goal,
    moves: plan.moves.map((m) => ({ workload_id: m.workloadId, name: m.name, from: m.from, to: m.to })),
    hosts_used_before: plan.hostsUsedBefore,
    hosts_used_after: plan.hostsUsedAfter,
    gain: {
      hosts_freed: plan.gain.hostsFreed,
      freed_hosts: plan.gain.freedHosts,
      memory: { before: spreadOf(plan.gain.memory.before), after: spreadOf(plan.gain.memory.after) },
      cpu: { before: spreadOf(plan.gain.cpu.before), after: spreadOf(plan.gain.cpu.after) },
    },
    hosts_lower_bound: plan.hostsLowerBound,
    pinned: plan.pinned.map((p) => ({ workload_id: p.workloadId, name: p.name, host: p.hostId, reason: p.reason })),
    truncated: plan.truncated,
  };
}

/**
 * PlanRebalance of virtfleet.v1.Coordinator: a plan from the current
 * records, changing nothing, so any coordinator answers it, leader or not.
 * Plans are made one at a time; a request waits for the one before.
 */
export function rebalanceHandlers(source: RebalanceSource, log: Logger, plan: PlanFunction = planInWorker): Pick<pb.CoordinatorHandlers, 'PlanRebalance'> {
  let previous: Promise<unknown> = Promise.resolve();
  return {
    PlanRebalance: unary<pb.PlanRebalanceRequest__Output, pb.RebalancePlan>(log, 'PlanRebalance', async (req) => {
      if (!(REBALANCE_GOALS as readonly string[]).includes(req.goal)) throw new InvalidArgumentError('goal', `must be one of ${REBALANCE_GOALS.join(', ')}`);
      const goal = req.goal as RebalanceGoal;
      const turn = previous.then(async () => {
        const input = clusterInput(source);
        const started = Date.now();
        const result = await plan(input, { goal });
        log.info({ goal, moves: result.moves.length, hostsUsedBefore: result.hostsUsedBefore, hostsUsedAfter: result.hostsUsedAfter, ms: Date.now() - started }, 'rebalance planned');
        return result;
      });
      previous = turn.catch(() => undefined);
      return toProtoRebalancePlan(await turn);
    }),
  };
}
