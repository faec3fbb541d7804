import { Server } from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import {
  addHealthService,
  addReflectionService,
  COORDINATOR_PROTO_FILE,
  protoDefinition,
  bindServer,
  connectNats,
  dialableAddress,
  errorMessage,
  EVENT_TYPES,
  channelCredentials,
  CLIENT_MAX_RECEIVE_MESSAGE_BYTES,
  grpcClientMetrics,
  grpcServerMetrics,
  loadCoordinatorProto,
  openDaemonCertificates,
  peerAuthorization,
  serverCredentials,
  shutdownServer,
  startHttpServer,
  TLS_CHANNEL_OPTIONS,
  watchNats,
  type CertificateFiles,
  type Logger,
  type NatsConnection,
  type RunningHttpServer,
} from '@virtfleet/shared';
import type { CoordinatorConfig } from './config.js';
import { coordinatorHandlers } from './coordinator-service.js';
import { AgentClientPool } from './dispatch/agent-client.js';
import { EventLog } from './events/event-log.js';
import { HostRegistry } from './hosts/host-registry.js';
import { AdmissionQueue } from './scheduler/admission-queue.js';
import { createScheduler } from './scheduler/create-scheduler.js';
import { WorkloadController } from './workloads/workload-controller.js';
import { WorkloadMigrator } from './workloads/workload-migrator.js';
import { backupHandlers } from './backups/backup-handlers.js';
import { BackupScheduler } from './backups/backup-scheduler.js';
import { BackupService } from './backups/backup-service.js';
import { DirectoryBackupRepository } from './backups/directory-backup-repository.js';
import { LeaderLease } from './ha/leader-lease.js';
import { KvStateStore } from './state/kv-state-store.js';
import { auditEventData, auditEventType } from './auth/audit.js';
import { operatorAuthorization, type AuthenticationOptions } from './auth/authorization.js';
import { KvTokenBackend } from './auth/kv-token-backend.js';
import { principalSubject } from './auth/principal.js';
import { TokenRegistry } from './auth/token-registry.js';
import { tokenHandlers } from './auth/token-service.js';
import { RetentionSweeper } from './state/retention-sweeper.js';
import { RequestLedger } from './requests/request-ledger.js';
import { HostLeaseMonitor } from './hosts/host-lease-monitor.js';
import { followHostEvents } from './hosts/host-event-follower.js';
import { HostSupervisor } from './workloads/host-supervisor.js';
import { ImageCatalog } from './images/image-catalog.js';
import { imageHandlers } from './images/image-service.js';
import { imageUsers } from './images/image-pinning.js';
import { HostDrainer } from './hosts/host-drainer.js';
import { HostForgetter } from './hosts/host-forgetter.js';
import { MigrationLeftovers } from './workloads/migration-leftovers.js';
import { hostHandlers } from './hosts/host-service.js';
import { dashboardDistDir, serveDashboard } from './http/dashboard-static.js';
import { coordinatorHttpRoutes } from './http/http-routes.js';
import { createRestGateway, type RestGateway } from './http/rest-gateway.js';
import { CoordinatorMetrics } from './metrics/coordinator-metrics.js';

const HOST_STATUS_EVENTS = { up: EVENT_TYPES.hostUp, down: EVENT_TYPES.hostDown, recovering: EVENT_TYPES.hostRecovering } as const;

export interface RunningCoordinator {
  port: number;
  controller: WorkloadController;
  hosts: HostRegistry;
  events: EventLog;
  /** The HTTP(S) server's port (metrics); undefined when http.enabled is false. */
  httpPort: number | undefined;
  stop(): Promise<void>;
}

