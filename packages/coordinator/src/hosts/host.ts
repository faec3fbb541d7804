import type { Telemetry } from '@virtfleet/shared';

export type HostStatus = 'up' | 'down';

/** The coordinator's view of one host, built from its telemetry. */
export interface Host {
  id: string;
  status: HostStatus;
  /** Milliseconds since the epoch when the last telemetry arrived. */
  lastSeenMs: number;
  /** The last telemetry message, as validated. */
  telemetry: Telemetry;
  /** Host CPU utilisation smoothed over telemetry samples (EWMA), 0-1. */
  cpuUtilisationSmoothed: number;
  /** An operator stopped new placements here. */
  cordoned: boolean;
}

