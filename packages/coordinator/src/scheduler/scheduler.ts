import { diskDemandGiB, hostPortKey, type DriverInfo, type IsolationLevel, type WorkloadKind, type WorkloadSpec } from '@virtfleet/shared';
import { addCpus } from './milli-cpus.js';

export interface ResourceVector {
  /** Exact to the milli-CPU wherever it is a sum of bookings (see milli-cpus.ts). */
  vcpus: number;
  memoryMiB: number;
  diskGiB: number;
}

/**
 * A host as the scheduler sees it during one pass. Built from telemetry and
 * the store; `assume` updates it as the pass places workloads, so two
 * placements in one pass never book the same capacity.
 */
export interface HostSnapshot {
  id: string;
  /** Up and accepting new workloads. */
  schedulable: boolean;
  /** Why not schedulable, e.g. "down". */
  unschedulableReason?: string;
  capacity: ResourceVector;
  /** (capacity - reserved) * overcommit ratio; disk is never overcommitted. */
  allocatable: ResourceVector;
  /** Sum of the demands of workloads placed on the host. */
  allocated: ResourceVector;
  /** The part of `allocated` that stopped workloads keep booked. Absent: none. */
  heldByStopped?: ResourceVector;
  overcommit: { cpu: number; memory: number };
  drivers: readonly DriverInfo[];
  /** Kinds with a healthy driver. */
  kinds: ReadonlySet<WorkloadKind>;
  labels: Readonly<Record<string, string>>;
  trustLevel: number;
  features: ReadonlySet<string>;
  /** Host CPU utilisation from telemetry, smoothed (EWMA), 0-1. */
  cpuUtilisation: number;
  /** Memory the host reports available, minus what placements since that report took. */
  memoryAvailableMiB: number;
  workloadCount: number;
  /** The most workloads the host takes (its agent refuses more). */
  maxWorkloads: number;
  /** Workloads per tenant on the host. */
  tenants: Map<string, number>;
  /** Host networks workloads can join. */
  networks: ReadonlySet<string>;
  /** Digests of the catalog images the host holds in its cache. */
  images: ReadonlySet<string>;
  /** Published ports booked on the host, as `tcp/8080`. */
  ports: Set<string>;
  /** Anti-affinity groups with a member on the host. */
  antiAffinityGroups: Set<string>;
  /** The strongest isolation any workload on the host asked for, and its tenant. */
  isolation: { level: IsolationLevel; tenant: string } | undefined;
}

export interface PlacementRequest {
  workloadId: string;
  spec: WorkloadSpec;
  /** Hosts this placement must not use, whatever the spec says: the host a rescheduled workload is leaving. */
  avoidHosts?: readonly string[];
}

export function demandOf(spec: WorkloadSpec): ResourceVector {
  return { vcpus: spec.vcpus, memoryMiB: spec.memory_mib, diskGiB: diskDemandGiB(spec) };
}

/** Books `spec` on the snapshot, as if placed. */
export function assume(host: HostSnapshot, spec: WorkloadSpec): void {
  const d = demandOf(spec);
  host.allocated = { vcpus: addCpus(host.allocated.vcpus, d.vcpus), memoryMiB: host.allocated.memoryMiB + d.memoryMiB, diskGiB: host.allocated.diskGiB + d.diskGiB };
  host.memoryAvailableMiB -= d.memoryMiB;
  host.workloadCount++;
  host.tenants.set(spec.tenant, (host.tenants.get(spec.tenant) ?? 0) + 1);
  if (spec.security.anti_affinity_group) host.antiAffinityGroups.add(spec.security.anti_affinity_group);
  for (const p of spec.ports ?? []) host.ports.add(hostPortKey(p));
  const level = spec.security.isolation;
  if (level !== 'shared' && (host.isolation === undefined || host.isolation.level === 'tenant')) host.isolation = { level, tenant: spec.tenant };
}

