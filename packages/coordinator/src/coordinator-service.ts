import {
  errorMessage,
  EVENT_TYPE_PREFIX,
  eventTypePrefix,
  hostIdSchema,
  UnavailableError,
  InvalidArgumentError,
  NotFoundError,
  opaqueIdSchema,
  parseRfc3339Nanos,
  parseWorkloadSpec,
  requireId,
  serverStream,
  callSignal,
  FailedPreconditionError,
  parseLogOptions,
  pipeToCall,
  unary,
  WORKLOAD_STATES,
  type CloudEvent,
  type Logger,
  type pb,
} from '@virtfleet/shared';
import type { Metadata } from '@grpc/grpc-js';
import { z } from 'zod';
import { principalOf } from './auth/principal.js';
import { tenantFor, visibleTo } from './auth/tenancy.js';
import { decodePageToken, DEFAULT_PAGE_SIZE, encodePageToken, pageSizeOf } from './api/paging.js';
import type { AgentAction } from './dispatch/agent-client.js';
import type { EventLog } from './events/event-log.js';
import type { ImageHandlers } from './images/image-service.js';
import type { HostHandlers } from './hosts/host-service.js';
import { pinCatalogImages, type ImageLookup } from './images/image-pinning.js';
import type { AgentClientPool } from './dispatch/agent-client.js';
import type { Host } from './hosts/host.js';
import type { RequestLedger } from './requests/request-ledger.js';
import type { HostRegistry } from './hosts/host-registry.js';
import { QUEUE_POLICIES, type QueuePolicy } from './scheduler/catalog.js';
import type { HostSnapshot, PlacementRecord } from './scheduler/scheduler.js';
import { stoppedReservationOf, type Workload, type WorkloadMigration } from './workloads/workload.js';
import type { MigrationProgressView, WorkloadMigrator } from './workloads/workload-migrator.js';
import type { DecisionRecord, QueueView, WorkloadController } from './workloads/workload-controller.js';
import { rebalanceHandlers } from './rebalance/rebalance-service.js';

const MAX_STOP_TIMEOUT_SECONDS = 3600;
/** A downtime above a minute is no longer live; a bandwidth above 100 GiB/s is a typo. */
const MAX_MIGRATION_DOWNTIME_MS = 60_000;
const MAX_MIGRATION_BANDWIDTH_MIBS = 102_400;
/** A workload reference: its id or its name. */
const workloadRefSchema = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,78}[a-z0-9])?$/, 'must be a workload id or name');

function optionalRequestId(value: string): string {
  return value ? requireId(opaqueIdSchema, value, 'request_id') : '';
}

export function toProtoMigration(m: WorkloadMigration, progress: MigrationProgressView | undefined): pb.WorkloadMigration {
  return {
    id: m.id,
    source_host_id: m.sourceHostId,
    target_host_id: m.targetHostId,
    mode: m.mode,
    phase: m.phase,
    started_at: m.startedAt,
    data_total_bytes: progress?.dataTotalBytes ?? 0,
    data_processed_bytes: progress?.dataProcessedBytes ?? 0,
    data_remaining_bytes: progress?.dataRemainingBytes ?? 0,
    bytes_per_second: progress?.bytesPerSecond ?? 0,
    expected_downtime_ms: progress?.expectedDowntimeMs ?? 0,
  };
}

/** A workload for the API; `progress` is the migration's latest, when one runs. */
export function toProtoWorkload(w: Workload, progress?: MigrationProgressView): pb.Workload {
  return {
    ...(w.migration ? { migration: toProtoMigration(w.migration, progress) } : {}),
    id: w.id,
    spec: w.spec,
    host_id: w.hostId,
    desired_state: w.desiredState,
    state: w.state,
    message: w.message,
    created_at: w.createdAt,
    updated_at: w.updatedAt,
    driver_ref: w.driverRef,
    addresses: w.addresses ?? [],
  };
}

