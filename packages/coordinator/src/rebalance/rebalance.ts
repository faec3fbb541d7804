import type { WorkloadSpec } from '@virtfleet/shared';
import type { HostSnapshot } from '../scheduler/scheduler.js';

export const REBALANCE_GOALS = ['consolidate', 'balance'] as const;
/**
 * consolidate: free as many hosts as possible (power saving, like vSphere
 * DPM). balance: even out memory and CPU utilisation over the hosts in use
 * (like DRS), never putting a workload on a host that had none.
 */
export type RebalanceGoal = (typeof REBALANCE_GOALS)[number];

/** A workload booked on one of the hosts, where it is now. */
export interface PlanWorkload {
  id: string;
  name: string;
  spec: WorkloadSpec;
  /** The host its booking is on. */
  hostId: string;
  /**
   * Set when the workload must stay where it is, saying why ("stopped",
   * "migrating", ...); `movability` decides it for the coordinator's records.
   * A pinned workload still books its host.
   */
  pinned?: string;
}

export interface RebalanceInput {
  /**
   * Every host, with the bookings of `workloads` applied: as `buildSnapshots`
   * makes them, or simulated hosts with each workload `assume`d. Not changed.
   */
  hosts: readonly HostSnapshot[];
  /**
   * Every booking on those hosts, one entry per host booked: a workload that
   * books two hosts (a migration under way holds its target too) appears on
   * each, pinned. Workloads on hosts not in `hosts` are ignored.
   */
  workloads: readonly PlanWorkload[];
}

export interface RebalanceOptions {
  goal: RebalanceGoal;
  /** Seed of the search's pseudo-random choices; the same input, options and seed give the same plan. @default 1 */
  seed?: number;
  /**
   * How much searching consolidate may do, in evaluations: candidate
   * exchanges of workloads weighed, and filter calls (a few million a second
   * on one core). The search stops earlier once it reaches the lower bound,
   * or when no host it tries can be emptied. @default 5_000_000
   */
  effort?: number;
  /**
   * Wall-clock limit for the search, ms. The only input that can make two
   * runs differ, and only when reached: the plan then says `truncated`.
   * @default 10_000
   */
  timeLimitMs?: number;
  /**
   * balance: the least a move must lower the load imbalance (the sum over
   * hosts of capacity share × (utilisation − fleet utilisation)², memory plus
   * CPU) to be worth making. Moving a twentieth of a host's memory between
   * hosts 7 points apart lowers it by about 0.002. @default 0.002
   */
  minImprovement?: number;
}

/** One migration: `workloadId` leaves `from` for `to`. */
export interface PlannedMove {
  workloadId: string;
  name: string;
  from: string;
  to: string;
}

/** Utilisation (booked / allocatable, 0-1 and above when overcommitted past it) over the hosts in use. */
export interface UtilisationSpread {
  max: number;
  mean: number;
  /** Population standard deviation over the hosts in use. */
  stddev: number;
}

export interface RebalanceGain {
  /** hostsUsedBefore − hostsUsedAfter. */
  hostsFreed: number;
  /** Hosts in use before and empty after, by id. */
  freedHosts: string[];
  memory: { before: UtilisationSpread; after: UtilisationSpread };
  cpu: { before: UtilisationSpread; after: UtilisationSpread };
}

export interface RebalancePlan {
  goal: RebalanceGoal;
  /**
   * In order. Executed one at a time in this order, every move's target
   * passes every scheduler filter at that moment, with the workload still
   * booked on its source (as a migration holds both), and the plan's end
   * state is reached. A workload usually moves once; it moves again when a
   * swap parks it on a third host on the way, or when no order moving each
   * workload once exists and the plan goes host by host.
   */
  moves: PlannedMove[];
  /** Hosts with at least one booking, before and after the moves. */
  hostsUsedBefore: number;
  hostsUsedAfter: number;
  /** No placement of these workloads on these hosts uses fewer hosts than this (capacity bound per resource). */
  hostsLowerBound: number;
  gain: RebalanceGain;
  /** Workloads that had to stay, and why. */
  pinned: { workloadId: string; name: string; hostId: string; reason: string }[];
  /** The time limit cut the search short; a plan, valid, is returned anyway. */
  truncated: boolean;
}

/**
 * Computes a plan of migrations and changes nothing: neither the input
 * snapshots nor any state. Pure apart from the clock behind `timeLimitMs`.
 */
export interface RebalancePlanner {
  /**
   * @throws InvalidArgumentError when the input is inconsistent: a host's
   *   snapshot books a different number of workloads than `workloads` lists
   *   on it, or two hosts share an id.
   */
  plan(input: RebalanceInput, options: RebalanceOptions): RebalancePlan;
}