/** Undoes `assume`, when a workload leaves the host (the simulator's completions). */
export function release(host: HostSnapshot, spec: WorkloadSpec, remaining: readonly WorkloadSpec[]): void {
  const d = demandOf(spec);
  host.allocated = { vcpus: addCpus(host.allocated.vcpus, d.vcpus, -1), memoryMiB: host.allocated.memoryMiB - d.memoryMiB, diskGiB: host.allocated.diskGiB - d.diskGiB };
  host.memoryAvailableMiB += d.memoryMiB;
  host.workloadCount--;
  const left = (host.tenants.get(spec.tenant) ?? 1) - 1;
  if (left > 0) host.tenants.set(spec.tenant, left);
  else host.tenants.delete(spec.tenant);
  host.antiAffinityGroups = new Set(remaining.map((s) => s.security.anti_affinity_group).filter((g): g is string => Boolean(g)));
  host.ports = new Set(remaining.flatMap((s) => (s.ports ?? []).map(hostPortKey)));
  host.isolation = undefined;
  for (const s of remaining) if (s.security.isolation !== 'shared' && (host.isolation === undefined || host.isolation.level === 'tenant')) host.isolation = { level: s.security.isolation, tenant: s.tenant };
}

/** One filter's verdict on one host. */
export interface FilterVerdict {
  plugin: string;
  status: FilterStatus;
  reason?: string;
}

/**
 * ok: the host passes. unschedulable: not now (resources, co-tenants), perhaps
 * later. unresolvable: never, whatever runs there (no driver, trust level).
 */
export type FilterStatus = 'ok' | 'unschedulable' | 'unresolvable';

export interface ScoreDetail {
  plugin: string;
  /** 0-100. */
  score: number;
  weight: number;
}

export interface CandidateRecord {
  hostId: string;
  feasible: boolean;
  /**
   * Every filter's verdict, in run order. On a rejected host the first verdict
   * that is not ok is the one that rejected it, and the only one counted in
   * `rejections`; the filters after it ran only so that the record shows them.
   * Read-only: shared between records.
   */
  filters: readonly FilterVerdict[];
  /** Feasible hosts only. */
  scores: ScoreDetail[];
  /** Weighted mean of the scores, 0-100. */
  total: number;
}

/** Everything needed to explain one placement decision. */
export interface PlacementRecord {
  workloadId: string;
  /** The chosen host; absent when nothing fits. */
  hostId?: string;
  /** One line: "placed on h1: score 72.5, 4.1 ahead of h2" or "5 hosts: 3 insufficient memory, 2 trust level below 2". */
  summary: string;
  /** Every feasible host evaluated, and the first rejected ones (up to the scheduler's limit; `rejections` counts all), each with every filter's verdict. */
  candidates: CandidateRecord[];
  runnerUp?: string;
  /** Winner's total minus the runner-up's. */
  margin?: number;
  hostsTotal: number;
  /** Hosts the filters ran on; fewer than hostsTotal when enough feasible hosts were found early. */
  hostsEvaluated: number;
  /** Rejected hosts per reason, each host counted once under the first filter that rejected it. */
  rejections: Record<string, number>;
  /** True when no host could ever run the workload, even empty. */
  unresolvable: boolean;
  decidedAt: string;
}

/**
 * Chooses a host. `place` reads the snapshots and changes nothing, so one
 * implementation serves placement, dry runs and the simulator. It throws only
 * for bugs: "nothing fits" is a record without `hostId`.
 */
export interface Scheduler {
  place(request: PlacementRequest, hosts: readonly HostSnapshot[]): PlacementRecord;
}

/** "5 hosts: 3 insufficient memory, 2 trust level below 2". */
export function summariseRejections(hostsTotal: number, rejections: Readonly<Record<string, number>>): string {
  if (hostsTotal === 0) return 'no hosts are registered';
  const parts = Object.entries(rejections)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([reason, n]) => `${n} ${reason}`);
  return `${hostsTotal} host${hostsTotal === 1 ? '' : 's'}: ${parts.join(', ')}`;
}
