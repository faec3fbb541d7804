import {
  callUnary,
  CLIENT_MAX_RECEIVE_MESSAGE_BYTES,
  connectionFailure,
  channelCredentials,
  TLS_CHANNEL_OPTIONS,
  deadlineIn,
  fromCommandFailure,
  fromServiceError,
  InternalError,
  isServiceError,
  loadAgentProto,
  toLogOptions,
  WORKLOAD_KINDS,
  WORKLOAD_STATES,
  type LogChunk,
  type LogRequest,
  type LogStream,
  type pb,
  type CertificateFiles,
  UnavailableError,
  UnimplementedError,
  type WorkloadSpec,
} from '@virtfleet/shared';
import { once } from 'node:events';
import type { Interceptor, ServiceError } from '@grpc/grpc-js';
import { z } from 'zod';

const LOG_STREAMS: readonly LogStream[] = ['stdout', 'stderr', 'console'];
import { HostCommandBatcher, type CommandOutcome } from './host-command-batcher.js';

export type AgentAction = 'start' | 'stop' | 'pause' | 'resume' | 'delete';

export const DEFAULT_MAX_IN_FLIGHT_PER_HOST = 16;

export interface AgentClientOptions {
  /** @default 30_000 */
  deadlineMs: number;
  /** Attempts on UNAVAILABLE, the first included. @default 4 */
  maxAttempts: number;
  /** Mutual TLS: this coordinator's certificate; each agent must present one naming its host id. Plaintext without. */
  certificates?: CertificateFiles | undefined;
  /** Commands (create, start, stop, ...) in flight to one host; more wait their turn and go out together. Reads are not limited. @default 16 */
  maxInFlightPerHost?: number;
  /** Client interceptors of every agent call (metrics). @default [] */
  interceptors?: Interceptor[];
}

/** One lifecycle command on its way to an agent. */
interface QueuedCommand {
  request: pb.AgentCommand;
  deadlineMs: number;
}

type CommandBatcher = HostCommandBatcher<QueuedCommand, pb.WorkloadStatus__Output>;

/** A new batcher for a pool: a graceful stop, which may take its whole timeout, goes in a call of its own. */
const newBatcher = (maxInFlightPerHost: number): CommandBatcher => new HostCommandBatcher(maxInFlightPerHost, (c) => c.request.command === 'stop');

/** Agent replies are input from outside: checked before they touch state. */
const workloadStatusSchema = z.object({
  workload_id: z.string(),
  name: z.string(),
  kind: z.union([z.enum(WORKLOAD_KINDS), z.literal('')]),
  state: z.enum(WORKLOAD_STATES),
  driver: z.string(),
  driver_ref: z.string(),
  message: z.string(),
  cpu_percent: z.number(),
  memory_used_mib: z.number(),
  exit_code: z.number().int().optional(),
});

const nonNegative = z.number().finite().min(0);
const migrationProgressSchema = z.object({
  phase: z.enum(['transferring', 'switching', 'completed']),
  data_total_bytes: nonNegative,
  data_processed_bytes: nonNegative,
  data_remaining_bytes: nonNegative,
  bytes_per_second: nonNegative,
  downtime_ms: nonNegative,
});

/** Preparing a migration target may fetch the workload's images first. */
const PREPARE_INCOMING_DEADLINE_MS = 10 * 60_000;

const rpcByAction = {
  start: 'StartWorkload',
  stop: 'StopWorkload',
  pause: 'PauseWorkload',
  resume: 'ResumeWorkload',
  delete: 'DeleteWorkload',
} as const;

/**
 * Calls one agent. Every call carries a deadline. Retries on UNAVAILABLE are
 * left to grpc-js's retry policy, which is safe here because every Agent
 * method is idempotent: reads by nature, commands by their command id.
 * Commands queue per host (`HostCommandBatcher`); those that go out together
 * travel in one RunCommands call, or as single calls to an agent that does
 * not know it yet.
 */
export class AgentClient {
  private readonly client: pb.AgentClient;
  /** The agent answered RunCommands with UNIMPLEMENTED: it predates batches. */
  private batchesUnsupported = false;

