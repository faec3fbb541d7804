import type { DriverInfo, WorkloadSpec } from '@virtfleet/shared';

export interface ResourceVector {
  vcpus: number;
  memoryMiB: number;
  diskGiB: number;
}

/** A host as the scheduler sees it: a snapshot, never the live record. */
export interface HostSnapshot {
  id: string;
  up: boolean;
  capacity: ResourceVector;
  /** Sum of the demands of workloads placed on the host. */
  allocated: ResourceVector;
  drivers: readonly DriverInfo[];
  labels: Readonly<Record<string, string>>;
}

export interface PlacementRequest {
  workloadId: string;
  spec: WorkloadSpec;
}

/** One host's verdict: feasible, or the reason it was filtered out. */
export interface CandidateVerdict {
  hostId: string;
  feasible: boolean;
  /** Set when not feasible: one of the scheduler's reason constants, with detail. */
  reason?: string;
}

export interface PlacementDecision {
  workloadId: string;
  /** The chosen host; absent when nothing fits. */
  hostId?: string;
  candidates: CandidateVerdict[];
  /** One line for operators, e.g. "placed on h1" or "3 hosts: 2 insufficient memory, 1 down". */
  summary: string;
  decidedAt: string;
}

/**
 * Chooses a host for a workload. `place` is pure: it reads the snapshot and
 * changes nothing, so the same call serves real placement and dry runs.
 * It throws only for bugs; "nothing fits" is a decision without `hostId`.
 */
export interface Scheduler {
  readonly name: string;
  place(request: PlacementRequest, hosts: readonly HostSnapshot[]): PlacementDecision;
}

/** "3 hosts: 2 insufficient memory, 1 down" from the rejected candidates. */
export function summariseRejections(candidates: readonly CandidateVerdict[]): string {
  if (candidates.length === 0) return 'no hosts are registered';
  const counts = new Map<string, number>();
  for (const c of candidates) if (!c.feasible && c.reason) counts.set(c.reason, (counts.get(c.reason) ?? 0) + 1);
  const parts = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([reason, n]) => `${n} ${reason}`);
  return `${candidates.length} host${candidates.length === 1 ? '' : 's'}: ${parts.join(', ')}`;
}

export function demandOf(spec: WorkloadSpec): ResourceVector {
  return { vcpus: spec.vcpus, memoryMiB: spec.memory_mib, diskGiB: spec.disk_gib };
}
