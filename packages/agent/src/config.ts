import { hostname } from 'node:os';
import { DEFAULT_HOST_LEASE_BUCKET, DEFAULT_IMAGE_BUCKET, grpcMaxMessageBytesSchema, hostNetworkSchema, HOST_ID, MAX_HOST_WORKLOADS, MAX_TRUST_LEVEL, hostIdSchema, hostPortSchema, httpConfigSchema, loadConfig, natsConfigSchema, requireTlsOrInsecure, tlsFilesSchema } from '@virtfleet/shared';
import { z } from 'zod';


/** Default host id: the machine's short hostname, if it is a valid id. */
/** In a simulated fleet's grpc.tls paths, each host's id: every host has a certificate of its own. */
export const HOST_PLACEHOLDER = '{host}';

export function defaultHostId(): string {
  return (hostname().split('.')[0] ?? 'localhost').toLowerCase();
}

const absolutePath = z
  .string()
  .regex(/^\/[A-Za-z0-9._+/-]*$/, 'must be an absolute path of letters, digits and ._+-/')
  .refine((p) => !p.split('/').includes('..'), 'must not contain ..');

/** drivers.fake: the in-memory engine of simulated hosts. */
export const fakeDriverSchema = z
  .object({
    enabled: z.boolean().default(true),
    kinds: z.array(z.enum(['vm', 'container'])).min(1).default(['vm', 'container']),
    vcpus: z.number().positive().default(64),
    memoryMiB: z.number().int().positive().default(262_144),
    /** Engine operations that change something (create, start, stop, pause, resume, delete) run at once; more wait in order. @default 16 */
    concurrency: z.number().int().min(1).max(256).default(16),
    /** Deadline of each read (inspect, list, usage, the health probe); one missed marks the driver unhealthy. @default 10000 */
    readTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
    /** Deadline of each change, counted from when it leaves the queue (a stop adds its graceful timeout). @default 60000 */
    changeTimeoutMs: z.number().int().min(100).max(3_600_000).default(60_000),
  })
  .strict();

/** @see agentConfigSchema `simulate` */
export const MAX_SIMULATED_HOSTS = 10_000;