  constructor(
    readonly hostId: string,
    readonly address: string,
    private readonly options: AgentClientOptions,
    /** Shared by every client of the pool, so that a host's limit survives a change of its address. */
    private readonly batcher: CommandBatcher = newBatcher(options.maxInFlightPerHost ?? DEFAULT_MAX_IN_FLIGHT_PER_HOST),
  ) {
    const proto = loadAgentProto();
    const serviceConfig = {
      methodConfig: [
        {
          name: [{ service: 'virtfleet.v1.Agent' }],
          retryPolicy: {
            maxAttempts: Math.max(2, options.maxAttempts),
            initialBackoff: '0.2s',
            maxBackoff: '2s',
            backoffMultiplier: 2,
            retryableStatusCodes: ['UNAVAILABLE'],
          },
        },
      ],
    };
    this.client = new proto.Agent(address, channelCredentials(options.certificates, { role: 'agent', name: hostId }), {
      'grpc.service_config': JSON.stringify(serviceConfig),
      'grpc.enable_retries': options.maxAttempts > 1 ? 1 : 0,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.max_receive_message_length': CLIENT_MAX_RECEIVE_MESSAGE_BYTES,
      ...TLS_CHANNEL_OPTIONS,
      ...(options.interceptors?.length ? { interceptors: options.interceptors } : {}),
    });
  }

  ping(payload: Buffer = Buffer.alloc(0)): Promise<pb.PingResponse__Output> {
    return this.call('Ping', { payload }, this.options.deadlineMs);
  }

  hostInfo(): Promise<pb.HostInfo__Output> {
    return this.call('GetHostInfo', {}, this.options.deadlineMs);
  }

  async create(commandId: string, workloadId: string, spec: WorkloadSpec): Promise<pb.WorkloadStatus__Output> {
    const request: pb.AgentCommand = { command: 'create', create: { command_id: commandId, workload_id: workloadId, spec } };
    return this.checkStatus(await this.batcher.run(this.hostId, { request, deadlineMs: this.options.deadlineMs }, this.sendBatch), workloadId);
  }

  async act(action: AgentAction, commandId: string, workloadId: string, stop: { timeoutSeconds?: number; force?: boolean } = {}): Promise<pb.WorkloadStatus__Output> {
    // A graceful stop may take its whole timeout before the agent answers.
    const deadlineMs = this.options.deadlineMs + (action === 'stop' ? (stop.timeoutSeconds ?? 0) * 1000 + 15_000 : 0);
    const request: pb.AgentCommand = {
      command: action,
      [action]: { command_id: commandId, workload_id: workloadId, timeout_seconds: stop.timeoutSeconds ?? 0, force: stop.force ?? false },
    };
    return this.checkStatus(await this.batcher.run(this.hostId, { request, deadlineMs }, this.sendBatch), workloadId);
  }

  /** Sends commands that go out together: one RunCommands call, or single calls for one command or an older agent. */
  private readonly sendBatch = async (commands: QueuedCommand[]): Promise<CommandOutcome<pb.WorkloadStatus__Output>[]> => {
    if (commands.length > 1 && !this.batchesUnsupported) {
      try {
        const reply = await this.call<pb.CommandBatchResult__Output>('RunCommands', { commands: commands.map((c) => c.request) }, Math.max(...commands.map((c) => c.deadlineMs)));
        if (reply.results.length !== commands.length) throw new InternalError(`host ${this.hostId} answered ${reply.results.length} results for ${commands.length} commands`);
        return reply.results.map((r): CommandOutcome<pb.WorkloadStatus__Output> => {
          if (r.status) return { ok: true, value: r.status };
          if (r.error) return { ok: false, error: fromCommandFailure(r.error, `host ${this.hostId}`) };
          return { ok: false, error: new InternalError(`host ${this.hostId} answered a command with neither a status nor an error`) };
        });
      } catch (err) {
        if (!(err instanceof UnimplementedError)) throw err;
        this.batchesUnsupported = true;
      }
    }
    return Promise.all(
      commands.map((c) =>
        this.callOne(c).then(
          (value): CommandOutcome<pb.WorkloadStatus__Output> => ({ ok: true, value }),
          (error: unknown): CommandOutcome<pb.WorkloadStatus__Output> => ({ ok: false, error }),
        ),
      ),
    );
  };

  /** One command through its own RPC. */
  private callOne({ request, deadlineMs }: QueuedCommand): Promise<pb.WorkloadStatus__Output> {
    const which = request.command;
    if (which === 'create') return this.call('CreateWorkload', request.create ?? {}, deadlineMs);
    if (which === undefined) return Promise.reject(new InternalError('a command without a kind'));
    return this.call(rpcByAction[which], request[which] ?? {}, deadlineMs);
  }

  async get(workloadId: string): Promise<pb.WorkloadStatus__Output> {
    return this.checkStatus(await this.call('GetWorkload', { workload_id: workloadId }, this.options.deadlineMs), workloadId);
  }

