import { Server } from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { cpus, hostname } from 'node:os';
import { join } from 'node:path';
import {
  addHealthService,
  addReflectionService,
  AGENT_PROTO_FILE,
  protoDefinition,
  bindServer,
  connectNats,
  dialableAddress,
  grpcServerMetrics,
  loadAgentProto,
  natsInboxPrefix,
  openDaemonCertificates,
  peerAuthorization,
  serverCredentials,
  newMetricsRegistry,
  shutdownServer,
  startHttpServer,
  watchNats,
  type CertificateFiles,
  type DriverInfo,
  type Logger,
  type NatsConnection,
  type pb,
  type RunningHttpServer,
  type Telemetry,
} from '@virtfleet/shared';
import { agentHandlers } from './agent-service.js';
import { CommandLedger } from './command-ledger.js';
import type { AgentConfig } from './config.js';
import { createDriver, DRIVER_NAMES, type DriverName } from './drivers/catalog.js';
import type { DriverFingerprint } from './drivers/driver.js';
import { GuardedDriver, type DriverStatus } from './drivers/guarded-driver.js';
import { HeartbeatPublisher } from './telemetry/heartbeat.js';
import { HostSampler, type HostSource } from './telemetry/host-sampler.js';
import { TelemetryPublisher } from './telemetry/telemetry-publisher.js';
import { CatalogImageSource } from './images/catalog-source.js';
import { ImageCache } from './images/image-cache.js';
import { HostNetwork } from './network/host-network.js';
import { loadLibvirtExt } from './drivers/libvirt/native-ext.js';
import { WorkloadSampler } from './telemetry/workload-sampler.js';
import { FencerSupervisor } from './fencing/fencer-supervisor.js';
import { HostLease } from './fencing/host-lease.js';
import { WorkloadManager } from './workload-manager.js';
import { WorkloadRecords } from './workload-records.js';
import { every } from './periodic.js';
import { agentHttpRoutes } from './http-routes.js';
import { AgentMetrics } from './metrics/agent-metrics.js';
import type { Registry } from 'prom-client';

export const AGENT_VERSION = '0.1.0';

/** How often drivers are probed again, so a backend that comes back is noticed. */
const REFINGERPRINT_INTERVAL_MS = 30_000;

export interface RunningAgent {
  hostId: string;
  /** The gRPC address the coordinator dials. */
  address: string;
  port: number;
  /** The HTTP(S) server's port (metrics); undefined without one (http.enabled false, a simulated host). */
  httpPort: number | undefined;
  manager: WorkloadManager;
  /** Stops serving and publishing. Workloads keep running. */
  stop(): Promise<void>;
}

/** What the hosts of one agent process share. */
export interface HostDeps {
  log: Logger;
  /**
   * The process's NATS connection. Called once the host's gRPC server is
   * bound, so an agent started while NATS is unreachable already answers
   * the coordinator. A host never closes it.
   */
  nats: () => Promise<NatsConnection>;
  /** The machine's figures; one source per process. */
  hostSampler: HostSource;
  /**
   * Where in each interval this host's periodic timers (heartbeat,
   * telemetry, lease, driver probe) fall, as a fraction (see `every`), so
   * hosts simulated in one process spread their work. @default 0
   */
  timerPhase?: number;
  /**
   * Serve this host's metrics, gathered in this registry, and /healthz on
   * `config.http`. Absent: no HTTP server (a simulated fleet's hosts).
   */
  metrics?: Registry;
}

/** Starts one agent: its own NATS connection and host sampler, and one host. */
export async function startAgent(config: AgentConfig, log: Logger): Promise<RunningAgent> {
  let nc: NatsConnection | undefined;
  const metrics = config.http.enabled ? newMetricsRegistry() : undefined;
  const host = await startHost(config, {
    log,
    nats: async () => {
      nc = await connectNats(config.nats, `virtfleet-agent-${config.hostId}`, log, { inboxPrefix: natsInboxPrefix('agent', config.hostId) });
      if (metrics) watchNats(nc, metrics);
      return nc;
    },
    hostSampler: new HostSampler(config.telemetry.storagePaths),
    ...(metrics ? { metrics } : {}),
  });
  return {
    ...host,
    async stop() {
      await host.stop();
      await nc?.drain().catch(() => undefined);
    },
  };
}

