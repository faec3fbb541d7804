import { z } from 'zod';
import { MAX_TRUST_LEVEL, WORKLOAD_KINDS, WORKLOAD_STATES } from './spec.js';
import { hostIdSchema } from './validation.js';

/**
 * Telemetry is published by each agent as JSON on `telemetrySubject(hostId)`
 * every `telemetry.intervalMs` (default 1000 ms). It doubles as the heartbeat:
 * the coordinator marks a host down when none arrives for its TTL.
 * Receivers validate every message with `telemetrySchema` and drop bad ones.
 */
export const TELEMETRY_SUBJECT_PREFIX = 'virtfleet.telemetry';
export const telemetrySubject = (hostId: string): string => `${TELEMETRY_SUBJECT_PREFIX}.${hostId}`;
export const TELEMETRY_WILDCARD = `${TELEMETRY_SUBJECT_PREFIX}.*`;
export const TELEMETRY_VERSION = 1;

const nonNegative = z.number().finite().min(0);
const fraction = z.number().finite().min(0).max(1);

export const driverInfoSchema = z.object({
  name: z.string().min(1).max(32),
  version: z.string().max(128),
  kinds: z.array(z.enum(WORKLOAD_KINDS)).max(2),
  domain_types: z.array(z.string().max(32)).max(16),
  healthy: z.boolean(),
  detail: z.string().max(1024),
});
export type DriverInfo = z.output<typeof driverInfoSchema>;

export const workloadTelemetrySchema = z.object({
  workload_id: z.string().min(1).max(128),
  name: z.string().max(63),
  kind: z.enum(WORKLOAD_KINDS),
  state: z.enum(WORKLOAD_STATES),
  driver: z.string().max(32),
  driver_ref: z.string().max(256),
  cpu_percent: nonNegative,
  memory_used_mib: nonNegative,
});
export type WorkloadTelemetry = z.output<typeof workloadTelemetrySchema>;

export const telemetrySchema = z.object({
  version: z.literal(TELEMETRY_VERSION),
  host_id: hostIdSchema,
  hostname: z.string().max(255),
  /** gRPC address the coordinator dials, host:port. */
  address: z.string().min(3).max(255),
  agent_version: z.string().max(64),
  /** Agent process start time; a change tells the coordinator the agent restarted. */
  boot_id: z.string().max(64),
  seq: z.number().int().min(0),
  time: z.iso.datetime(),
  labels: z.record(z.string().max(63), z.string().max(253)),
  drivers: z.array(driverInfoSchema).max(8),
  capacity: z.object({ vcpus: nonNegative, memory_mib: nonNegative, disk_gib: nonNegative }),
  /** Held back for the host itself; not offered to workloads. */
  reserved: z.object({ vcpus: nonNegative, memory_mib: nonNegative, disk_gib: nonNegative }).default({ vcpus: 0, memory_mib: 0, disk_gib: 0 }),
  /** Allocation ratios: allocatable = (capacity - reserved) * ratio. */
  overcommit: z.object({ cpu: z.number().finite().min(0.1).max(64), memory: z.number().finite().min(0.1).max(8) }).default({ cpu: 1, memory: 1 }),
  /** 0-10; workloads may demand a minimum. */
  trust_level: z.number().int().min(0).max(MAX_TRUST_LEVEL).default(0),
  /** Host features such as encrypted-storage or secure-boot. */
  features: z.array(z.string().max(63)).max(64).default([]),
  host: z.object({
    cpu_count: z.number().int().min(1),
    cpu_utilisation: fraction,
    load1: nonNegative,
    load5: nonNegative,
    load15: nonNegative,
    memory_total_mib: nonNegative,
    memory_used_mib: nonNegative,
    memory_available_mib: nonNegative,
    storage: z.array(z.object({ path: z.string().max(4096), total_gib: nonNegative, used_gib: nonNegative })).max(64),
  }),
  workloads: z.array(workloadTelemetrySchema).max(10_000),
});
export type Telemetry = z.output<typeof telemetrySchema>;
