import {
  hostIdSchema,
  InvalidArgumentError,
  opaqueIdSchema,
  parseWorkloadSpec,
  callSignal,
  clientStream,
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
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerWritableStream } from '@grpc/grpc-js';
import { z } from 'zod';
import type { IncomingMigration } from './drivers/driver.js';
import { StateReceiver, stateChunks } from './state-stream.js';
import type { LifecycleAction, WorkloadManager } from './workload-manager.js';

const migrationFileSchema = z.object({ role: z.string().regex(/^(disk:[a-z0-9-]{1,63}|kernel|initrd|seed|console-log)$/, 'must be disk:NAME, kernel, initrd, seed or console-log'), path: z.string().regex(/^\/[A-Za-z0-9._+/-]{1,4095}$/, 'must be an absolute path of letters, digits and ._+-/') });
const incomingMigrationSchema = z.object({
  host_id: hostIdSchema,
  hypervisor_uri: z.string().regex(/^[a-z+]+:\/\/[^\s/]+\/[^\s]*$/, 'must be a libvirt URI with a host'),
  transfer_uri: z.string().regex(/^tcp:\/\/[A-Za-z0-9.:[\]-]+$/, 'must be tcp://HOST'),
  files: z.array(migrationFileSchema).max(64),
  backend_name: z.string().regex(/^[A-Za-z0-9._-]{1,200}$/, 'must be a backend name'),
});

/** The target's answer to PrepareIncomingMigration, as the coordinator forwards it; every value reaches libvirt, so each is checked. */
function parseIncomingMigration(input: unknown, field: string): IncomingMigration {
  const parsed = incomingMigrationSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InvalidArgumentError([field, ...issue.path].join('.'), issue.message);
  }
  const t = parsed.data;
  return { hostId: t.host_id, hypervisorUri: t.hypervisor_uri, transferUri: t.transfer_uri, files: Object.fromEntries(t.files.map((f) => [f.role, f.path])), backendName: t.backend_name };
}

/** Maximum stop timeout a caller may ask for, in seconds. */
const MAX_STOP_TIMEOUT_SECONDS = 3600;
/** Commands in one RunCommands call, at most. */
export const MAX_BATCH_COMMANDS = 256;

const ACTIONS: readonly LifecycleAction[] = ['start', 'stop', 'pause', 'resume', 'delete'];

/** A workload state larger than this is refused: 1 TiB. */
const MAX_IMPORT_BYTES = 2 ** 40;

/**
 * Implements virtfleet.v1.Agent on top of the WorkloadManager. Every request is validated first.
 * `scratchDir` holds exports and imports on their way (on the disk the workloads' files are on, so imported files move into place).
 */
export function agentHandlers(manager: WorkloadManager, hostInfo: () => Promise<pb.HostInfo>, hostId: string, log: Logger, scratchDir: () => string = tmpdir): pb.AgentHandlers {
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
  /** Streams a workload's state: as exported once stopped, or (`snapshot`, a backup) as it is now. */
  const sendState = async (call: ServerWritableStream<{ workload_id: string; memory: boolean }, pb.WorkloadStateChunk>, snapshot: boolean): Promise<void> => {
    const workloadId = requireId(workloadIdSchema, call.request.workload_id, 'workload_id');
    const signal = callSignal(call);
    const dir = await mkdtemp(join(scratchDir(), `${snapshot ? 'backup' : 'export'}-${workloadId}-`));
    // A running VM's backup is written by QEMU, which runs as its own user: it may pass through, not list.
    if (snapshot) await chmod(dir, 0o711);
    try {
      await manager.exportState(workloadId, dir, (files) => pipeToCall(stateChunks(files, signal), call, signal), snapshot, { memory: call.request.memory === true });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
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
    PrepareIncomingMigration: unary<pb.PrepareIncomingMigrationRequest__Output, pb.IncomingMigration>(log, 'PrepareIncomingMigration', (req) => {
      const commandId = requireId(opaqueIdSchema, req.command_id, 'command_id');
      const workloadId = requireId(workloadIdSchema, req.workload_id, 'workload_id');
      return manager.prepareIncoming(commandId, workloadId, parseWorkloadSpec(req.spec, 'spec'));
    }),
    MigrateWorkload: serverStream<pb.MigrateOutRequest__Output, pb.MigrationProgress>(log, 'MigrateWorkload', async (call) => {
      const req = call.request;
      const commandId = requireId(opaqueIdSchema, req.command_id, 'command_id');
      const workloadId = requireId(workloadIdSchema, req.workload_id, 'workload_id');
      const target = parseIncomingMigration(req.target, 'target');
      await manager.migrateOut(commandId, workloadId, target, { maxDowntimeMs: req.max_downtime_ms, bandwidthMiBs: req.bandwidth_mib_s }, (p) => {
        call.write({
          phase: p.phase,
          data_total_bytes: p.dataTotalBytes,
          data_processed_bytes: p.dataProcessedBytes,
          data_remaining_bytes: p.dataRemainingBytes,
          bytes_per_second: p.bytesPerSecond,
          downtime_ms: p.downtimeMs,
          elapsed_ms: p.elapsedMs,
        });
      });
    }),
    AbortMigration: unary<pb.GetAgentWorkloadRequest__Output, pb.WorkloadStatus>(log, 'AbortMigration', async (req) => {
      const workloadId = requireId(workloadIdSchema, req.workload_id, 'workload_id');
      await manager.abortMigration(workloadId);
      return manager.get(workloadId);
    }),
    DiscardIncomingMigration: unary<pb.GetAgentWorkloadRequest__Output, pb.WorkloadStatus>(log, 'DiscardIncomingMigration', async (req) => {
      const workloadId = requireId(workloadIdSchema, req.workload_id, 'workload_id');
      await manager.discardIncoming(workloadId);
      return { workload_id: workloadId, state: 'deleted', message: 'incoming migration discarded' };
    }),
    ExportWorkloadState: serverStream<pb.ExportWorkloadStateRequest__Output, pb.WorkloadStateChunk>(log, 'ExportWorkloadState', (call) => sendState(call, false)),
    BackupWorkloadState: serverStream<pb.BackupWorkloadStateRequest__Output, pb.WorkloadStateChunk>(log, 'BackupWorkloadState', (call) => sendState(call, true)),
    ImportWorkloadState: clientStream<pb.WorkloadStateChunk__Output, pb.WorkloadStatus>(log, 'ImportWorkloadState', async (call) => {
      const dir = await mkdtemp(join(scratchDir(), 'import-'));
      const receiver = new StateReceiver(dir, MAX_IMPORT_BYTES);
      try {
        for await (const chunk of call as AsyncIterable<pb.WorkloadStateChunk__Output>) await receiver.take(chunk);
        const { header, files } = await receiver.finish();
        const commandId = requireId(opaqueIdSchema, header.command_id, 'header.command_id');
        const workloadId = requireId(workloadIdSchema, header.workload_id, 'header.workload_id');
        return await manager.importState(commandId, workloadId, parseWorkloadSpec(header.spec, 'header.spec'), files);
      } finally {
        receiver.abandon();
        await rm(dir, { recursive: true, force: true });
      }
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