/**
 * Starts one host on a NATS connection it may share: drivers, recovery, its
 * gRPC server, host lease, heartbeat and telemetry. `stop()` leaves the
 * connection open.
 */
export async function startHost(config: AgentConfig, deps: HostDeps): Promise<RunningAgent> {
  const { log, hostSampler } = deps;
  const phase = deps.timerPhase ?? 0;
  mkdirSync(config.stateDir, { recursive: true });
  const ledger = new CommandLedger(join(config.stateDir, 'commands.jsonl'));
  const records = new WorkloadRecords(config.stateDir);

  // Catalog images for real engines; simulated hosts run none. The catalog is read over NATS,
  // which connects later: fetches wait for it.
  let natsConnected: (nc: NatsConnection) => void = () => undefined;
  const natsReady = new Promise<NatsConnection>((resolve) => (natsConnected = resolve));
  const usesImages = config.drivers.docker?.enabled === true || config.drivers.libvirt?.enabled === true;
  const images = usesImages
    ? await ImageCache.open(config.images.cacheDir ?? join(config.stateDir, 'images'), new CatalogImageSource(() => natsReady, config.images.bucket), { maxBytes: config.images.maxCacheBytes }, log.child({ component: 'images' }))
    : undefined;

  const network = config.network.enabled
    ? new HostNetwork(
        config.network,
        {
          ...(config.drivers.libvirt?.enabled ? { libvirt: { uri: config.drivers.libvirt.uri, ext: loadLibvirtExt() } } : {}),
          ...(config.drivers.docker?.enabled ? { dockerSocket: config.drivers.docker.socketPath } : {}),
        },
        log.child({ component: 'network' }),
      )
    : undefined;

  // Every driver call has a deadline, and changes go through a bounded queue per driver.
  const drivers: GuardedDriver[] = [];
  const healthChanged: (() => void)[] = [];
  for (const name of DRIVER_NAMES) {
    const section = config.drivers[name];
    if (!section?.enabled) continue;
    const { concurrency, readTimeoutMs, changeTimeoutMs, ...rest } = section;
    const driverConfig = { ...rest, stopTimeoutSeconds: config.stopTimeoutSeconds };
    const driverLog = log.child({ driver: name });
    const inner = await createDriver(name as DriverName, driverConfig as never, { hostId: config.hostId, log: driverLog, stateDir: config.stateDir, ...(images ? { images } : {}), ...(network ? { network } : {}) });
    drivers.push(
      new GuardedDriver(inner, { concurrency, readTimeoutMs, changeTimeoutMs }, (healthy, detail) => {
        if (healthy) driverLog.info('driver healthy again');
        else driverLog.warn({ detail }, 'driver unhealthy');
        healthChanged.forEach((f) => f());
      }),
    );
  }
  for (const d of drivers) d.startProbing(config.telemetry.intervalMs, phase);
  await network?.start();
  let fingerprints = await fingerprintAll(drivers, log);

  // Commands may arrive before telemetry starts; changes before then need no early publish.
  const onChange: (() => void)[] = [];
  const manager = new WorkloadManager(drivers, records, ledger, log, config.stopTimeoutSeconds, () => onChange.forEach((f) => f()), config.maxWorkloads);
  // Fence-first workloads wait for the first host lease renewal.
  manager.setLeaseHeld(false);
  const recovered = await manager.recover();
  log.info({ ...recovered, owned: records.all().length }, 'recovered workload records');
  // Drivers whose engine did not answer at start-up are reconciled when it first does.
  let unrecovered = recovered.unlisted;
  const recoverLate = (): void => {
    const ready = unrecovered.filter((name) => drivers.find((d) => d.name === name)?.status().healthy);
    if (ready.length === 0) return;
    unrecovered = unrecovered.filter((name) => !ready.includes(name));
    void manager.recover(ready).then((late) => {
      unrecovered.push(...late.unlisted);
      log.info({ ...late, drivers: ready, owned: records.all().length }, 'recovered workload records of a driver that answered late');
    });
  };

  const capacity = async (): Promise<Pick<Telemetry, 'drivers' | 'capacity' | 'images' | 'networks'>> => {
    const host = await hostSampler.sample();
    const simulated = fingerprints.find((f) => f.name === 'fake')?.capacity;
    return {
      drivers: fingerprints.map((f) => toDriverInfo(f, drivers.find((d) => d.name === f.name)?.status())),
      capacity: {
        vcpus: simulated?.vcpus ?? cpus().length,
        memory_mib: simulated?.memoryMiB ?? host.memory_total_mib,
        disk_gib: host.storage[0]?.total_gib ?? 0,
        workloads: config.maxWorkloads,
      },
      images: images?.list().map(({ name, digest, size }) => ({ name, digest, size })) ?? [],
      networks: network?.ready ? [network.name] : [],
    };
  };

  const certificates = openDaemonCertificates(
    config.grpc.tls,
    'grpc.tls',
    { role: 'agent', name: config.hostId },
    log,
    'gRPC is PLAINTEXT (grpc.insecure: true): anyone who can reach the port can command this host; issue certificates with `virtfleet pki` and set grpc.tls',
  );
  // Only coordinators command agents.
  const server = new Server({
    'grpc.max_receive_message_length': config.grpc.maxMessageBytes,
    // Metrics first: refusals answer through it and are counted too.
    interceptors: [
      ...(deps.metrics ? [grpcServerMetrics(deps.metrics)] : []),
      ...(certificates ? [peerAuthorization(['coordinator'], (method, code, reason) => log.warn({ method, code, reason }, 'gRPC call refused'))] : []),
    ],
  });
  const proto = loadAgentProto();
  const hostInfo = async (): Promise<pb.HostInfo> => {
    const c = await capacity();
    return { host_id: config.hostId, hostname: hostname(), agent_version: AGENT_VERSION, drivers: c.drivers, capacity: c.capacity, labels: config.labels };
  };
  // No export, import or backup outlives the process that streamed it: what an earlier one left is garbage.
  rmSync(join(config.stateDir, 'transfers'), { recursive: true, force: true });
  server.addService(proto.Agent.service, agentHandlers(manager, hostInfo, config.hostId, log, () => {
    const dir = join(config.stateDir, 'transfers');
    // Traversable (not listable) by QEMU's user, which writes running VMs' backups below it.
    mkdirSync(dir, { recursive: true, mode: 0o711 });
    chmodSync(dir, 0o711);
    return dir;
  }));
  addHealthService(server, ['virtfleet.v1.Agent']);
  addReflectionService(server, protoDefinition(AGENT_PROTO_FILE));
  const port = await bindServer(server, config.grpc.listen, serverCredentials(certificates));
  const address = config.grpc.advertise ?? dialableAddress(config.grpc.listen, port);
  log.info({ listen: config.grpc.listen, port, address }, 'agent gRPC listening');

  let nc: NatsConnection;
  let http: RunningHttpServer | undefined;
  try {
    if (deps.metrics) http = await startAgentHttp(config, deps.metrics, certificates, log);
    nc = await deps.nats();
    natsConnected(nc);
  } catch (err) {
    await http?.close();
    server.forceShutdown();
    await Promise.all(drivers.map((d) => d.close()));
    throw err;
  }
  const bootId = randomUUID();
  // The lease is held by a fencer process apart from the agent when so configured, else by the agent itself.
  const lease = config.fencing.fencer.enabled
    ? new FencerSupervisor(config, bootId, manager, nc, log.child({ component: 'fencer' }))
    : new HostLease(
        nc,
        config.hostId,
        bootId,
        { bucket: config.fencing.bucket, fenceTimeoutMs: config.fencing.timeoutMs, renewIntervalMs: config.fencing.renewIntervalMs ?? Math.min(120_000, Math.floor(config.fencing.timeoutMs / 4)), phase },
        manager,
        log.child({ component: 'host-lease' }),
      );
  await lease.start();
  const heartbeat = new HeartbeatPublisher(nc, { host_id: config.hostId, boot_id: bootId, address }, config.heartbeat.intervalMs, log.child({ component: 'heartbeat' }));
  const publisher: TelemetryPublisher = new TelemetryPublisher(
    nc,
    {
      host_id: config.hostId,
      hostname: hostname(),
      address,
      agent_version: AGENT_VERSION,
      boot_id: bootId,
      labels: config.labels,
      trust_level: config.trustLevel,
      features: config.features,
      overcommit: config.overcommit,
      reserved: { vcpus: config.reserved.vcpus, memory_mib: config.reserved.memoryMiB, disk_gib: config.reserved.diskGiB },
    },
    capacity,
    hostSampler,
    new WorkloadSampler(manager, config.telemetry.usageReadsPerSecond),
    config.telemetry.intervalMs,
    log,
    config.telemetry.fullEveryMs,
    () => {
      heartbeat.telemetrySent();
      agentMetrics?.telemetryPublished(publisher.lastPublished);
    },
  );
  const agentMetrics = deps.metrics ? new AgentMetrics({ lastPublished: () => publisher.lastPublished, drivers: () => drivers }, deps.metrics) : undefined;
  heartbeat.start(phase);
  publisher.start(phase);
  onChange.push(() => publisher.nudge());
  healthChanged.push(recoverLate);
  healthChanged.push(() => {
    // A fingerprint taken while the engine was stalled would keep it unhealthy until the next periodic one.
    void fingerprintAll(drivers, log).then((f) => (fingerprints = f));
    publisher.nudge();
  });
  const refingerprint = every(
    REFINGERPRINT_INTERVAL_MS,
    () => {
      recoverLate();
      void fingerprintAll(drivers, log).then((f) => (fingerprints = f));
    },
    phase,
  );

  return {
    hostId: config.hostId,
    address,
    port,
    httpPort: http?.port,
    manager,
    async stop() {
      await http?.close();
      refingerprint.stop();
      network?.stop();
      heartbeat.stop();
      lease.stop();
      await publisher.stop();
      await shutdownServer(server);
      await Promise.all([records.close(), ledger.close()]);
      await Promise.all(drivers.map((d) => d.close().catch(() => undefined)));
    },
  };
}

