import { hostname } from 'node:os';
import { DEFAULT_HOST_LEASE_BUCKET, DEFAULT_IMAGE_BUCKET, DNS_LABEL, IDENTITY_NAME, STOPPED_RESERVATIONS, grpcMaxMessageBytesSchema, hostPortSchema, httpConfigSchema, loadConfig, natsConfigSchema, requireTlsOrInsecure, tlsFilesSchema } from '@virtfleet/shared';
import { z } from 'zod';
import { ACCESS_ROLES } from './auth/access.js';
import { PLACEMENT_POLICIES, QUEUE_POLICIES } from './scheduler/catalog.js';

/** failover.partialDisruptionFraction when left out, unless failover.maxDownFraction is lower. */
const DEFAULT_PARTIAL_DISRUPTION_FRACTION = 0.3;

/** A coordinator id: what may end a NATS KV key. */
export const COORDINATOR_ID = /^(?=.{1,63}$)[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

export const coordinatorConfigSchema = z
  .object({
    /** Names this coordinator in event sources and logs. @default the hostname */
    // It ends NATS KV keys (the fencing probe `probe.<id>`): dots only between parts, as KV keys allow.
    id: z.string().regex(COORDINATOR_ID, 'must be 1-63 letters, digits, "_" or "-", in parts joined by single dots').default(() => hostname().split('.')[0] ?? 'coordinator'),
    grpc: z
      .object({
        /** Operator API address. @default '0.0.0.0:7100' */
        listen: hostPortSchema.default('0.0.0.0:7100'),
        /** Mutual TLS for the API, and (unless dispatch.tls says otherwise) toward agents. Required unless `insecure`. */
        tls: tlsFilesSchema.optional(),
        /** Plaintext gRPC, with a warning at start: anyone who reaches the port is an operator. */
        insecure: z.boolean().optional(),
        /** The largest request message the API takes, 2-64 MiB; a bigger one is RESOURCE_EXHAUSTED. @default 4194304 (4 MiB) */
        maxMessageBytes: grpcMaxMessageBytesSchema,
      })
      .strict()
      .superRefine(requireTlsOrInsecure)
      .prefault({}),
    /** The HTTP(S) server: `/metrics` (viewer role) and `/healthz`. HTTPS with grpc.tls; plaintext with grpc.insecure or http.insecure. @default { enabled: true, listen: '127.0.0.1:7180' } */
    http: httpConfigSchema('127.0.0.1:7180'),
    nats: natsConfigSchema,
    hosts: z
      .object({
        /** A host with no telemetry for this long is down. @default 10_000 */
        ttlMs: z.number().int().min(500).max(600_000).default(10_000),
        /** JetStream KV bucket where agents renew their host leases; created with state.replicas. @default 'virtfleet_hosts' */
        leaseBucket: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).default(DEFAULT_HOST_LEASE_BUCKET),
        /**
         * The leader forgets a host that has been down this long and holds no workloads then (as `host rm` does);
         * one that reports again registers again. 0: never. @default 86_400_000 (24 h)
         */
        forgetDownAfterMs: z.number().int().min(0).max(365 * 86_400_000).default(86_400_000),
      })
      .strict()
      .default({ ttlMs: 10_000, leaseBucket: DEFAULT_HOST_LEASE_BUCKET, forgetDownAfterMs: 86_400_000 }),
    failover: z
      .object({
        /** reschedule mode: how long a host stays down before its workloads are placed elsewhere. @default 2000 */
        graceMs: z.number().int().min(0).max(3_600_000).default(2000),
        /**
         * fence-first mode: added to the agent's fence timeout before its host counts as fenced.
         * It must cover the time the agent takes to force-stop its workloads. @default 4000
         */
        fenceMarginMs: z.number().int().min(0).max(600_000).default(4000),
        /** How often lost hosts are checked. @default 1000 */
        checkIntervalMs: z.number().int().min(50).max(60_000).default(1000),
        /** At most this many workloads are sent back to the queue per second, over all lost hosts (a token bucket). @default 10 */
        reschedulesPerSecond: z.number().gt(0).max(10_000).default(10),
        /** Reschedules that may go at once after a quiet spell: the token bucket's size. @default 10 */
        rescheduleBurst: z.number().int().min(1).max(10_000).default(10),
        /**
         * When more than this fraction of the hosts (those confirmed dead not counted) are down together,
         * nothing is moved: the coordinator may be the one cut off. 1 never suspends. @default 0.5
         */
        maxDownFraction: z.number().min(0).max(1).default(0.5),
        /**
         * When more than this fraction of the hosts are down together (but not more than maxDownFraction), workloads
         * move at secondaryReschedulesPerSecond: a partial disruption. At most maxDownFraction; equal turns the
         * secondary rate off. @default 0.3, or maxDownFraction if that is lower
         */
        partialDisruptionFraction: z.number().min(0).max(1).optional(),
        /** The rate in partial disruption; never more than reschedulesPerSecond. @default 1 */
        secondaryReschedulesPerSecond: z.number().gt(0).max(10_000).default(1),
        /**
         * A cluster of at most this many hosts (confirmed dead ones not counted) is never in partial disruption: one lost
         * host is already a large share of it, and it moves at reschedulesPerSecond up to maxDownFraction. 0: no exemption. @default 3
         */
        smallClusterHosts: z.number().int().min(0).max(100_000).default(3),
      })
      .strict()
      // Checked on what the operator wrote: left out, the default follows a lower maxDownFraction instead of failing.
      .refine((f) => f.partialDisruptionFraction === undefined || f.partialDisruptionFraction <= f.maxDownFraction, {
        path: ['partialDisruptionFraction'],
        error: (issue) => {
          const f = issue.input as { partialDisruptionFraction: number; maxDownFraction: number };
          return `must be at most failover.maxDownFraction (${f.maxDownFraction}), not ${f.partialDisruptionFraction}: above maxDownFraction failover is suspended, not slowed; set it equal to maxDownFraction to turn the secondary rate off`;
        },
      })
      .transform(({ partialDisruptionFraction, ...f }) => ({ ...f, partialDisruptionFraction: partialDisruptionFraction ?? Math.min(DEFAULT_PARTIAL_DISRUPTION_FRACTION, f.maxDownFraction) }))
      .default({
        graceMs: 2000,
        fenceMarginMs: 4000,
        checkIntervalMs: 1000,
        reschedulesPerSecond: 10,
        rescheduleBurst: 10,
        maxDownFraction: 0.5,
        partialDisruptionFraction: DEFAULT_PARTIAL_DISRUPTION_FRACTION,
        secondaryReschedulesPerSecond: 1,
        smallClusterHosts: 3,
      }),
    backups: z
      .object({
        /** The backup repository: chunks and manifests, one directory for the cluster (shared storage when coordinators run on several machines). @default /var/lib/virtfleet/backups */
        dir: z.string().regex(/^\/[^\0]*$/, 'must be an absolute path').default('/var/lib/virtfleet/backups'),
        /** How often the leader looks for workloads whose scheduled backup (spec `backup`) is due, and prunes by their retention. @default 60_000 */
        scheduleCheckMs: z.number().int().min(100).max(3_600_000).default(60_000),
      })
      .strict()
      .default({ dir: '/var/lib/virtfleet/backups', scheduleCheckMs: 60_000 }),
    reconcile: z
      .object({
        /** How often every host's workloads are compared with their desired state. @default 10_000 */
        intervalMs: z.number().int().min(100).max(3_600_000).default(10_000),
      })
      .strict()
      .default({ intervalMs: 10_000 }),
    auth: z
      .object({
        /**
         * Operator certificates (by the name they were issued for) that act with a role, and optionally a tenant,
         * without a bearer token: the first admin, who creates the tokens. @default {}
         */
        certificateRoles: z
          .record(
            z.string().regex(IDENTITY_NAME, 'must be an operator certificate name: 1-63 letters, digits, "-" or "_"'),
            z.object({ role: z.enum(ACCESS_ROLES), tenant: z.string().regex(DNS_LABEL, 'must be a DNS label').optional() }).strict(),
          )
          .default({}),
        /** The role of a caller with neither token nor listed certificate; left out, such calls are refused (UNAUTHENTICATED). */
        anonymousRole: z.enum(ACCESS_ROLES).optional(),
      })
      .strict()
      .default({ certificateRoles: {} }),
    dispatch: z
      .object({
        /** Deadline for one agent call; stops add their own timeout. @default 30_000 */
        deadlineMs: z.number().int().min(100).max(600_000).default(30_000),
        /** Attempts per agent call on UNAVAILABLE, the first included. @default 4 */
        maxAttempts: z.number().int().min(1).max(5).default(4),
        /** Mutual TLS toward agents: `cert`/`key` identify this coordinator, `ca` vouches for agents. @default grpc.tls */
        tls: tlsFilesSchema.optional(),
        /** Commands in flight to one host; more wait in placement order and go out as earlier ones complete. @default 16 */
        maxInFlightPerHost: z.number().int().min(1).max(1024).default(16),
      })
      .strict()
      .default({ deadlineMs: 30_000, maxAttempts: 4, maxInFlightPerHost: 16 }),
    ha: z
      .object({
        /** A leader that has not renewed its lease for this long is replaced. @default 3000 */
        leaseTtlMs: z.number().int().min(500).max(60_000).default(3000),
        /** The API address other coordinators tell clients to use while this one leads. @default the listen address */
        advertise: hostPortSchema.optional(),
      })
      .strict()
      .default({ leaseTtlMs: 3000 }),
    state: z
      .object({
        /** JetStream KV bucket for workloads, the queue, decisions and cordons. @default 'virtfleet_state' */
        bucket: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).default('virtfleet_state'),
        /** Bucket replicas: 3 on a three-node NATS cluster. @default 1 */
        replicas: z.number().int().min(1).max(5).default(1),
      })
      .strict()
      .default({ bucket: 'virtfleet_state', replicas: 1 }),
    images: z
      .object({
        /** JetStream object store bucket of the image catalog; agents read images from it. @default 'virtfleet_images' */
        bucket: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).default(DEFAULT_IMAGE_BUCKET),
        /** The largest image an import may bring, in bytes. @default 68719476736 (64 GiB) */
        maxImageBytes: z.number().int().min(1).max(2 ** 50).default(64 * 2 ** 30),
      })
      .strict()
      .default({ bucket: DEFAULT_IMAGE_BUCKET, maxImageBytes: 64 * 2 ** 30 }),
    retention: z
      .object({
        /** Deleted workloads are forgotten this long after deletion; a delete by name or id succeeds until then. @default 24 */
        deletedWorkloadsHours: z.number().positive().max(24 * 3650).default(24),
        /** A request_id returns its first result for this long after the request completed. @default 24 */
        requestHours: z.number().positive().max(24 * 3650).default(24),
        /** A removed key's delete marker stays in the state bucket this long, so a follower's watch sees the removal, then is purged. @default 60 */
        removedKeyMarkerSeconds: z.number().min(0).max(86_400).default(60),
      })
      .strict()
      .default({ deletedWorkloadsHours: 24, requestHours: 24, removedKeyMarkerSeconds: 60 }),
    events: z
      .object({
        /** JetStream stream for the durable event log. @default 'VIRTFLEET_EVENTS' */
        stream: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).default('VIRTFLEET_EVENTS'),
        /** Events older than this are dropped. @default 168 (7 days) */
        maxAgeHours: z.number().positive().max(24 * 3650).default(168),
        /** At most this many events are kept. @default 1_000_000 */
        maxMessages: z.number().int().positive().default(1_000_000),
        /** Stream replicas: 3 on a three-node NATS cluster. @default 1 */
        replicas: z.number().int().min(1).max(5).default(1),
      })
      .strict()
      .default({ stream: 'VIRTFLEET_EVENTS', maxAgeHours: 168, maxMessages: 1_000_000, replicas: 1 }),
    scheduler: z
      .object({
        /** How often pending workloads are tried again. @default 1000 */
        retryIntervalMs: z.number().int().min(50).max(60_000).default(1000),
        /** Admission order: fcfs, sjf or priority; changeable at runtime. @default 'fcfs' */
        queuePolicy: z.enum(QUEUE_POLICIES).default('fcfs'),
        /** Priority points a waiting request gains per minute (priority policy). @default 1 */
        agingPerMinute: z.number().min(0).max(100).default(1),
        /** Place smaller requests past a blocked head of the queue. @default true */
        backfill: z.boolean().default(true),
        /** binpack fills hosts; spread balances them. @default 'binpack' */
        placement: z.enum(PLACEMENT_POLICIES).default('binpack'),
        /** Scorer weights, over the placement policy's defaults. */
        weights: z.record(z.string(), z.number().min(0).max(100)).default({}),
        /** Feasible hosts to find before scoring; 0 evaluates all. @default 16 */
        candidateLimit: z.number().int().min(0).max(100_000).default(16),
        /** Weight of the newest sample in smoothed host CPU utilisation. @default 0.3 */
        utilisationSmoothing: z.number().gt(0).max(1).default(0.3),
        /** Whether a workload stopped on purpose keeps its booking (keep) or frees it for others (release), where its spec does not say. @default 'keep' */
        stoppedReservation: z.enum(STOPPED_RESERVATIONS).default('keep'),
      })
      .strict()
      .default({ retryIntervalMs: 1000, queuePolicy: 'fcfs', agingPerMinute: 1, backfill: true, placement: 'binpack', weights: {}, candidateLimit: 16, utilisationSmoothing: 0.3, stoppedReservation: 'keep' }),
  })
  .strict();

export type CoordinatorConfig = z.output<typeof coordinatorConfigSchema>;

export function loadCoordinatorConfig(path: string | undefined, overrides: Record<string, unknown> = {}): CoordinatorConfig {
  return loadConfig(coordinatorConfigSchema, path, overrides);
}