  /** Every workload the agent owns. */
  async list(): Promise<pb.WorkloadStatus__Output[]> {
    const res = await this.call<pb.ListAgentWorkloadsResponse__Output>('ListWorkloads', {}, this.options.deadlineMs);
    return res.workloads.map((w) => this.checkStatus(w, w.workload_id));
  }

  /**
   * A workload's log from the agent, as it streams it; reading slower slows
   * the agent (gRPC flow control). Ends early, quietly, when `signal` aborts.
   */
  async *logs(workloadId: string, request: LogRequest, signal: AbortSignal): AsyncGenerator<LogChunk> {
    const call = this.client.WorkloadLogs({ workload_id: workloadId, options: toLogOptions(request) });
    const cancel = () => call.cancel();
    signal.addEventListener('abort', cancel, { once: true });
    try {
      for await (const chunk of call as AsyncIterable<pb.LogChunk__Output>) {
        const stream = LOG_STREAMS.find((s) => s === chunk.stream);
        if (!stream) throw new InternalError(`host ${this.hostId} sent a log chunk of the unknown stream ${JSON.stringify(String(chunk.stream).slice(0, 32))}`);
        yield { stream, data: chunk.data };
      }
    } catch (err) {
      if (signal.aborted) return;
      throw isServiceError(err) ? this.failure(err) : err;
    } finally {
      signal.removeEventListener('abort', cancel);
      call.cancel();
    }
  }

  /** Live migration, on the target: its files made, and how the source reaches it. Slow when the images must be fetched first. */
  async prepareIncoming(commandId: string, workloadId: string, spec: WorkloadSpec): Promise<pb.IncomingMigration__Output> {
    const reply = await this.call<pb.IncomingMigration__Output>('PrepareIncomingMigration', { command_id: commandId, workload_id: workloadId, spec }, Math.max(this.options.deadlineMs, PREPARE_INCOMING_DEADLINE_MS));
    if (reply.host_id !== this.hostId) throw new InternalError(`host ${this.hostId} prepared a migration as host ${JSON.stringify(reply.host_id.slice(0, 64))}`);
    return reply;
  }

  /**
   * Live migration, on the source: its progress as the agent streams it,
   * ending when the workload runs on the target. Fails, with the workload
   * still running here, when the migration fails or is aborted.
   */
  async *migrate(commandId: string, workloadId: string, target: pb.IncomingMigration__Output, options: { maxDowntimeMs: number; bandwidthMiBs: number }, signal: AbortSignal): AsyncGenerator<pb.MigrationProgress__Output> {
    const call = this.client.MigrateWorkload({ command_id: commandId, workload_id: workloadId, target, max_downtime_ms: options.maxDowntimeMs, bandwidth_mib_s: options.bandwidthMiBs });
    const cancel = () => call.cancel();
    signal.addEventListener('abort', cancel, { once: true });
    try {
      for await (const p of call as AsyncIterable<pb.MigrationProgress__Output>) {
        const parsed = migrationProgressSchema.safeParse(p);
        if (!parsed.success) throw new InternalError(`host ${this.hostId} sent invalid migration progress: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`);
        yield p;
      }
    } catch (err) {
      throw isServiceError(err) ? this.failure(err) : err;
    } finally {
      signal.removeEventListener('abort', cancel);
    }
  }

  async abortMigration(workloadId: string): Promise<void> {
    await this.call('AbortMigration', { workload_id: workloadId }, this.options.deadlineMs);
  }

  /** On the target of a migration that did not finish: removes what it prepared. FailedPreconditionError when the workload runs there. */
  async discardIncoming(workloadId: string): Promise<void> {
    await this.call('DiscardIncomingMigration', { workload_id: workloadId }, this.options.deadlineMs);
  }

  /**
   * Cold migration, on the source: the stopped workload's state as the agent
   * streams it (see ExportWorkloadState); reading slower slows the agent.
   */
  exportState(workloadId: string, signal: AbortSignal, options: { memory: boolean } = { memory: false }): AsyncGenerator<pb.WorkloadStateChunk__Output> {
    return this.readState(this.client.ExportWorkloadState({ workload_id: workloadId, memory: options.memory }), signal);
  }

  /** Backup: the workload's state as it is now, while it may run (with `memory`, a VM's memory too), streamed as exportState streams it. */
  backupState(workloadId: string, signal: AbortSignal, options: { memory: boolean } = { memory: false }): AsyncGenerator<pb.WorkloadStateChunk__Output> {
    return this.readState(this.client.BackupWorkloadState({ workload_id: workloadId, memory: options.memory }), signal);
  }

