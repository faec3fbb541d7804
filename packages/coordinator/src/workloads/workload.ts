import type { WorkloadSpec, WorkloadState } from '@virtfleet/shared';

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
  /** The submit request id, for idempotent submission. */
  requestId: string;
  /** Arrival order and time in the admission queue, kept so a restart restores the queue as it was. */
  arrivalSeq: number;
  arrivalMs: number;
  /** Counts placements after the first (reschedules, re-creates); gives each copy its own create command. Absent: 0. */
  generation?: number;
  /** The host its last reschedule took it from; placing it after that reschedule never picks this host. Absent: never rescheduled. */
  leftHostId?: string;
  createdAt: string;
  updatedAt: string;
}

/** States in which a workload holds resources on its host. */
export function holdsResources(w: Workload): boolean {
  return w.hostId !== '' && w.state !== 'deleted' && w.state !== 'failed';
}
