/**
 * The API's messages as the HTTP/JSON gateway answers them (proto field
 * names, 64-bit integers as decimal strings), only the fields the dashboard
 * reads. proto/virtfleet/v1/coordinator.proto is the reference.
 */

export type Role = 'viewer' | 'operator' | 'admin';

/** GET /v1/whoami. */
export interface Principal {
  kind: 'token' | 'certificate' | 'anonymous';
  id: string;
  role: Role;
  /** '' when the caller acts across tenants. */
  tenant: string;
}

export interface Resources {
  vcpus: number;
  memory_mib: number;
  disk_gib: number;
}

export interface DriverInfo {
  name: string;
  version: string;
  kinds: string[];
  healthy: boolean;
  detail: string;
  queue_depth: number;
  in_flight: number;
  concurrency: number;
}

export interface Host {
  id: string;
  hostname: string;
  status: string;
  address: string;
  last_seen: string;
  capacity: Resources | null;
  allocated: Resources | null;
  allocatable: Resources | null;
  usage: { cpu_utilisation: number; load1: number; memory_total_mib: number; memory_used_mib: number; memory_available_mib: number } | null;
  drivers: DriverInfo[];
  labels: Record<string, string>;
  workload_count: number;
  agent_version: string;
  cordoned: boolean;
}

export interface WorkloadSpec {
  name: string;
  kind: string;
  image: string;
  vcpus: number;
  memory_mib: number;
  tenant: string;
  [field: string]: unknown;
}

export interface Workload {
  id: string;
  spec: WorkloadSpec | null;
  host_id: string;
  desired_state: string;
  state: string;
  message: string;
  created_at: string;
  updated_at: string;
  addresses: string[];
  migration: { target_host_id: string; mode: string; phase: string; data_total_bytes: number; data_processed_bytes: number } | null;
}

export interface CandidateHost {
  host_id: string;
  feasible: boolean;
  filters: { plugin: string; status: string; reason: string }[];
  scores: { plugin: string; score: number; weight: number }[];
  total: number;
}

export interface PlacementDecision {
  workload_id: string;
  host_id: string;
  summary: string;
  candidates: CandidateHost[];
  runner_up: string;
  margin: number;
  hosts_total: number;
  hosts_evaluated: number;
  decided_at: string;
  queue_policy: string;
  waited_seconds: number;
}

export interface QueueEntry {
  workload_id: string;
  name: string;
  position: number;
  priority: number;
  effective_priority: number;
  expected_runtime_seconds: number;
  waited_seconds: number;
  reason: string;
  tenant: string;
}

export interface QueueState {
  policy: string;
  backfill: boolean;
  aging_per_minute: number;
  entries: QueueEntry[];
  length: number;
}

export interface HostDrainWorkload {
  workload_id: string;
  name: string;
  kind: string;
  outcome: string;
  host_id: string;
  reason: string;
}

export interface HostDrain {
  host_id: string;
  id: string;
  state: string;
  message: string;
  started_at: string;
  ended_at: string;
  workloads: HostDrainWorkload[];
  moved: number;
  left: number;
  moving: number;
  waiting: number;
}

/** A CloudEvents record from WatchEvents; `data` is JSON text. */
export interface VfEvent {
  id: string;
  type: string;
  subject: string;
  time: string;
  data: string;
  sequence: string;
}