export function toProtoDecision(d: PlacementRecord | DecisionRecord): pb.PlacementDecision {
  return {
    workload_id: d.workloadId,
    host_id: d.hostId ?? '',
    summary: d.summary,
    candidates: d.candidates.map((c) => ({
      host_id: c.hostId,
      feasible: c.feasible,
      filters: c.filters.map((f) => ({ plugin: f.plugin, status: f.status, reason: f.reason ?? '' })),
      scores: c.scores,
      total: c.total,
    })),
    runner_up: d.runnerUp ?? '',
    margin: d.margin ?? 0,
    hosts_total: d.hostsTotal,
    hosts_evaluated: d.hostsEvaluated,
    rejections: d.rejections,
    unresolvable: d.unresolvable,
    decided_at: d.decidedAt,
    queue_policy: 'queuePolicy' in d ? d.queuePolicy : '',
    waited_seconds: 'waitedMs' in d ? d.waitedMs / 1000 : 0,
  };
}

/** The queue with the entries from `offset`, at most `limit` of them. */
export function toProtoQueue(q: QueueView, offset = 0, limit = DEFAULT_PAGE_SIZE): pb.QueueState {
  const end = offset + limit;
  return {
    policy: q.policy,
    backfill: q.backfill,
    aging_per_minute: q.agingPerMinute,
    length: q.entries.length,
    next_page_token: end < q.entries.length ? encodePageToken({ offset: end }) : '',
    entries: q.entries.slice(offset, end).map((e) => ({
      workload_id: e.workload.id,
      name: e.workload.spec.name,
      position: e.position,
      priority: e.workload.spec.priority,
      effective_priority: e.effectivePriority,
      expected_runtime_seconds: e.expectedRuntimeSeconds,
      waited_seconds: e.waitedMs / 1000,
      reason: e.workload.message,
      tenant: e.workload.spec.tenant,
    })),
  };
}

function workloadCount(controller: WorkloadController, hostId: string): number {
  return controller.workloadsOn(hostId).filter((w) => w.state !== 'deleted').length;
}

const workloadCursorSchema = z.object({ arrivalSeq: z.number().int(), id: z.string() }).strict();
const hostCursorSchema = z.object({ after: z.string() }).strict();
const queueCursorSchema = z.object({ offset: z.number().int().min(0) }).strict();

function toProtoResources(r: { vcpus: number; memoryMiB: number; diskGiB: number } | undefined): pb.Resources {
  return { vcpus: r?.vcpus ?? 0, memory_mib: Math.round(r?.memoryMiB ?? 0), disk_gib: r?.diskGiB ?? 0 };
}

export function toProtoHost(h: Host, snapshot: HostSnapshot | undefined, workloadCount: number): pb.Host {
  const t = h.telemetry;
  const allocated = snapshot?.allocated ?? { vcpus: 0, memoryMiB: 0, diskGiB: 0 };
  return {
    id: h.id,
    hostname: t.hostname,
    status: h.status,
    address: t.address,
    last_seen: new Date(h.lastSeenMs).toISOString(),
    capacity: { vcpus: t.capacity.vcpus, memory_mib: Math.round(t.capacity.memory_mib), disk_gib: t.capacity.disk_gib },
    allocated: toProtoResources(allocated),
    usage: {
      cpu_utilisation: t.host.cpu_utilisation,
      load1: t.host.load1,
      memory_total_mib: Math.round(t.host.memory_total_mib),
      memory_used_mib: Math.round(t.host.memory_used_mib),
      memory_available_mib: Math.round(t.host.memory_available_mib),
      storage: t.host.storage,
    },
    drivers: t.drivers,
    labels: t.labels,
    workload_count: workloadCount,
    agent_version: t.agent_version,
    allocatable: snapshot
      ? { vcpus: snapshot.allocatable.vcpus, memory_mib: Math.round(snapshot.allocatable.memoryMiB), disk_gib: snapshot.allocatable.diskGiB }
      : { vcpus: 0, memory_mib: 0, disk_gib: 0 },
    trust_level: t.trust_level,
    features: t.features,
    cpu_utilisation_smoothed: h.cpuUtilisationSmoothed,
    cordoned: h.cordoned,
    held_by_stopped: toProtoResources(snapshot?.heldByStopped),
    telemetry_published_at: t.published_at ?? '',
    telemetry_applied_at: h.telemetryAppliedMs === undefined ? '' : new Date(h.telemetryAppliedMs).toISOString(),
  };
}

export function toProtoEvent(e: CloudEvent): pb.Event {
  return { ...e, data: JSON.stringify(e.data), sequence: e.sequence ?? 0 };
}

