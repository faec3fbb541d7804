import {
  InvalidArgumentError,
  opaqueIdSchema,
  parseWorkloadSpec,
  requireId,
  unary,
  workloadIdSchema,
  type Logger,
  type pb,
} from '@virtfleet/shared';
import type { LifecycleAction, WorkloadManager } from './workload-manager.js';

/** Maximum stop timeout a caller may ask for, in seconds. */
const MAX_STOP_TIMEOUT_SECONDS = 3600;

/** Implements virtfleet.v1.Agent on top of the WorkloadManager. Every request is validated first. */
export function agentHandlers(manager: WorkloadManager, hostInfo: () => Promise<pb.HostInfo>, hostId: string, log: Logger): pb.AgentHandlers {
  const command = (action: LifecycleAction) =>
    unary<pb.WorkloadCommand__Output, pb.WorkloadStatus>(log, action, (req) => {
      const commandId = requireId(opaqueIdSchema, req.command_id, 'command_id');
      const workloadId = requireId(workloadIdSchema, req.workload_id, 'workload_id');
      if (req.timeout_seconds < 0 || req.timeout_seconds > MAX_STOP_TIMEOUT_SECONDS)
        throw new InvalidArgumentError('timeout_seconds', `must be between 0 and ${MAX_STOP_TIMEOUT_SECONDS}`);
      return manager.act(action, commandId, workloadId, { timeoutSeconds: req.timeout_seconds, force: req.force });
    });

  return {
    Ping: unary<pb.PingRequest__Output, pb.PingResponse>(log, 'Ping', (req) => Promise.resolve({ payload: req.payload, host_id: hostId })),
    GetHostInfo: unary(log, 'GetHostInfo', () => hostInfo()),
    CreateWorkload: unary<pb.CreateWorkloadRequest__Output, pb.WorkloadStatus>(log, 'CreateWorkload', (req) => {
      const commandId = requireId(opaqueIdSchema, req.command_id, 'command_id');
      const workloadId = requireId(workloadIdSchema, req.workload_id, 'workload_id');
      const spec = parseWorkloadSpec(req.spec, 'spec');
      return manager.create(commandId, workloadId, spec);
    }),
    StartWorkload: command('start'),
    StopWorkload: command('stop'),
    PauseWorkload: command('pause'),
    ResumeWorkload: command('resume'),
    DeleteWorkload: command('delete'),
    GetWorkload: unary<pb.GetAgentWorkloadRequest__Output, pb.WorkloadStatus>(log, 'GetWorkload', (req) =>
      manager.get(requireId(workloadIdSchema, req.workload_id, 'workload_id')),
    ),
    ListWorkloads: unary(log, 'ListWorkloads', async () => ({ workloads: await manager.list() })),
  };
}
