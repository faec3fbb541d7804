import { hostIdSchema, opaqueIdSchema, parseOrThrow, requireId, unary, type Logger, type pb } from '@virtfleet/shared';
import { z } from 'zod';
import { toProtoHost } from '../coordinator-service.js';
import type { RequestLedger } from '../requests/request-ledger.js';
import type { WorkloadController } from '../workloads/workload-controller.js';
import { drainCounts, type HostDrain, type HostDrainer } from './host-drainer.js';
import type { HostForgetter } from './host-forgetter.js';
import type { Host } from './host.js';
import type { HostRegistry } from './host-registry.js';

export type HostHandlers = Pick<pb.CoordinatorHandlers, 'DrainHost' | 'GetHostDrain' | 'UndrainHost' | 'RemoveHost'>;

/** Migrations a drain runs at once when the request says 0. */
export const DEFAULT_DRAIN_PARALLEL = 2;
export const MAX_DRAIN_PARALLEL = 64;
/** A week: a drain longer than that is a forgotten one. */
export const MAX_DRAIN_DEADLINE_SECONDS = 7 * 86_400;
export const DRAIN_MODES = ['auto', 'live', 'cold'] as const;

const requestIdSchema = z.union([z.literal(''), opaqueIdSchema]);

const drainRequestSchema = z.object({
  host_id: hostIdSchema,
  request_id: requestIdSchema,
  parallel: z.number().int().min(0).max(MAX_DRAIN_PARALLEL, `must be at most ${MAX_DRAIN_PARALLEL} (0: ${DEFAULT_DRAIN_PARALLEL})`),
  deadline_seconds: z.number().int().min(0).max(MAX_DRAIN_DEADLINE_SECONDS, `must be at most ${MAX_DRAIN_DEADLINE_SECONDS} (7 days; 0: none)`),
  mode: z.enum(['', ...DRAIN_MODES], { error: 'must be live, cold or auto (empty: auto)' }),
});

export function toProtoDrain(d: HostDrain): pb.HostDrain {
  return {
    host_id: d.hostId,
    id: d.id,
    state: d.state,
    mode: d.mode,
    parallel: d.parallel,
    started_at: d.startedAt,
    deadline: d.deadlineAt ?? '',
    ended_at: d.endedAt ?? '',
    message: d.message,
    workloads: d.workloads.map((w) => ({ workload_id: w.workloadId, name: w.name, kind: w.kind, outcome: w.outcome, host_id: w.hostId, reason: w.reason, updated_at: w.updatedAt })),
    ...drainCounts(d),
  };
}

/** The host-maintenance calls of virtfleet.v1.Coordinator: drain, undrain and removal. Every request is validated first. */
export function hostHandlers(drainer: HostDrainer, forgetter: HostForgetter, controller: WorkloadController, hosts: HostRegistry, requests: RequestLedger, log: Logger): HostHandlers {
  const hostView = (h: Host | undefined, hostId: string): pb.Host =>
    h
      ? toProtoHost(h, controller.snapshots().find((snap) => snap.id === hostId), controller.workloadsOn(hostId).filter((w) => w.state !== 'deleted').length)
      : { id: hostId, status: 'down' };
  return {
    DrainHost: unary<pb.DrainHostRequest__Output, pb.HostDrain>(log, 'DrainHost', (req) => {
      const r = parseOrThrow(drainRequestSchema, req);
      const params = { parallel: r.parallel || DEFAULT_DRAIN_PARALLEL, deadline_seconds: r.deadline_seconds, mode: r.mode || 'auto' };
      return requests.run(r.request_id, { method: 'DrainHost', subject: r.host_id, params }, async () => {
        controller.requireLeader();
        return toProtoDrain(await drainer.start(r.host_id, { requestId: r.request_id, parallel: params.parallel, deadlineMs: params.deadline_seconds * 1000, mode: params.mode }));
      });
    }),
    GetHostDrain: unary<pb.GetHostDrainRequest__Output, pb.HostDrain>(log, 'GetHostDrain', async (req) => toProtoDrain(await drainer.get(requireId(hostIdSchema, req.host_id, 'host_id')))),
    UndrainHost: unary<pb.UndrainHostRequest__Output, pb.UndrainHostResponse>(log, 'UndrainHost', (req) => {
      const hostId = requireId(hostIdSchema, req.host_id, 'host_id');
      const requestId = req.request_id ? requireId(opaqueIdSchema, req.request_id, 'request_id') : '';
      return requests.run(requestId, { method: 'UndrainHost', subject: hostId, params: {} }, async () => {
        const drain = await drainer.undrain(hostId);
        return { host: hostView(hosts.get(hostId), hostId), ...(drain ? { drain: toProtoDrain(drain) } : {}) };
      });
    }),
    RemoveHost: unary<pb.RemoveHostRequest__Output, pb.Host>(log, 'RemoveHost', (req) => {
      const hostId = requireId(hostIdSchema, req.host_id, 'host_id');
      const requestId = req.request_id ? requireId(opaqueIdSchema, req.request_id, 'request_id') : '';
      return requests.run(requestId, { method: 'RemoveHost', subject: hostId, params: {} }, () => {
        const before = hosts.get(hostId);
        const view = before && hostView(before, hostId);
        forgetter.remove(hostId);
        return Promise.resolve(view ?? hostView(undefined, hostId));
      });
    }),
  };
}