export async function startCoordinator(config: CoordinatorConfig, log: Logger): Promise<RunningCoordinator> {
  const certificates = openDaemonCertificates(
    config.grpc.tls,
    'grpc.tls',
    { role: 'coordinator' },
    log,
    'gRPC is PLAINTEXT (grpc.insecure: true): anyone who can reach the API port is an operator of this cluster; issue certificates with `virtfleet pki` and set grpc.tls',
  );
  const dispatchCertificates = config.dispatch.tls ? openDaemonCertificates(config.dispatch.tls, 'dispatch.tls', { role: 'coordinator' }, log, '') : certificates;
  const nc: NatsConnection = await connectNats(config.nats, `virtfleet-coordinator-${config.id}`, log);
  // Metrics exist when the HTTP server does; their gauges read the parts made below, at scrape time only.
  const metrics: CoordinatorMetrics | undefined = config.http.enabled
    ? new CoordinatorMetrics({
        workloads: () => controller.workloads(),
        queue: () => queue,
        isLeader: () => controller.isLeader,
        term: () => leadership.lease?.leader?.term,
        hosts: () => hosts.list(),
        snapshots: () => controller.snapshots(),
      })
    : undefined;
  if (metrics) watchNats(nc, metrics.registry);
  // JetStream may not be ready yet (a NATS cluster still electing its leaders, a server without JetStream):
  // wait for it, saying why, rather than exit and leave the retry to a supervisor.
  const events = await untilReady(
    `the event stream ${config.events.stream}`,
    () =>
      EventLog.open(
        nc,
        { stream: config.events.stream, maxAgeMs: config.events.maxAgeHours * 3_600_000, maxMessages: config.events.maxMessages, replicas: config.events.replicas },
        `virtfleet/coordinator/${config.id}`,
        log,
      ),
    log,
  );
  if (metrics) events.onStored((event) => metrics.eventStored(event));
  const agents = new AgentClientPool({ ...config.dispatch, certificates: dispatchCertificates, ...(metrics ? { interceptors: [grpcClientMetrics(metrics.registry)] } : {}) });
  const hosts = new HostRegistry(
    config.hosts.ttlMs,
    {
      onStatusChange(host) {
        events.emit(HOST_STATUS_EVENTS[host.status], host.id, {
          id: host.id,
          status: host.status,
          address: host.telemetry.address,
          last_seen: new Date(host.lastSeenMs).toISOString(),
        });
        log.info({ host: host.id, status: host.status }, 'host status changed');
        controller.onHostStatus(host);
        supervisor.onHostStatus(host);
      },
      onTelemetry(host, reported) {
        if (metrics && host.telemetry.published_at && host.telemetryAppliedMs !== undefined) metrics.telemetryApplied(host.telemetryAppliedMs - Date.parse(host.telemetry.published_at));
        controller.onTelemetry(host, reported);
        supervisor.onTelemetry(host, reported);
      },
      onDriverHealthChange(host, driver) {
        // Only an event: a driver's health never changes the host's status or moves a workload.
        events.emit(driver.healthy ? EVENT_TYPES.hostDriverHealthy : EVENT_TYPES.hostDriverUnhealthy, host.id, { id: host.id, driver: driver.name, healthy: driver.healthy, detail: driver.detail });
        log.info({ host: host.id, driver: driver.name, healthy: driver.healthy, detail: driver.detail }, 'driver health changed');
      },
    },
    log,
    Date.now,
    config.scheduler.utilisationSmoothing,
  );
  // The registry's callbacks run only after hosts.start(), below, by which time controller and supervisor exist.
  const scheduler = createScheduler(config.scheduler);
  const queue = new AdmissionQueue({ policy: config.scheduler.queuePolicy, agingPerMinute: config.scheduler.agingPerMinute, backfill: config.scheduler.backfill });
  const store = await untilReady(`the state bucket ${config.state.bucket}`, () => KvStateStore.open(nc, { bucket: config.state.bucket, replicas: config.state.replicas }, log), log);
  // Requests can arrive before the lease exists (between bind and campaign).
  const leadership: { lease?: LeaderLease } = {};
  const leaderHint = () => {
    const l = leadership.lease?.leader;
    return l && l.expiresAtMs > Date.now() ? ` (the leader is ${l.coordinatorId} at ${l.address})` : ' (no leader is elected right now)';
  };
  const controller: WorkloadController = new WorkloadController(store, hosts, metrics ? metrics.timed(scheduler) : scheduler, queue, agents, events, log, undefined, leaderHint, config.scheduler.stoppedReservation);
  if (metrics) controller.observeDecisions((decision, fromQueue) => metrics.decided(decision, fromQueue));
  const leftovers = new MigrationLeftovers(
    {
      store,
      isLeader: () => controller.isLeader,
      workload: (id) => controller.find(id),
      host: (id) => hosts.get(id),
      removeFiles: (host, workloadId) => agents.for(host.id, host.telemetry.address).discardIncoming(workloadId),
    },
    log.child({ component: 'migration-leftovers' }),
  );
  const leftoverSweep = leaderTimer(LEFTOVER_SWEEP_INTERVAL_MS, () => leftovers.sweep());
  const migrator = new WorkloadMigrator(controller, hosts, agents, events, leftovers, log.child({ component: 'migrator' }));
  const backups = new BackupService(
    new DirectoryBackupRepository(config.backups.dir, log.child({ component: 'backups' })),
    controller,
    hosts,
    agents,
    events,
    log.child({ component: 'backups' }),
    metrics ? (operation, outcome) => metrics.backupEnded(operation, outcome) : undefined,
  );
  const backupScheduler = new BackupScheduler(backups, () => controller.workloads(), () => controller.isLeader, { checkIntervalMs: config.backups.scheduleCheckMs }, log.child({ component: 'backup-scheduler' }));
  const leases = await untilReady(
    `the host lease bucket ${config.hosts.leaseBucket}`,
    () => HostLeaseMonitor.open(nc, config.id, { bucket: config.hosts.leaseBucket, replicas: config.state.replicas, fenceMarginMs: config.failover.fenceMarginMs }, log),
    log,
  );
  const drainer = new HostDrainer(controller, hosts, migrator, store, events, log.child({ component: 'drainer' }), { resumeAfterMs: config.hosts.ttlMs });
  const forgetter = new HostForgetter(
    controller,
    hosts,
    store,
    { drains: drainer, leases, agents },
    events,
    { ttlMs: config.hosts.ttlMs, forgetDownAfterMs: config.hosts.forgetDownAfterMs },
    log.child({ component: 'hosts' }),
  );
  const supervisor = new HostSupervisor(
    controller,
    hosts,
    leases,
    agents,
    events,
    scheduler,
    {
      ttlMs: config.hosts.ttlMs,
      graceMs: config.failover.graceMs,
      checkIntervalMs: config.failover.checkIntervalMs,
      reconcileIntervalMs: config.reconcile.intervalMs,
      reschedulesPerSecond: config.failover.reschedulesPerSecond,
      rescheduleBurst: config.failover.rescheduleBurst,
      secondaryReschedulesPerSecond: config.failover.secondaryReschedulesPerSecond,
      partialDisruptionFraction: config.failover.partialDisruptionFraction,
      smallClusterHosts: config.failover.smallClusterHosts,
      maxDownFraction: config.failover.maxDownFraction,
    },
    log.child({ component: 'supervisor' }),
  );
  // Every coordinator starts as a follower; the lease decides who leads.
  await controller.follow();
  hosts.start(nc);
  const hostEvents = followHostEvents(nc, hosts, log);

  const tokens = await TokenRegistry.open(new KvTokenBackend(store.kv, (prefix) => store.keysUnder(prefix), log), log.child({ component: 'tokens' }));
  // Only operator and coordinator certificates reach the API (each coordinator's REST gateway calls its own API with
  // its own certificate), and then only with a token (or a listed operator certificate) whose role the method takes.
  const server = new Server({
    'grpc.max_receive_message_length': config.grpc.maxMessageBytes,
    // Metrics first: the interceptors after it answer through it, so their refusals are counted too.
    interceptors: [
      ...(metrics ? [grpcServerMetrics(metrics.registry)] : []),
      ...(certificates ? [peerAuthorization(['operator', 'coordinator'], (method, code, reason) => log.warn({ method, code, reason }, 'gRPC call refused'))] : []),
      operatorAuthorization({
        tokens,
        certificateRoles: config.auth.certificateRoles,
        anonymousRole: config.auth.anonymousRole,
        audit: (r) => events.emit(auditEventType(r), principalSubject(r.principal), auditEventData(r)),
        log,
      }),
    ],
  });
  const requests = new RequestLedger(store, log);
  const sweeper = new RetentionSweeper(
    store,
    requests,
    {
      deletedWorkloadsMs: config.retention.deletedWorkloadsHours * 3_600_000,
      requestsMs: config.retention.requestHours * 3_600_000,
      removedKeyMarkersMs: config.retention.removedKeyMarkerSeconds * 1000,
    },
    () => controller.isLeader,
    log.child({ component: 'retention' }),
  );
  const images = await untilReady(
    `the image catalog ${config.images.bucket}`,
    () => ImageCatalog.open(nc, { bucket: config.images.bucket, replicas: config.state.replicas, maxImageBytes: config.images.maxImageBytes }, log.child({ component: 'images' })),
    log,
  );
  // The leader removes what imports cut off mid-way left in the catalog's stream.
  const uploadSweep = leaderTimer(UPLOAD_SWEEP_INTERVAL_MS, () =>
    images.sweepAbandonedUploads(ABANDONED_UPLOAD_AGE_MS).catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'sweeping abandoned image uploads failed')),
  );
  server.addService(loadCoordinatorProto().Coordinator.service, { ...coordinatorHandlers(controller, hosts, events, requests, images, agents, migrator, log), ...backupHandlers(backups, requests, log), ...hostHandlers(drainer, forgetter, controller, hosts, requests, log), ...imageHandlers(images, (name) => imageUsers(controller.workloads(), name), () => controller.requireLeader(), log), ...tokenHandlers(tokens, () => controller.requireLeader(), requests, log) });
  addHealthService(server, ['virtfleet.v1.Coordinator']);
  addReflectionService(server, protoDefinition(COORDINATOR_PROTO_FILE));
  const port = await bindServer(server, config.grpc.listen, serverCredentials(certificates));
  log.info({ listen: config.grpc.listen, port }, 'coordinator gRPC listening');
  const gateway = metrics ? restGatewayTo(config, port, certificates, log) : undefined;
  const http = metrics && gateway ? await startCoordinatorHttp(config, metrics, certificates, { tokens, certificateRoles: config.auth.certificateRoles, anonymousRole: config.auth.anonymousRole }, gateway.gateway, log) : undefined;

  const address = config.ha.advertise ?? dialableAddress(config.grpc.listen, port);
  // Following needs the store; while it does not answer, keep trying rather than serve stale reads for ever.
  const followUntilDone = (): void => {
    controller.follow().catch((err: unknown) => {
      log.warn({ err: errorMessage(err) }, 'could not switch to following; retrying');
      setTimeout(followUntilDone, 1000);
    });
  };
  const lease = new LeaderLease(
    store.kv,
    { holder: `${config.id}-${randomUUID().slice(0, 8)}`, coordinatorId: config.id, address },
    { ttlMs: config.ha.leaseTtlMs },
    {
      onElected: async () => {
        metrics?.leadershipChanged(true);
        await controller.lead(config.scheduler.retryIntervalMs);
        migrator.recoverInterrupted();
        drainer.resume();
        forgetter.start();
        supervisor.start();
        sweeper.start();
        uploadSweep.start();
        leftoverSweep.start();
        backupScheduler.start();
      },
      onDeposed: () => {
        metrics?.leadershipChanged(false);
        supervisor.stop();
        drainer.stop();
        forgetter.stop();
        sweeper.stop();
        uploadSweep.stop();
        leftoverSweep.stop();
        backupScheduler.stop();
        followUntilDone();
      },
      onRenewal: (outcome) => metrics?.leaseRenewed(outcome),
    },
    log,
  );
  leadership.lease = lease;
  // Only the current leader's writes land: none go out once the lease is in doubt, and a write that finds
  // another coordinator's newer record is refused and deposes this one.
  store.fenceWrites(() => lease.mayWrite, (reason) => lease.stepDown(reason));
  lease.start();

  return {
    port,
    controller,
    hosts,
    events,
    httpPort: http?.port,
    async stop() {
      await http?.close();
      gateway?.close();
      hosts.stop();
      hostEvents.unsubscribe();
      supervisor.stop();
      drainer.stop();
      forgetter.stop();
      sweeper.stop();
      uploadSweep.stop();
      leftoverSweep.stop();
      backupScheduler.stop();
      leases.stop();
      await controller.stop();
      await lease.stop();
      await shutdownServer(server);
      agents.closeAll();
      await store.close();
      await events.close();
      await nc.drain().catch(() => undefined);
    },
  };
}

