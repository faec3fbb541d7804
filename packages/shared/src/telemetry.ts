import { z } from 'zod';
import { MAX_TRUST_LEVEL, WORKLOAD_KINDS, WORKLOAD_STATES } from './spec.js';
import { hostIdSchema } from './validation.js';

/**
 * Telemetry is published by each agent as JSON on `telemetrySubject(hostId)`
 * every `telemetry.intervalMs` (default 1000 ms), on its own timer: it never
 * waits longer than a short budget for the engines, and carries the newest
 * samples it has, saying how old they are. Liveness comes from the heartbeat
 * (`heartbeatSubject`), which never waits on anything; telemetry counts as a
 * sign of life too. Receivers validate every message with `telemetrySchema`
 * (and `heartbeatSchema`) and drop bad ones.
 */
export const TELEMETRY_SUBJECT_PREFIX = 'virtfleet.telemetry';
export const telemetrySubject = (hostId: string): string => `${TELEMETRY_SUBJECT_PREFIX}.${hostId}`;
export const TELEMETRY_WILDCARD = `${TELEMETRY_SUBJECT_PREFIX}.*`;
export const TELEMETRY_VERSION = 1;
/** The most workloads one telemetry message lists, and so the most one host may hold. */
export const MAX_HOST_WORKLOADS = 10_000;

const nonNegative = z.number().finite().min(0);
const fraction = z.number().finite().min(0).max(1);

export const driverInfoSchema = z.object({
  name: z.string().min(1).max(32),
  version: z.string().max(128),
  kinds: z.array(z.enum(WORKLOAD_KINDS)).max(2),
  domain_types: z.array(z.string().max(32)).max(16),
  healthy: z.boolean(),
  detail: z.string().max(1024),
  /** When the engine last answered a call, if it ever did since the agent started. */
  sampled_at: z.iso.datetime().optional(),
  /** Engine operations waiting for a slot in the agent's per-driver queue. */
  queue_depth: z.number().int().min(0).optional(),
  /** Engine operations running now (at most `concurrency`). */
  in_flight: z.number().int().min(0).optional(),
  /** The queue's concurrency limit. */
  concurrency: z.number().int().min(1).optional(),
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
  /** IP addresses on the host's networks (absent: none, or an older agent). */
  addresses: z.array(z.string().max(64)).max(16).optional(),
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
  /**
   * When the observation of `workloads` began (stamped before sampling). The
   * coordinator ignores observations older than its last command, so a late
   * sample can never undo a newer command. Older than `published_at` when the
   * engines were slow.
   */
  time: z.iso.datetime(),
  /** When this message was sent. Absent from older agents. */
  published_at: z.iso.datetime().optional(),
  /** The same instant as `time`, named for what it dates. Absent from older agents. */
  workloads_sampled_at: z.iso.datetime().optional(),
  labels: z.record(z.string().max(63), z.string().max(253)),
  drivers: z.array(driverInfoSchema).max(8),
  /** `workloads`: the most workloads the host takes (absent from older agents: MAX_HOST_WORKLOADS). */
  capacity: z.object({ vcpus: nonNegative, memory_mib: nonNegative, disk_gib: nonNegative, workloads: z.number().int().min(1).max(MAX_HOST_WORKLOADS).optional() }),
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
    storage: z.array(z.object({ path: z.string().max(4096), total_gib: nonNegative, used_gib: nonNegative, sampled_at: z.iso.datetime().optional() })).max(64),
  }),
  /** Catalog images this host holds in its image cache (absent from older agents: none). */
  images: z
    .array(z.object({ name: z.string().max(63), digest: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'must be sha256: and 64 hex digits'), size: nonNegative }))
    .max(4096)
    .optional(),
  /** Host networks set up and usable by workloads' `network` (absent from older agents: none). */
  networks: z.array(z.string().max(63)).max(16).optional(),
  /** The host's workloads: all of them, or on a delta (`workloads_base_seq` set) those that changed. */
  workloads: z.array(workloadTelemetrySchema).max(MAX_HOST_WORKLOADS),
  /**
   * Set on a delta: `workloads` holds only the workloads that are new or
   * changed since message `workloads_base_seq` of this agent run, and
   * `workloads_removed` the ids gone since. Absent: `workloads` is the whole
   * list. See `WorkloadDeltaEncoder` and `WorkloadView`.
   */
  workloads_base_seq: z.number().int().min(0).optional(),
  workloads_removed: z.array(z.string().min(1).max(128)).max(MAX_HOST_WORKLOADS).optional(),
})
  .refine((t) => t.workloads_base_seq === undefined || t.workloads_base_seq < t.seq, { path: ['workloads_base_seq'], message: 'must be an earlier seq' })
  .refine((t) => t.workloads_base_seq !== undefined || !t.workloads_removed?.length, { path: ['workloads_removed'], message: 'only a delta (with workloads_base_seq) removes workloads' });
export type Telemetry = z.output<typeof telemetrySchema>;

/**
 * The heartbeat: a tiny message each agent publishes on
 * `heartbeatSubject(hostId)` from its own timer, never waiting on a driver,
 * NATS acknowledgement or disk. The coordinator decides up and down from it.
 */
export const HEARTBEAT_SUBJECT_PREFIX = 'virtfleet.heartbeat';
export const heartbeatSubject = (hostId: string): string => `${HEARTBEAT_SUBJECT_PREFIX}.${hostId}`;
export const HEARTBEAT_WILDCARD = `${HEARTBEAT_SUBJECT_PREFIX}.*`;

export const heartbeatSchema = z.object({
  version: z.literal(TELEMETRY_VERSION),
  host_id: hostIdSchema,
  /** The agent run, as in telemetry. */
  boot_id: z.string().max(64),
  /** Counts up from 0 within one boot. */
  seq: z.number().int().min(0),
  time: z.iso.datetime(),
  /** gRPC address the coordinator dials, host:port. */
  address: z.string().min(3).max(255),
});
export type Heartbeat = z.output<typeof heartbeatSchema>;
