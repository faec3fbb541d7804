import { InterceptingCall, status, type ClientReadableStream, type Interceptor, type ServiceError } from '@grpc/grpc-js';
import { CertificateFiles, CLIENT_MAX_RECEIVE_MESSAGE_BYTES, TLS_CHANNEL_OPTIONS, callUnary, channelCredentials, connectionFailure, DeadlineExceededError, ERROR_METADATA, fromServiceError, InvalidArgumentError, loadCoordinatorProto, NotLeaderError, UnavailableError, type MutualTlsFiles, type pb } from '@virtfleet/shared';

export interface ConnectionOptions {
  /** host:port of the coordinator's API; several, comma-separated, for a highly available set. */
  address: string;
  /** Per-call deadline in ms. */
  timeoutMs: number;
  /** Mutual TLS: an operator certificate and the cluster CA. Plaintext without (a coordinator run with grpc.insecure). */
  tls?: MutualTlsFiles | undefined;
  /** A bearer token (`virtfleet token create`), sent with every call; without one the certificate alone must be enough. */
  token?: string | undefined;
}

/** Adds `authorization: Bearer <token>` to every call of a client. */
function bearerToken(token: string): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start: (metadata, listener, next) => {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

/** Promise wrapper over the generated Coordinator client; errors come back as virtfleet error classes. */
export class CoordinatorApi {
  private readonly addresses: string[];
  private readonly clients: pb.CoordinatorClient[];
  /** The client that answered last; tried first next time. */
  private current = 0;

  constructor(private readonly options: ConnectionOptions) {
    const proto = loadCoordinatorProto();
    this.addresses = options.address.split(',').map((a) => a.trim()).filter(Boolean);
    if (this.addresses.length === 0) throw new InvalidArgumentError('--coordinator', 'must be HOST:PORT, or several separated by commas');
    const certificates = options.tls ? new CertificateFiles(options.tls, (part) => `--${part}`) : undefined;
    const creds = channelCredentials(certificates, { role: 'coordinator' });
    const interceptors = options.token ? [bearerToken(options.token)] : [];
    this.clients = this.addresses.map((a) => new proto.Coordinator(a, creds, { ...CHANNEL_OPTIONS, interceptors }));
  }

  private get client(): pb.CoordinatorClient {
    return this.clients[this.current]!;
  }

  createToken(req: pb.CreateTokenRequest): Promise<pb.CreatedToken__Output> {
    return this.unary('CreateToken', req);
  }
  listTokens(): Promise<pb.ListTokensResponse__Output> {
    return this.unary('ListTokens', {});
  }
  revokeToken(req: pb.RevokeTokenRequest): Promise<pb.Token__Output> {
    return this.unary('RevokeToken', req);
  }

  submit(req: pb.SubmitWorkloadRequest): Promise<pb.Workload__Output> {
    return this.unary('SubmitWorkload', req);
  }
  get(id: string): Promise<pb.Workload__Output> {
    return this.unary('GetWorkload', { id });
  }
  list(req: pb.ListWorkloadsRequest = {}): Promise<pb.ListWorkloadsResponse__Output> {
    return this.unary('ListWorkloads', req);
  }
  hosts(req: pb.ListHostsRequest = {}): Promise<pb.ListHostsResponse__Output> {
    return this.unary('ListHosts', req);
  }
  act(method: 'StartWorkload' | 'StopWorkload' | 'PauseWorkload' | 'ResumeWorkload' | 'DeleteWorkload', req: pb.WorkloadActionRequest): Promise<pb.Workload__Output> {
    return this.unary(method, req);
  }
  migrate(req: pb.MigrateWorkloadRequest): Promise<pb.Workload__Output> {
    return this.unary('MigrateWorkload', req);
  }
  createBackup(req: pb.CreateBackupRequest): Promise<pb.Backup__Output> {
    return this.unary('CreateBackup', req);
  }
  listBackups(req: pb.ListBackupsRequest = {}): Promise<pb.ListBackupsResponse__Output> {
    return this.unary('ListBackups', req);
  }
  deleteBackup(req: pb.BackupRef): Promise<pb.Backup__Output> {
    return this.unary('DeleteBackup', req);
  }
  verifyBackup(req: pb.BackupRef): Promise<pb.BackupVerification__Output> {
    return this.unary('VerifyBackup', req);
  }
  restoreBackup(req: pb.RestoreBackupRequest): Promise<pb.Workload__Output> {
    return this.unary('RestoreBackup', req);
  }
  pruneBackups(req: pb.PruneBackupsRequest): Promise<pb.PruneBackupsResponse__Output> {
    return this.unary('PruneBackups', req);
  }
  confirmDead(hostId: string, requestId = ''): Promise<pb.ConfirmHostDeadResponse__Output> {
    return this.unary('ConfirmHostDead', { host_id: hostId, request_id: requestId });
  }
  cordon(hostId: string, cordon: boolean, requestId = ''): Promise<pb.Host__Output> {
    return this.unary('CordonHost', { host_id: hostId, cordon, request_id: requestId });
  }
  drainHost(req: pb.DrainHostRequest): Promise<pb.HostDrain__Output> {
    return this.unary('DrainHost', req);
  }
  hostDrain(hostId: string): Promise<pb.HostDrain__Output> {
    return this.unary('GetHostDrain', { host_id: hostId });
  }
  undrainHost(hostId: string, requestId = ''): Promise<pb.UndrainHostResponse__Output> {
    return this.unary('UndrainHost', { host_id: hostId, request_id: requestId });
  }
  removeHost(hostId: string, requestId = ''): Promise<pb.Host__Output> {
    return this.unary('RemoveHost', { host_id: hostId, request_id: requestId });
  }
  explain(id: string): Promise<pb.PlacementDecision__Output> {
    return this.unary('ExplainWorkload', { id });
  }
  plan(spec: pb.WorkloadSpec): Promise<pb.PlacementDecision__Output> {
    return this.unary('PlanWorkload', { spec });
  }
  planRebalance(goal: string): Promise<pb.RebalancePlan__Output> {
    return this.unary('PlanRebalance', { goal });
  }
  queue(req: pb.GetQueueRequest = {}): Promise<pb.QueueState__Output> {
    return this.unary('GetQueue', req);
  }
  setQueuePolicy(policy: string, backfill?: boolean, requestId = ''): Promise<pb.QueueState__Output> {
    return this.unary('SetQueuePolicy', { policy, request_id: requestId, ...(backfill === undefined ? {} : { backfill }) });
  }
  /** The raw stream from the coordinator that answered last; `streamEvents` adds failover and error mapping. */
  watch(req: WatchRequest): ClientReadableStream<pb.Event__Output> {
    return this.client.WatchEvents(req);
  }

  /**
   * Streams events to `onEvent` until the stream ends (without `follow`,
   * after the last retained event), `signal` aborts, or it fails. Until the
   * first event arrives, an address that cannot be reached moves on to the
   * next, as for unary calls.
   */
  streamEvents(req: WatchRequest, onEvent: (e: pb.Event__Output) => void, signal: AbortSignal): Promise<void> {
    return this.stream('WatchEvents', req, onEvent, signal);
  }

  /**
   * Streams a workload's log to `onChunk` until it ends (without `follow`, at
   * the end of the retained log), `signal` aborts, or it fails. When
   * `onChunk` returns a promise, reading waits for it: a slow stdout slows
   * the agent, not the CLI's memory.
   */
  streamLogs(req: pb.GetWorkloadLogsRequest, onChunk: (c: pb.LogChunk__Output) => void | Promise<unknown>, signal: AbortSignal): Promise<void> {
    return this.stream('WorkloadLogs', req, onChunk, signal);
  }

  private async stream<T>(method: 'WatchEvents' | 'WorkloadLogs', req: object, onMessage: (m: T) => unknown, signal: AbortSignal): Promise<void> {
    const unreachable = new Map<number, string>();
    for (;;) {
      const index = this.current;
      try {
        await this.streamOnce(index, method, req, onMessage, signal);
        return;
      } catch (err) {
        if (!(err instanceof NoConnectionError) || err.afterData) throw err;
        unreachable.set(index, err.reason);
        if (unreachable.size === this.clients.length) throw this.unreachableError(unreachable, err);
        this.current = (index + 1) % this.clients.length;
      }
    }
  }

  listImages(): Promise<pb.ListImagesResponse__Output> {
    return this.unary('ListImages', {});
  }

  deleteImage(name: string, force = false): Promise<pb.Image__Output> {
    return this.unary('DeleteImage', { name, force });
  }

  /**
   * Streams an image to the leader: the header, then `data()` in order,
   * waiting whenever the transport says to (back-pressure). A follower
   * refuses at the header, and the import starts again, with fresh data, at
   * the next address. No deadline: an import takes as long as its bytes do.
   */
  importImage(header: pb.ImportImageHeader, data: () => AsyncIterable<Buffer>): Promise<pb.Image__Output> {
    return this.withFailover(Date.now() + this.options.timeoutMs, (index) => this.importOnce(index, header, data()));
  }

  private importOnce(index: number, header: pb.ImportImageHeader, data: AsyncIterable<Buffer>): Promise<pb.Image__Output> {
    return new Promise<pb.Image__Output>((resolve, reject) => {
      // Set once the coordinator has answered: a refusal can come before the last byte, and then nothing more is sent.
      let answered = false;
      const call = this.clients[index]!.ImportImage((err, image) => {
        answered = true;
        if (err) reject(this.mapError(index, err));
        else if (image) resolve(image);
        else reject(new UnavailableError('the coordinator ended the import without an answer'));
      });
      const writable = () => new Promise((r) => (call.once('drain', r), call.once('status', r)));
      void (async () => {
        try {
          call.write({ header });
          for await (const chunk of data) {
            if (answered) return;
            if (!call.write({ data: chunk })) await writable();
          }
          call.end();
        } catch (err) {
          call.cancel();
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      })();
    });
  }

  close(): void {
    for (const c of this.clients) c.close();
  }

  /**
   * One call, with failover. A follower's refusal or an address that cannot
   * be reached moves on to the next address; while some coordinator answers
   * (followers during an election), rounds repeat until the deadline. Once
   * every address has failed to connect since the last answer, the call
   * fails at once: nothing is listening, and waiting would only hide that.
   * Every call the CLI makes is safe to repeat.
   */
  private unary<Res>(method: string, req: object): Promise<Res> {
    const deadline = Date.now() + this.options.timeoutMs;
    return this.withFailover(deadline, (index) => this.once<Res>(index, method, req, deadline));
  }

  /** Runs `call` against the current address, moving on as `unary` describes. */
  private async withFailover<T>(deadline: number, call: (index: number) => Promise<T>): Promise<T> {
    const unreachable = new Map<number, string>();
    let refusal: NotLeaderError | undefined;
    for (let attempt = 0; ; attempt++) {
      const index = this.current;
      try {
        return await call(index);
      } catch (err) {
        // Out of time in a call after followers refused: that no leader answered is the news.
        if (err instanceof DeadlineExceededError && refusal) throw refusal;
        if (err instanceof NoConnectionError) {
          unreachable.set(index, err.reason);
          if (unreachable.size === this.clients.length) throw this.unreachableError(unreachable, err);
        } else if (err instanceof NotLeaderError) {
          unreachable.clear();
          refusal = err;
        } else {
          throw err;
        }
        if (Date.now() >= deadline) throw err;
        this.current = (index + 1) % this.clients.length;
        // A full round of refusals: give an election time to finish.
        if (this.current === 0 || this.clients.length === 1) await sleep(Math.min(1000, 100 * (attempt + 1), deadline - Date.now()));
        if (Date.now() >= deadline) throw err;
      }
    }
  }

  private once<Res>(index: number, method: string, req: object, deadline: number): Promise<Res> {
    return callUnary<Res>(this.clients[index]!, method, req, new Date(deadline), (err) => this.mapError(index, err));
  }

  private streamOnce<T>(index: number, method: 'WatchEvents' | 'WorkloadLogs', req: object, onMessage: (m: T) => unknown, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal.aborted) {
        resolve();
        return;
      }
      const client = this.clients[index]!;
      const stream: ClientReadableStream<T> = method === 'WatchEvents' ? (client.WatchEvents(req) as ClientReadableStream<T>) : (client.WorkloadLogs(req) as ClientReadableStream<T>);
      let received = false;
      let settled = false;
      let held: Promise<void> = Promise.resolve();
      const cancel = () => stream.cancel();
      const settle = (err?: Error) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', cancel);
        if (err) reject(err);
        else resolve();
      };
      signal.addEventListener('abort', cancel, { once: true });
      stream.on('data', (m: T) => {
        received = true;
        this.current = index;
        if (signal.aborted) return;
        const wait = onMessage(m);
        // Only a promise holds the stream back; a callback may well return something else (push's new length).
        if (wait instanceof Promise) {
          stream.pause();
          const resume = () => void stream.resume();
          held = wait.then(resume, resume);
        }
      });
      // The end can come while the last message's promise is still pending: it counts once that is done.
      stream.on('end', () => void held.then(() => settle()));
      stream.on('error', (err: ServiceError) => {
        if (signal.aborted) return settle();
        const mapped = this.mapError(index, err);
        if (mapped instanceof NoConnectionError) mapped.afterData = received;
        settle(mapped);
      });
    });
  }

  /** A client-side ServiceError as a virtfleet error that names the address when the transport failed. */
  private mapError(index: number, err: ServiceError): Error {
    const address = this.addresses[index]!;
    const reason = connectionFailure(err);
    if (reason !== undefined) return new NoConnectionError(address, reason, { cause: err });
    // No virtfleet trailers: the deadline passed in the transport, not in the coordinator.
    if (err.code === status.DEADLINE_EXCEEDED && err.metadata.get(ERROR_METADATA.retryable).length === 0)
      return new DeadlineExceededError(`no answer from the coordinator at ${address} within ${Number((this.options.timeoutMs / 1000).toFixed(3))} s (--timeout)`, { cause: err });
    return fromServiceError(err);
  }

  private unreachableError(reasons: Map<number, string>, cause: unknown): CoordinatorUnreachableError {
    return new CoordinatorUnreachableError(
      this.addresses.map((address, i) => ({ address, reason: reasons.get(i) ?? 'not tried' })),
      { cause },
    );
  }
}