/**
 * The HTTP(S) server: HTTPS with the API's certificate, unless gRPC runs
 * plaintext or http.insecure says so; callers are authorized as on the API.
 */
async function startCoordinatorHttp(
  config: CoordinatorConfig,
  metrics: CoordinatorMetrics,
  certificates: CertificateFiles | undefined,
  auth: AuthenticationOptions,
  gateway: RestGateway,
  log: Logger,
): Promise<RunningHttpServer> {
  const tls = config.http.insecure ? undefined : certificates;
  if (!tls) log.warn({ listen: config.http.listen }, 'HTTP is PLAINTEXT (grpc.insecure or http.insecure): bearer tokens cross the network in the clear');
  // The dashboard's files are open (they hold no data); what it shows comes from the API under /v1/.
  const dashboard = dashboardDistDir();
  const http = await startHttpServer({
    listen: config.http.listen,
    routes: coordinatorHttpRoutes(metrics.registry, auth),
    certificates: tls,
    fallback: async (req, res) => (await gateway.handle(req, res)) || serveDashboard(dashboard, req, res),
    log: log.child({ component: 'http' }),
  });
  log.info({ listen: config.http.listen, port: http.port, scheme: tls ? 'https' : 'http', dashboard: dashboard ?? 'not installed' }, 'coordinator HTTP listening (/ the dashboard, /metrics, /healthz, /openapi.json, /v1/)');
  return http;
}

