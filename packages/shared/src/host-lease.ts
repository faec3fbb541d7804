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