export const agentConfigSchema = z
  .object({
    /** @default the short hostname */
    hostId: hostIdSchema.default(defaultHostId),
    /** Where the agent keeps its workload records and command ledger. @default '/var/lib/virtfleet/agent' */
    stateDir: z.string().min(1).default('/var/lib/virtfleet/agent'),
    /** Host labels, reported with telemetry for placement constraints. */
    labels: z.record(z.string().max(63), z.string().max(253)).default({}),
    /** How far workloads may trust this host, 0-10. @default 0 */
    trustLevel: z.number().int().min(0).max(MAX_TRUST_LEVEL).default(0),
    /** Features workloads may require, e.g. encrypted-storage, secure-boot. @default [] */
    features: z.array(z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/, 'must be 1-63 characters of a-z, 0-9, "-" and "."')).max(64).default([]),
    /** Allocation ratios over capacity minus reserved. @default { cpu: 4, memory: 1 } */
    overcommit: z
      .object({ cpu: z.number().min(0.1).max(64).default(4), memory: z.number().min(0.1).max(8).default(1) })
      .strict()
      .default({ cpu: 4, memory: 1 }),
    /** Resources held back for the host itself. @default { vcpus: 0, memoryMiB: 512, diskGiB: 0 } */
    reserved: z
      .object({ vcpus: z.number().min(0).default(0), memoryMiB: z.number().int().min(0).default(512), diskGiB: z.number().min(0).default(0) })
      .strict()
      .default({ vcpus: 0, memoryMiB: 512, diskGiB: 0 }),
    grpc: z
      .object({
        /** @default '0.0.0.0:7101' */
        listen: hostPortSchema.default('0.0.0.0:7101'),
        /** The address the coordinator dials. @default listen, with the host's name for 0.0.0.0 */
        advertise: hostPortSchema.optional(),
        /** Mutual TLS: this host's certificate (naming its host id) and the cluster CA. Required unless `insecure`. */
        tls: tlsFilesSchema.optional(),
        /** Plaintext gRPC, with a warning at start: anyone who reaches the port can command this host. */
        insecure: z.boolean().optional(),
        /** The largest request message the agent takes, 2-64 MiB; a bigger one is RESOURCE_EXHAUSTED. @default 4194304 (4 MiB) */
        maxMessageBytes: grpcMaxMessageBytesSchema,
      })
      .strict()
      .superRefine(requireTlsOrInsecure)
      .prefault({}),
    /**
     * The HTTP(S) server: `/metrics` (a client certificate from the cluster CA) and `/healthz`. HTTPS with grpc.tls;
     * plaintext with grpc.insecure or http.insecure. A simulated fleet serves none. @default { enabled: true, listen: '127.0.0.1:7181' }
     */
    http: httpConfigSchema('127.0.0.1:7181'),
    nats: natsConfigSchema,
    /** The host network VMs and containers join when their spec names it (see HostNetwork). */
    network: hostNetworkSchema.default({ enabled: false, name: 'default', bridge: 'vfbr0', subnet: '10.253.0.0/24', mode: 'nat' }),
    /** The image cache: catalog images fetched on first use, kept for the next workload. */
    images: z
      .object({
        /** The coordinator's images.bucket. @default 'virtfleet_images' */
        bucket: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, "-" or "_"').default(DEFAULT_IMAGE_BUCKET),
        /** @default `<stateDir>/images` */
        cacheDir: absolutePath.optional(),
        /** Bytes of images no workload uses kept, at most; least recently used go first. @default 21474836480 (20 GiB) */
        maxCacheBytes: z.number().int().min(0).max(2 ** 50).default(20 * 2 ** 30),
      })
      .strict()
      .default({ bucket: DEFAULT_IMAGE_BUCKET, maxCacheBytes: 20 * 2 ** 30 }),
    telemetry: z
      .object({
        /** @default 1000 */
        intervalMs: z.number().int().min(100).max(60_000).default(1000),
        /** Filesystems to report; the first one holds workload disks and sets disk capacity. @default ['/'] */
        storagePaths: z.array(z.string().startsWith('/', 'must be an absolute path')).min(1).default(['/']),
        /**
         * Workload usage (CPU, memory) reads per second, at most, over all drivers. Each is an
         * engine call (Docker: inspect and stats); with many workloads each one's figures are
         * refreshed less often rather than the engine being kept busy. @default 20
         */
        usageReadsPerSecond: z.number().positive().max(10_000).default(20),
        /**
         * The longest between two messages carrying the whole workload list; the ones between
         * carry only what changed. 0: every message carries the whole list. @default 10000
         */
        fullEveryMs: z.number().int().min(0).max(3_600_000).default(10_000),
      })
      .strict()
      .default({ intervalMs: 1000, storagePaths: ['/'], usageReadsPerSecond: 20, fullEveryMs: 10_000 }),
    /**
     * Liveness: a tiny message on `virtfleet.heartbeat.<hostId>` from its own
     * timer, never waiting on a driver, sent when neither a beat went out for
     * `intervalMs` nor telemetry for 1.25 intervals. Keep `intervalMs` well
     * below the coordinator's `hosts.ttlMs` (default 10000).
     */
    heartbeat: z
      .object({
        /** @default 1000 */
        intervalMs: z.number().int().min(100).max(60_000).default(1000),
      })
      .strict()
      .default({ intervalMs: 1000 }),
    drivers: z
      .object({
        docker: z
          .object({
            enabled: z.boolean().default(true),
            socketPath: z.string().default('/var/run/docker.sock'),
            network: z.string().regex(/^[A-Za-z0-9_.-]+$/).default('none'),
            /** Engine operations that change something (create, start, stop, pause, resume, delete) run at once; more wait in order. @default 4 */
            concurrency: z.number().int().min(1).max(256).default(4),
            /** Deadline of each read (inspect, list, usage, the health probe); one missed marks the driver unhealthy. @default 10000 */
            readTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
            /** Deadline of each change, counted from when it leaves the queue (a stop adds its graceful timeout). @default 60000 */
            changeTimeoutMs: z.number().int().min(100).max(3_600_000).default(60_000),
          })
          .strict()
          .optional(),
        libvirt: z
          .object({
            enabled: z.boolean().default(true),
            uri: z.string().regex(/^[a-z+]+:\/\/[^\s]*$/, 'must be a libvirt URI such as qemu:///system').default('qemu:///system'),
            domainType: z.enum(['auto', 'kvm', 'qemu', 'test']).default('auto'),
            /** Where VMs' disks (overlays, data disks, cloud-init seeds) and console logs live, a directory per workload. @default `<stateDir>/vms` */
            vmDir: absolutePath.optional(),
            /**
             * How other hosts' libvirtds reach this one for live migration: its libvirt URI on the
             * migration network (peer to peer, e.g. qemu+tcp://10.0.0.5/system) and the address QEMU
             * receives memory and disks on. Without it, this host receives no live migrations.
             */
            migration: z
              .object({
                uri: z.string().regex(/^[a-z+]+:\/\/[^\s/]+\/[^\s]*$/, 'must be a libvirt URI with a host, such as qemu+tcp://10.0.0.5/system'),
                address: z.string().regex(/^[A-Za-z0-9.:-]+$/, 'must be a host name or IP address'),
              })
              .strict()
              .optional(),
            /** Live migrations leaving this host at once; more wait their turn (each holds a libuv pool thread and shares the NIC). @default 2 */
            maxOutgoingMigrations: z.number().int().min(1).max(8).default(2),
            /** Engine operations that change something (create, start, stop, pause, resume, delete) run at once; more wait in order. @default 2 */
            concurrency: z.number().int().min(1).max(256).default(2),
            /** Deadline of each read (inspect, list, usage, the health probe); one missed marks the driver unhealthy. @default 10000 */
            readTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
            /** Deadline of each change, counted from when it leaves the queue (a stop adds its graceful timeout). @default 60000 */
            changeTimeoutMs: z.number().int().min(100).max(3_600_000).default(60_000),
          })
          .strict()
          .optional(),
        fake: fakeDriverSchema.optional(),
      })
      .strict()
      .default({}),
    /**
     * Self-fencing. The agent renews its host lease in NATS every
     * `renewIntervalMs`; when none is confirmed for `timeoutMs` it stops its
     * fence-first workloads (VMs by default). Keep `timeoutMs` well below the
     * coordinator's `hosts.ttlMs` (default 10000).
     */
    fencing: z
      .object({
        /** @default 'virtfleet_hosts' (must match the coordinator's hosts.leaseBucket) */
        bucket: z.string().regex(/^[A-Za-z0-9_-]+$/, 'must be letters, digits, "-" or "_"').default(DEFAULT_HOST_LEASE_BUCKET),
        /** @default 6000 */
        timeoutMs: z.number().int().min(500).max(600_000).default(6000),
        /** @default timeoutMs / 4 */
        renewIntervalMs: z.number().int().min(100).max(120_000).optional(),
        /**
         * A separate fencer process (`virtfleet fencer`, spawned and supervised
         * by the agent) holds the lease instead of the agent, so a dead agent
         * leaves the lease held and its VMs running, and a dead fencer makes the
         * agent force-stop fence-first workloads and record it.
         */
        fencer: z
          .object({
            /** @default false */
            enabled: z.boolean().default(false),
            /** With no agent for this long the fencer stops fence-first workloads, records it and exits, so they may move. 0: never. @default 60000 */
            agentLossFenceMs: z.number().int().min(0).max(86_400_000).default(60_000),
            /** Wait before the agent starts a fencer that died again. @default 1000 */
            restartDelayMs: z.number().int().min(0).max(600_000).default(1000),
          })
          .strict()
          .default({ enabled: false, agentLossFenceMs: 60_000, restartDelayMs: 1000 }),
      })
      .strict()
      .refine((f) => f.renewIntervalMs === undefined || f.renewIntervalMs * 2 <= f.timeoutMs, { message: 'renewIntervalMs must be at most half of timeoutMs', path: ['renewIntervalMs'] })
      .default({ bucket: DEFAULT_HOST_LEASE_BUCKET, timeoutMs: 6000, fencer: { enabled: false, agentLossFenceMs: 60_000, restartDelayMs: 1000 } }),
    /** Default for stop requests that give no timeout. @default 10 */
    stopTimeoutSeconds: z.number().int().min(0).max(3600).default(10),
    /** The most workloads this host takes; the scheduler places no more here and the agent refuses more. At most what one telemetry message lists. @default 10000 */
    maxWorkloads: z.number().int().min(1).max(MAX_HOST_WORKLOADS).default(MAX_HOST_WORKLOADS),
    /**
     * Load testing: run `hosts` simulated hosts in this one process instead
     * of this machine's own, each a whole agent on the fake driver (its own
     * host id, gRPC port, state directory, host lease, heartbeat and
     * telemetry) sharing one NATS connection. Host ids are
     * `<idPrefix>-<n>`, numbered from 1 and zero-padded; state goes under
     * `<stateDir>/<host id>`; with `grpc.listen` port P the hosts listen on
     * P, P+1, …, with port 0 each on a free port. Capacity and concurrency
     * come from `drivers.fake`.
     */
    simulate: z
      .object({
        hosts: z.number().int().min(1).max(MAX_SIMULATED_HOSTS),
        /** @default hostId */
        idPrefix: hostIdSchema.optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (!c.simulate) return;
    const problem = (path: PropertyKey[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const prefix = c.simulate.idPrefix ?? c.hostId;
    const longest = simulatedHostId(prefix, c.simulate.hosts, c.simulate.hosts);
    if (!HOST_ID.test(longest)) problem(['simulate', 'idPrefix'], `too long: host ids such as ${longest} must be at most 63 characters`);
    if (c.fencing.fencer.enabled) problem(['fencing', 'fencer', 'enabled'], 'a simulated fleet holds its host leases itself; the fencer process is not supported with simulate');
    if (c.grpc.tls && !(c.grpc.tls.cert.includes(HOST_PLACEHOLDER) && c.grpc.tls.key.includes(HOST_PLACEHOLDER)))
      problem(['grpc', 'tls'], `each simulated host needs its own certificate: put ${HOST_PLACEHOLDER} (the host id) in cert and key`);
    if (c.grpc.advertise !== undefined) problem(['grpc', 'advertise'], 'each simulated host advertises its own port; leave advertise out with simulate');
    if (c.drivers.fake && !c.drivers.fake.enabled) problem(['drivers', 'fake', 'enabled'], 'simulated hosts run on the fake driver; it cannot be disabled with simulate');
    for (const name of ['docker', 'libvirt'] as const) {
      if (c.drivers[name]?.enabled) problem(['drivers', name, 'enabled'], 'simulated hosts run only the fake driver; disable or remove this section with simulate');
    }
    const port = listenPort(c.grpc.listen);
    if (port !== 0 && port + c.simulate.hosts - 1 > 65_535)
      problem(['grpc', 'listen'], `hosts would listen on ports ${port}-${port + c.simulate.hosts - 1}, past 65535; use a lower port or 0 (a free port each)`);
  });

export type AgentConfig = z.output<typeof agentConfigSchema>;

/** The id of simulated host `n` (from 1) of `count`: `<prefix>-<n>`, zero-padded to the width of `count`. */
export function simulatedHostId(prefix: string, n: number, count: number): string {
  return `${prefix}-${String(n).padStart(String(count).length, '0')}`;
}

/** The port of a `host:port` listen address. */
export function listenPort(listen: string): number {
  return Number(listen.slice(listen.lastIndexOf(':') + 1));
}

export function loadAgentConfig(path: string | undefined, overrides: Record<string, unknown> = {}): AgentConfig {
  return loadConfig(agentConfigSchema, path, overrides);
}