export interface WatchRequest {
  type_prefix?: string;
  since_seq?: string;
  since_time?: string;
  from_start?: boolean;
  follow?: boolean;
}

/**
 * grpc-js backs off up to 120 s between connection attempts, and fails calls
 * at once in between; a long-lived client should notice within a second that
 * a coordinator came back. Replies may pass grpc-js's 4 MiB (a page of
 * thousands of workloads): see CLIENT_MAX_RECEIVE_MESSAGE_BYTES.
 */
const CHANNEL_OPTIONS = { 'grpc.initial_reconnect_backoff_ms': 250, 'grpc.max_reconnect_backoff_ms': 1000, 'grpc.max_receive_message_length': CLIENT_MAX_RECEIVE_MESSAGE_BYTES, ...TLS_CHANNEL_OPTIONS };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** One address could not be reached: the call may go to the next. */
class NoConnectionError extends UnavailableError {
  /** The connection was lost after a stream had delivered data, so the call cannot simply be made again elsewhere. */
  afterData = false;
  constructor(
    readonly address: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${address}: ${reason}`, options);
  }
}

/** No coordinator address could be reached: each refused the connection, or its name did not resolve. */
export class CoordinatorUnreachableError extends UnavailableError {
  constructor(
    readonly failures: { address: string; reason: string }[],
    options?: { cause?: unknown },
  ) {
    super(
      failures.length === 1
        ? `cannot reach the coordinator at ${failures[0]!.address}: ${failures[0]!.reason}`
        : `cannot reach any coordinator: ${failures.map((f) => `${f.address}: ${f.reason}`).join('; ')}`,
      options,
    );
  }
}