const WORKLOAD_EVENT_PREFIX = `${EVENT_TYPE_PREFIX}.workload.`;

/** Implements virtfleet.v1.Coordinator. Every request is validated before it reaches the controller. */
export function coordinatorHandlers(
  controller: WorkloadController,
  hosts: HostRegistry,
  events: EventLog,
  requests: RequestLedger,
  images: ImageLookup,
  agents: AgentClientPool,
  migrator: WorkloadMigrator,
  log: Logger,
): Omit<pb.CoordinatorHandlers, keyof ImageHandlers | keyof HostHandlers> {
  const workloadHandles = (w: pb.Workload) => [w.id ?? '', w.spec?.name ?? ''];
  /** The workload `ref` names, if the caller may see it (NOT_FOUND otherwise, as for an unknown one); with `includingDeleted`, found as a delete finds it. */
  const visible = (call: { metadata: Metadata }, ref: string, includingDeleted = false) =>
    visibleTo(principalOf(call), includingDeleted ? controller.getIncludingDeleted(ref) : controller.get(ref), ref);
  const action = (name: AgentAction, method: string) =>
    unary<pb.WorkloadActionRequest__Output, pb.Workload>(log, method, (req, call) => {
      const ref = requireId(workloadRefSchema, req.id, 'id');
      // A delete also finds a deleted one by name, and repeats as done.
      visible(call, ref, name === 'delete');
      const requestId = optionalRequestId(req.request_id);
      if (req.timeout_seconds < 0 || req.timeout_seconds > MAX_STOP_TIMEOUT_SECONDS)
        throw new InvalidArgumentError('timeout_seconds', `must be between 0 and ${MAX_STOP_TIMEOUT_SECONDS}`);
      const stop = { timeoutSeconds: req.timeout_seconds, force: req.force };
      return requests.run(requestId, { method, subject: ref, params: stop, aliases: workloadHandles }, async () =>
        toProtoWorkload(await controller.act(name, ref, requestId, stop)),
      );
    });

  /** A tenant-scoped caller's own tenant goes into a spec that names none; another tenant is PERMISSION_DENIED. */
  const inCallersTenant = (call: { metadata: Metadata }, spec: pb.WorkloadSpec__Output | null): pb.WorkloadSpec__Output | null => {
    const tenant = tenantFor(principalOf(call), spec?.tenant);
    return spec && tenant ? { ...spec, tenant } : spec;
  };
  /** The tenant of a workload an event names, while its record is kept; undefined after that (and the event is then not shown to tenants). */
  const tenantOfWorkload = (id: string): string | undefined => {
    try {
      return controller.get(id).spec.tenant;
    } catch {
      return undefined;
    }
  };
  return {
    ...rebalanceHandlers(controller, log),
    SubmitWorkload: unary<pb.SubmitWorkloadRequest__Output, pb.Workload>(log, 'SubmitWorkload', async (req, call) => {
      const requestId = optionalRequestId(req.request_id);
      const spec = await pinCatalogImages(parseWorkloadSpec(inCallersTenant(call, req.spec), 'spec'), images);
      return toProtoWorkload(await controller.submit(requestId, spec));
    }),
    GetWorkload: unary<pb.GetWorkloadRequest__Output, pb.Workload>(log, 'GetWorkload', (req, call) => {
      const w = visible(call, requireId(workloadRefSchema, req.id, 'id'));
      return Promise.resolve(toProtoWorkload(w, migrator.progressOf(w.id)));
    }),
    MigrateWorkload: unary<pb.MigrateWorkloadRequest__Output, pb.Workload>(log, 'MigrateWorkload', async (req, call) => {
      const ref = requireId(workloadRefSchema, req.id, 'id');
      visible(call, ref);
      const requestId = optionalRequestId(req.request_id);
      if (req.target_host_id) requireId(hostIdSchema, req.target_host_id, 'target_host_id');
      if (req.max_downtime_ms > MAX_MIGRATION_DOWNTIME_MS) throw new InvalidArgumentError('max_downtime_ms', `must be at most ${MAX_MIGRATION_DOWNTIME_MS}`);
      if (req.bandwidth_mib_s > MAX_MIGRATION_BANDWIDTH_MIBS) throw new InvalidArgumentError('bandwidth_mib_s', `must be at most ${MAX_MIGRATION_BANDWIDTH_MIBS}`);
      controller.requireLeader();
      if (req.cancel) return toProtoWorkload(await migrator.cancel(ref));
      const w = await migrator.start(ref, { requestId, targetHostId: req.target_host_id, mode: req.mode, maxDowntimeMs: req.max_downtime_ms, bandwidthMiBs: req.bandwidth_mib_s });
      return toProtoWorkload(w, migrator.progressOf(w.id));
    }),
    ListWorkloads: unary<pb.ListWorkloadsRequest__Output, pb.ListWorkloadsResponse>(log, 'ListWorkloads', (req, call) => {
      if (req.state && !(WORKLOAD_STATES as readonly string[]).includes(req.state))
        throw new InvalidArgumentError('state', `must be one of ${WORKLOAD_STATES.join(', ')}`);
      if (req.host_id) requireId(hostIdSchema, req.host_id, 'host_id');
      const limit = pageSizeOf(req.page_size);
      const after = decodePageToken(req.page_token, workloadCursorSchema);
      const page = controller.listPage({ hostId: req.host_id, state: req.state, tenant: principalOf(call).tenant }, after, limit);
      return Promise.resolve({ workloads: page.workloads.map((w) => toProtoWorkload(w, migrator.progressOf(w.id))), next_page_token: page.next ? encodePageToken(page.next) : '' });
    }),
    ListHosts: unary<pb.ListHostsRequest__Output, pb.ListHostsResponse>(log, 'ListHosts', (req) => {
      const limit = pageSizeOf(req.page_size);
      const after = decodePageToken(req.page_token, hostCursorSchema)?.after;
      const sorted = hosts
        .list()
        .filter((h) => after === undefined || h.id > after)
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      const page = sorted.slice(0, limit);
      const snapshots = new Map(controller.snapshots().map((snap) => [snap.id, snap]));
      const last = page.at(-1);
      return Promise.resolve({
        hosts: page.map((h) => toProtoHost(h, snapshots.get(h.id), workloadCount(controller, h.id))),
        next_page_token: sorted.length > limit && last ? encodePageToken({ after: last.id }) : '',
      });
    }),
    CordonHost: unary<pb.CordonHostRequest__Output, pb.Host>(log, 'CordonHost', (req) => {
      const hostId = requireId(hostIdSchema, req.host_id, 'host_id');
      const requestId = optionalRequestId(req.request_id);
      return requests.run(requestId, { method: 'CordonHost', subject: hostId, params: { cordon: req.cordon } }, () => {
        const host = hosts.get(hostId);
        if (!host) throw new NotFoundError('host', hostId);
        controller.cordon(hostId, req.cordon);
        return Promise.resolve(toProtoHost(host, controller.snapshots().find((snap) => snap.id === hostId), workloadCount(controller, hostId)));
      });
    }),
    ConfirmHostDead: unary<pb.ConfirmHostDeadRequest__Output, pb.ConfirmHostDeadResponse>(log, 'ConfirmHostDead', (req) => {
      const hostId = requireId(hostIdSchema, req.host_id, 'host_id');
      const requestId = optionalRequestId(req.request_id);
      return requests.run(requestId, { method: 'ConfirmHostDead', subject: hostId, params: {} }, () => {
        const { fenceFirstWorkloads } = controller.confirmDead(hostId);
        return Promise.resolve({ host_id: hostId, fence_first_workloads: fenceFirstWorkloads });
      });
    }),
    StartWorkload: action('start', 'StartWorkload'),
    StopWorkload: action('stop', 'StopWorkload'),
    PauseWorkload: action('pause', 'PauseWorkload'),
    ResumeWorkload: action('resume', 'ResumeWorkload'),
    DeleteWorkload: action('delete', 'DeleteWorkload'),
    ExplainWorkload: unary<pb.ExplainWorkloadRequest__Output, pb.PlacementDecision>(log, 'ExplainWorkload', async (req, call) => {
      const ref = requireId(workloadRefSchema, req.id, 'id');
      visible(call, ref);
      return { ...toProtoDecision(await controller.explain(ref)), stopped_reservation: stoppedReservationOf(controller.get(ref), controller.stoppedReservation) };
    }),
    PlanWorkload: unary<pb.PlanWorkloadRequest__Output, pb.PlacementDecision>(log, 'PlanWorkload', async (req, call) =>
      toProtoDecision(controller.plan(await pinCatalogImages(parseWorkloadSpec(inCallersTenant(call, req.spec), 'spec'), images))),
    ),
    GetQueue: unary<pb.GetQueueRequest__Output, pb.QueueState>(log, 'GetQueue', (req, call) => {
      const limit = pageSizeOf(req.page_size);
      const offset = decodePageToken(req.page_token, queueCursorSchema)?.offset ?? 0;
      const tenant = principalOf(call).tenant;
      const view = controller.queueView();
      return Promise.resolve(toProtoQueue(tenant ? { ...view, entries: view.entries.filter((e) => e.workload.spec.tenant === tenant) } : view, offset, limit));
    }),
    SetQueuePolicy: unary<pb.SetQueuePolicyRequest__Output, pb.QueueState>(log, 'SetQueuePolicy', (req) => {
      if (!(QUEUE_POLICIES as readonly string[]).includes(req.policy)) throw new InvalidArgumentError('policy', `must be one of ${QUEUE_POLICIES.join(', ')}`);
      const requestId = optionalRequestId(req.request_id);
      const change = { policy: req.policy as QueuePolicy, ...(req.backfill === undefined ? {} : { backfill: req.backfill }) };
      return requests.run(requestId, { method: 'SetQueuePolicy', subject: '', params: change }, () => Promise.resolve(toProtoQueue(controller.configureQueue(change))));
    }),
    WorkloadLogs: serverStream<pb.GetWorkloadLogsRequest__Output, pb.LogChunk>(log, 'WorkloadLogs', async (call) => {
      const ref = requireId(workloadRefSchema, call.request.id, 'id');
      const request = parseLogOptions(call.request.options, 'options');
      const w = visible(call, ref);
      if (!w.hostId) throw new FailedPreconditionError(`workload ${w.spec.name} (${w.id}) is on no host yet (${w.state}), so it has no log`);
      const host = hosts.get(w.hostId);
      if (!host) throw new UnavailableError(`workload ${w.spec.name} is on host ${w.hostId}, which this coordinator does not know`);
      const signal = callSignal(call);
      await pipeToCall(agents.for(host.id, host.telemetry.address).logs(w.id, request, signal), call, signal);
    }),
    WatchEvents: serverStream<pb.WatchEventsRequest__Output, pb.Event>(log, 'WatchEvents', async (call) => {
      const req = call.request;
      if (req.type_prefix.length > 128) throw new InvalidArgumentError('type_prefix', 'must be at most 128 characters');
      const prefix = eventTypePrefix(req.type_prefix);
      const sinceSeq = req.since_seq === '0' || req.since_seq === '' ? undefined : Number(req.since_seq);
      if (sinceSeq !== undefined && !Number.isSafeInteger(sinceSeq)) throw new InvalidArgumentError('since_seq', `must be at most ${Number.MAX_SAFE_INTEGER}`);
      const sinceTimeNs = req.since_time ? parseRfc3339Nanos(req.since_time) : undefined;
      if (req.since_time && sinceTimeNs === undefined) throw new InvalidArgumentError('since_time', `must be an RFC 3339 time such as 2025-01-02T15:04:05Z, not ${JSON.stringify(req.since_time.slice(0, 64))}`);
      if (sinceSeq !== undefined && sinceTimeNs !== undefined) throw new InvalidArgumentError('since_time', 'cannot be combined with since_seq');
      const abort = new AbortController();
      const stop = () => abort.abort();
      call.on('cancelled', stop);
      call.on('close', stop);
      call.on('error', stop);
      try {
        const caller = principalOf(call);
        const shown = (e: CloudEvent) => !caller.tenant || (e.type.startsWith(WORKLOAD_EVENT_PREFIX) && tenantOfWorkload(e.subject) === caller.tenant);
        for await (const e of events.read({ sinceSeq, sinceTimeNs, fromStart: req.from_start, follow: req.follow }, abort.signal)) {
          if ((!prefix || e.type.startsWith(prefix)) && shown(e)) call.write(toProtoEvent(e));
        }
      } catch (err) {
        if (!abort.signal.aborted) throw new UnavailableError(`event stream unavailable: ${errorMessage(err)}`, { cause: err });
      }
    }),
  };
}
