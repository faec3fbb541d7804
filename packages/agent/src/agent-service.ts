import {
  InvalidArgumentError,
  opaqueIdSchema,
  parseWorkloadSpec,
  callSignal,
  parseLogOptions,
  pipeToCall,
  requireId,
  serverStream,
  toCommandFailure,
  unary,
  workloadIdSchema,
  type Logger,
  type pb,
} from '@virtfleet/shared';
import type { LifecycleAction, WorkloadManager } from './workload-manager.js';

/** Maximum stop timeout a caller may ask for, in seconds. */
const MAX_STOP_TIMEOUT_SECONDS = 3600;
/** Commands in one RunCommands call, at most. */
export const MAX_BATCH_COMMANDS = 256;

const ACTIONS: readonly LifecycleAction[] = ['start', 'stop', 'pause', 'resume', 'delete'];

/** Implements virtfleet.v1.Agent on top of the WorkloadManager. Every request is validated first. */
export function agentHandlers(manager: WorkloadManager, hostInfo: () => Promise<pb.HostInfo>, hostId: string, log: Logger): pb.AgentHandlers {
  const create = (req: pb.CreateWorkloadRequest__Output): Promise<pb.WorkloadStatus> => {
    const commandId = requireId(opaqueIdSchema, req.command_id, 'command_id');
    const workloadId = requireId(workloadIdSchema, req.workload_id, 'workload_id');
    const spec = parseWorkloadSpec(req.spec, 'spec');
    return manager.create(commandId, workloadId, spec);
  };
  const act = (action: LifecycleAction, req: pb.WorkloadCommand__Output): Promise<pb.WorkloadStatus> => {
    const commandId = requireId(opaqueIdSchema, req.command_id, 'command_id');
    const workloadId = requireId(workloadIdSchema, req.workload_id, 'workload_id');
    if (req.timeout_seconds < 0 || req.timeout_seconds > MAX_STOP_TIMEOUT_SECONDS)
      throw new InvalidArgumentError('timeout_seconds', `must be between 0 and ${MAX_STOP_TIMEOUT_SECONDS}`);
    return manager.act(action, commandId, workloadId, { timeoutSeconds: req.timeout_seconds, force: req.force });
  };
  /** One command of a batch, carried out as its own RPC would carry it out. */
  const run = async (command: pb.AgentCommand__Output): Promise<pb.WorkloadStatus> => {
    const which = command.command;
    if (which === 'create' && command.create) return create(command.create);
    const action = ACTIONS.find((a) => a === which);
    const req = action && command[action];
    if (!action || !req) throw new InvalidArgumentError('command', 'must be one of create, start, stop, pause, resume or delete');
    return act(action, req);
  };
  const command = (action: LifecycleAction) => unary<pb.WorkloadCommand__Output, pb.WorkloadStatus>(log, action, (req) => act(action, req));

  return {
    Ping: unary<pb.PingRequest__Output, pb.PingResponse>(log, 'Ping', (req) => Promise.resolve({ payload: req.payload, host_id: hostId })),
    GetHostInfo: unary(log, 'GetHostInfo', () => hostInfo()),
    CreateWorkload: unary<pb.CreateWorkloadRequest__Output, pb.WorkloadStatus>(log, 'CreateWorkload', create),
    StartWorkload: command('start'),
    StopWorkload: command('stop'),
    PauseWorkload: command('pause'),
    ResumeWorkload: command('resume'),
    DeleteWorkload: command('delete'),
    GetWorkload: unary<pb.GetAgentWorkloadRequest__Output, pb.WorkloadStatus>(log, 'GetWorkload', (req) =>
      manager.get(requireId(workloadIdSchema, req.workload_id, 'workload_id')),
    ),
    ListWorkloads: unary(log, 'ListWorkloads', async () => ({ workloads: await manager.list() })),
    WorkloadLogs: serverStream<pb.WorkloadLogsRequest__Output, pb.LogChunk>(log, 'WorkloadLogs', async (call) => {
      const workloadId = requireId(workloadIdSchema, call.request.workload_id, 'workload_id');
      const request = parseLogOptions(call.request.options, 'options');
      const signal = callSignal(call);
      await pipeToCall(manager.logs(workloadId, request, signal), call, signal);
    }),
    RunCommands: unary<pb.CommandBatch__Output, pb.CommandBatchResult>(log, 'RunCommands', async (req) => {
      if (req.commands.length > MAX_BATCH_COMMANDS) throw new InvalidArgumentError('commands', `at most ${MAX_BATCH_COMMANDS} in one call, not ${req.commands.length}`);
      const settled = await Promise.allSettled(req.commands.map((c) => run(c)));
      return {
        results: settled.map((s): pb.CommandResult => (s.status === 'fulfilled' ? { status: s.value } : { error: toCommandFailure(s.reason) })),
      };
    }),
  };
}