/** The HTTP(S) server: HTTPS with the host's gRPC certificate, unless gRPC runs plaintext or http.insecure says so. */
async function startAgentHttp(config: AgentConfig, registry: Registry, certificates: CertificateFiles | undefined, log: Logger): Promise<RunningHttpServer> {
  const tls = config.http.insecure ? undefined : certificates;
  if (!tls) log.warn({ listen: config.http.listen }, 'HTTP is PLAINTEXT (grpc.insecure or http.insecure): anyone who reaches the port reads this host\'s metrics');
  const http = await startHttpServer({ listen: config.http.listen, routes: agentHttpRoutes(registry, tls !== undefined), certificates: tls, log: log.child({ component: 'http' }) });
  log.info({ listen: config.http.listen, port: http.port, scheme: tls ? 'https' : 'http' }, 'agent HTTP listening (/metrics, /healthz)');
  return http;
}

async function fingerprintAll(drivers: GuardedDriver[], log: Logger): Promise<DriverFingerprint[]> {
  const fingerprints = await Promise.all(drivers.map((d) => d.fingerprint()));
  for (const f of fingerprints) if (!f.healthy) log.warn({ driver: f.name, detail: f.detail }, 'driver unhealthy');
  return fingerprints;
}

/** The driver's last fingerprint, with its current health (deadlines met or missed) and queue. */
function toDriverInfo(f: DriverFingerprint, status: DriverStatus | undefined): DriverInfo {
  const info: DriverInfo = { name: f.name, version: f.version, kinds: f.kinds, domain_types: f.domain_types, healthy: f.healthy, detail: f.detail };
  if (!status) return info;
  return {
    ...info,
    healthy: f.healthy && status.healthy,
    detail: status.healthy ? f.detail : status.detail,
    sampled_at: status.answeredAtMs === undefined ? undefined : new Date(status.answeredAtMs).toISOString(),
    queue_depth: status.queueDepth,
    in_flight: status.inFlight,
    concurrency: status.concurrency,
  };
}
