import type { Telemetry, WorkloadView } from '@virtfleet/shared';

/** A telemetry message without its workload part, which a host's `workloads` view keeps whole. */
export type HostTelemetry = Omit<Telemetry, 'workloads' | 'workloads_base_seq' | 'workloads_removed'>;

/**
 * `up`: reporting and schedulable. `down`: silent past the TTL.
 * `recovering`: reporting again after being down, but not schedulable until
 * the leader has stopped the copies it no longer should run.
 */
export type HostStatus = 'up' | 'down' | 'recovering';

/** The coordinator's view of one host, built from its telemetry. */
export interface Host {
  id: string;
  status: HostStatus;
  /** Milliseconds since the epoch when the last heartbeat or telemetry arrived. */
  lastSeenMs: number;
  /** The last heartbeat accepted, if any (agents before heartbeats send none). */
  lastHeartbeat?: { bootId: string; seq: number; time: string; receivedMs: number };
  /** The last telemetry message, as validated; its workloads are in `workloads`. */
  telemetry: HostTelemetry;
  /** The host's workloads, rebuilt from its full lists and deltas; use it as one observation only while `complete`. */
  workloads: WorkloadView;
  /** Milliseconds since the epoch when `telemetry` was applied here; minus its `published_at`, the ingest lag. Set by the registry. */
  telemetryAppliedMs?: number;
  /** Host CPU utilisation smoothed over telemetry samples (EWMA), 0-1. */
  cpuUtilisationSmoothed: number;
  /** An operator stopped new placements here. */
  cordoned: boolean;
}

