import { z } from 'zod';
import { hostIdSchema } from './validation.js';

/** The JetStream KV bucket that holds host leases; the coordinator creates it. */
export const DEFAULT_HOST_LEASE_BUCKET = 'virtfleet_hosts';

/** Key of a host's lease in the lease bucket. Host ids are valid subject tokens. */
export const hostLeaseKey = (hostId: string): string => `lease.${hostId}`;
export const HOST_LEASE_PREFIX = 'lease.';

/**
 * What an agent writes each time it renews its host lease. The coordinator
 * never compares these times with its own clock: it only notes when each
 * renewal reached it. `fence_timeout_ms` tells it how long the agent waits
 * before fencing itself.
 */
export const hostLeaseSchema = z
  .object({
    host_id: hostIdSchema,
    boot_id: z.string().min(1).max(64),
    fence_timeout_ms: z.number().int().min(100).max(3_600_000),
    renewed_at: z.string().datetime({ offset: true }),
  })
  .strict();

export type HostLeaseRecord = z.output<typeof hostLeaseSchema>;

/** Key of a host's fence record in the lease bucket. */
export const fenceRecordKey = (hostId: string): string => `fence.${hostId}`;
export const FENCE_RECORD_PREFIX = 'fence.';

/**
 * What a host's fencer writes once it has force-stopped every fence-first
 * workload (and none failed): the proof the coordinator needs before it
 * starts those workloads elsewhere. It counts only when stored after the
 * host's last lease renewal (the bucket's stream order decides), because a
 * fenced host starts no fence-first workload until it renews again.
 */
export const fenceRecordSchema = z
  .object({
    host_id: hostIdSchema,
    boot_id: z.string().min(1).max(64),
    fenced_at: z.string().datetime({ offset: true }),
    reason: z.string().max(1024),
    /** The fence-first workloads it stopped (ones already stopped are not listed). */
    workloads: z.array(z.string().max(128)).max(100_000),
  })
  .strict();

export type FenceRecord = z.output<typeof fenceRecordSchema>;