  private async *readState(call: ReturnType<pb.AgentClient['ExportWorkloadState']>, signal: AbortSignal): AsyncGenerator<pb.WorkloadStateChunk__Output> {
    const cancel = () => call.cancel();
    signal.addEventListener('abort', cancel, { once: true });
    try {
      for await (const chunk of call as AsyncIterable<pb.WorkloadStateChunk__Output>) yield chunk;
    } catch (err) {
      throw isServiceError(err) ? this.failure(err) : err;
    } finally {
      signal.removeEventListener('abort', cancel);
      call.cancel();
    }
  }

  /**
   * Cold migration, on the target: sends `header`, then every chunk of
   * `chunks` in order, and answers what the agent made (stopped). Aborting
   * `signal` (or a failing `chunks`) cancels the call: the agent then makes
   * nothing.
   */
  async importState(header: pb.WorkloadStateHeader, chunks: AsyncIterable<pb.WorkloadStateChunk>, signal: AbortSignal): Promise<pb.WorkloadStatus__Output> {
    let settle!: { resolve: (s: pb.WorkloadStatus__Output) => void; reject: (e: unknown) => void };
    const answered = new Promise<pb.WorkloadStatus__Output>((resolve, reject) => (settle = { resolve, reject }));
    const call = this.client.ImportWorkloadState((err: ServiceError | null, status?: pb.WorkloadStatus__Output) => (err ? settle.reject(this.failure(err)) : settle.resolve(status!)));
    const cancel = () => call.cancel();
    signal.addEventListener('abort', cancel, { once: true });
    /** Set when the chunks' source failed: that error is the news, not the cancellation it causes. */
    let sourceFailed: { err: unknown } | undefined;
    const fromSource = async function* () {
      try {
        yield* chunks;
      } catch (err) {
        sourceFailed = { err };
        throw err;
      }
    };
    try {
      const send = async (chunk: pb.WorkloadStateChunk) => {
        if (!call.write(chunk)) await Promise.race([once(call, 'drain'), answered]);
      };
      await send({ header });
      for await (const chunk of fromSource()) await send(chunk);
      call.end();
      return this.checkStatus(await answered, header.workload_id ?? '');
    } catch (err) {
      call.cancel();
      answered.catch(() => undefined);
      if (sourceFailed) throw sourceFailed.err;
      // The agent's own refusal says more than the broken stream that carried it.
      throw await Promise.race([answered.then(() => err, (agentErr: unknown) => agentErr), new Promise((r) => setTimeout(() => r(err), 100))]);
    } finally {
      signal.removeEventListener('abort', cancel);
    }
  }

  close(): void {
    this.client.close();
  }

  private checkStatus(status: pb.WorkloadStatus__Output, workloadId: string): pb.WorkloadStatus__Output {
    const parsed = workloadStatusSchema.safeParse(status);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new InternalError(`host ${this.hostId} sent an invalid reply: ${issue?.path.join('.')}: ${issue?.message}`);
    }
    if (parsed.data.workload_id !== workloadId) throw new InternalError(`host ${this.hostId} replied about workload ${parsed.data.workload_id}, not ${workloadId}`);
    return status;
  }

  private call<Res>(method: string, request: object, deadlineMs: number): Promise<Res> {
    return callUnary<Res>(this.client, method, request, deadlineIn(deadlineMs), (err) => this.failure(err));
  }

  private failure(err: ServiceError): Error {
    // The transport's own text ends in grpc-js's "Resolution note: "; say plainly why the agent was not reached.
    const why = connectionFailure(err);
    return why ? new UnavailableError(`host ${this.hostId}: cannot reach its agent at ${this.address}: ${why}`, { cause: err }) : fromServiceError(err, `host ${this.hostId}`);
  }

}

/** One client per host, replaced when the host's advertised address changes. */
export class AgentClientPool {
  private readonly clients = new Map<string, AgentClient>();
  private readonly batcher: CommandBatcher;

  constructor(private readonly options: AgentClientOptions) {
    this.batcher = newBatcher(options.maxInFlightPerHost ?? DEFAULT_MAX_IN_FLIGHT_PER_HOST);
  }

  for(hostId: string, address: string): AgentClient {
    const existing = this.clients.get(hostId);
    if (existing?.address === address) return existing;
    existing?.close();
    const client = new AgentClient(hostId, address, this.options, this.batcher);
    this.clients.set(hostId, client);
    return client;
  }

  /** Closes and drops the client of a host that was forgotten. */
  forget(hostId: string): void {
    this.clients.get(hostId)?.close();
    this.clients.delete(hostId);
  }

  closeAll(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