/** The REST gateway, calling this coordinator's own API on its bound port, on loopback when it listens on every address. */
function restGatewayTo(config: CoordinatorConfig, port: number, certificates: CertificateFiles | undefined, log: Logger): { gateway: RestGateway; close(): void } {
  const host = config.grpc.listen.slice(0, config.grpc.listen.lastIndexOf(':'));
  const address = `${host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${port}`;
  const client = new (loadCoordinatorProto().Coordinator)(address, channelCredentials(certificates, { role: 'coordinator', name: config.id }), {
    ...TLS_CHANNEL_OPTIONS,
    'grpc.max_receive_message_length': CLIENT_MAX_RECEIVE_MESSAGE_BYTES,
    'grpc.max_send_message_length': config.grpc.maxMessageBytes,
  });
  return { gateway: createRestGateway({ client, maxBodyBytes: config.grpc.maxMessageBytes, log: log.child({ component: 'rest' }) }), close: () => client.close() };
}

/** How often the leader looks for abandoned image uploads, and how long an upload's chunks must have been quiet to count as one. */
const UPLOAD_SWEEP_INTERVAL_MS = 10 * 60_000;
/** How often files migrations left on hosts that were down are looked at. */
const LEFTOVER_SWEEP_INTERVAL_MS = 5_000;
const ABANDONED_UPLOAD_AGE_MS = 60 * 60_000;

/** A task the leader runs every `intervalMs` while it leads. */
function leaderTimer(intervalMs: number, task: () => Promise<unknown>): { start(): void; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  return {
    start() {
      timer ??= setInterval(() => void task(), intervalMs);
      timer.unref();
    },
    stop() {
      clearInterval(timer);
      timer = undefined;
    },
  };
}

/** Start-up waits for JetStream: first retry after this long, doubling up to `MAX_RETRY_MS`. */
const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 10_000;

/** Runs `open` until it succeeds, logging each failure with the wait before the next try. */
async function untilReady<T>(what: string, open: () => Promise<T>, log: Logger): Promise<T> {
  for (let attempt = 1, waitMs = FIRST_RETRY_MS; ; attempt++, waitMs = Math.min(MAX_RETRY_MS, waitMs * 2)) {
    try {
      return await open();
    } catch (err) {
      log.warn({ attempt, retryInMs: waitMs, err: errorMessage(err) }, `${what} is not available on JetStream yet; retrying`);
      await new Promise((r) => setTimeout(r, waitMs));
    }
  }
}
