import type { CloudEvent, StoppedReservation, WorkloadSpec, WorkloadState } from '@virtfleet/shared';

export const DESIRED_STATES = ['running', 'paused', 'stopped', 'deleted'] as const;
export type DesiredState = (typeof DESIRED_STATES)[number];

/** The coordinator's record of one workload. */
export interface Workload {
  id: string;
  spec: WorkloadSpec;
  /** Empty until placed. */
  hostId: string;
  desiredState: DesiredState;
  state: WorkloadState;
  /** Why the workload is in its state: the placement verdict while pending, the error when failed. */
  message: string;
  driverRef: string;
  /** IP addresses its host last reported for it. Absent: none. */
  addresses?: string[];
  /** The submit request id, for idempotent submission. */
  requestId: string;
  /** Arrival order and time in the admission queue, kept so a restart restores the queue as it was. */
  arrivalSeq: number;
  arrivalMs: number;
  /** Counts placements after the first (reschedules, re-creates); gives each copy its own create command. Absent: 0. */
  generation?: number;
  /** The host its last reschedule took it from; placing it after that reschedule never picks this host. Absent: never rescheduled. */
  leftHostId?: string;
  /** Set while the workload moves to another host; the target is booked too until it ends. */
  migration?: WorkloadMigration;
  createdAt: string;
  updatedAt: string;
  /**
   * The events this version of the record announced (its own change's:
   * submitted, placed, a state change). A leader that takes over publishes
   * those of recently stored records again, so an event its predecessor died
   * before sending still reaches the log; ids are kept, and the log drops
   * repeats. Absent: the change announced nothing.
   */
  events?: CloudEvent[];
}

export const MIGRATION_PHASES = ['preparing', 'stopping', 'transferring', 'switching', 'cancelling'] as const;
export type MigrationPhase = (typeof MIGRATION_PHASES)[number];

/** The durable record of a migration under way. */
export interface WorkloadMigration {
  /** Names the agent commands of this migration, so each runs once. */
  id: string;
  sourceHostId: string;
  targetHostId: string;
  /** live: moved while it runs (VMs). cold: stopped, its state carried, made and started again on the target. */
  mode: 'live' | 'cold';
  /** cold: whether it ran before it was stopped to move, so it runs again after. */
  wasRunning?: boolean;
  phase: MigrationPhase;
  startedAt: string;
  /** 0: the backend's default. */
  maxDowntimeMs: number;
  /** MiB/s; 0: unlimited. */
  bandwidthMiBs: number;
  requestId: string;
}

/** The stopped-reservation policy that applies to a workload: its spec's, else the cluster's. */
export function stoppedReservationOf(w: Pick<Workload, 'spec'>, clusterDefault: StoppedReservation): StoppedReservation {
  return w.spec.stopped_reservation ?? clusterDefault;
}

/** True for a workload an operator stopped whose booking on its host is released meanwhile. */
export function releasedWhileStopped(w: Workload, clusterDefault: StoppedReservation): boolean {
  return w.state === 'stopped' && w.desiredState === 'stopped' && stoppedReservationOf(w, clusterDefault) === 'release';
}

/** Placed, and still owed an agent command: its create not answered yet, or an accepted delete not carried out. */
export function isUnsettled(w: Readonly<Workload>): boolean {
  return w.hostId !== '' && (w.state === 'creating' || (w.desiredState === 'deleted' && w.state !== 'deleted'));
}

/**
 * States in which a workload holds resources on its host. A stopped one
 * holds them unless it is stopped on purpose and its policy releases them.
 */
export function holdsResources(w: Workload, stoppedReservation: StoppedReservation = 'keep'): boolean {
  return w.hostId !== '' && w.state !== 'deleted' && w.state !== 'failed' && !releasedWhileStopped(w, stoppedReservation);
}
