import type { ClientReadableStream } from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { callUnary, channelCredentials, ERROR_METADATA, fromServiceError, loadCoordinatorProto, NotLeaderError, UnavailableError, type pb, type TlsFiles } from '@virtfleet/shared';

export interface ConnectionOptions {
  /** host:port of the coordinator's API; several, comma-separated, for a highly available set. */
  address: string;
  /** Per-call deadline in ms. */
  timeoutMs: number;
  tls?: TlsFiles;
}

/** Promise wrapper over the generated Coordinator client; errors come back as virtfleet error classes. */
export class CoordinatorApi {
  private readonly clients: pb.CoordinatorClient[];
  /** The client that answered last; tried first next time. */
  private current = 0;

  constructor(private readonly options: ConnectionOptions) {
    const proto = loadCoordinatorProto();
    const addresses = options.address.split(',').map((a) => a.trim()).filter(Boolean);
    this.clients = addresses.map((a) => new proto.Coordinator(a, channelCredentials(options.tls)));
  }

  private get client(): pb.CoordinatorClient {
    return this.clients[this.current]!;
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
  confirmDead(hostId: string): Promise<pb.ConfirmHostDeadResponse__Output> {
    return this.unary('ConfirmHostDead', { host_id: hostId });
  }

  cordon(hostId: string, cordon: boolean): Promise<pb.Host__Output> {
    return this.unary('CordonHost', { host_id: hostId, cordon });
  }
  explain(id: string): Promise<pb.PlacementDecision__Output> {
    return this.unary('ExplainWorkload', { id });
  }
  plan(spec: pb.WorkloadSpec): Promise<pb.PlacementDecision__Output> {
    return this.unary('PlanWorkload', { spec });
  }
  queue(req: pb.GetQueueRequest = {}): Promise<pb.QueueState__Output> {
    return this.unary('GetQueue', req);
  }
  setQueuePolicy(policy: string, backfill?: boolean): Promise<pb.QueueState__Output> {
    return this.unary('SetQueuePolicy', backfill === undefined ? { policy } : { policy, backfill });
  }
  watch(req: { type_prefix?: string; since_seq?: string; since_time?: string; from_start?: boolean; follow?: boolean }): ClientReadableStream<pb.Event__Output> {
    return this.client.WatchEvents(req);
  }
  close(): void {
    for (const c of this.clients) c.close();
  }

  /**
   * One call, with failover: UNAVAILABLE (a coordinator down, or a follower
   * that does not take changes) moves on to the next address until the
   * deadline. Every call the CLI makes is safe to repeat.
   */
  private async unary<Res>(method: string, req: object): Promise<Res> {
    const deadline = Date.now() + this.options.timeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once<Res>(this.client, method, req, deadline);
      } catch (err) {
        if (!isFailover(err) || Date.now() >= deadline) throw err;
        this.current = (this.current + 1) % this.clients.length;
        // A full round of refusals: give an election time to finish.
        if (this.current === 0 || this.clients.length === 1) await new Promise((r) => setTimeout(r, Math.min(1000, 100 * (attempt + 1))));
        if (Date.now() >= deadline) throw err;
      }
    }
  }

  private once<Res>(client: pb.CoordinatorClient, method: string, req: object, deadline: number): Promise<Res> {
    return callUnary<Res>(client, method, req, new Date(deadline), (err) =>
      // No virtfleet trailers: the transport failed, not the coordinator.
      err.code === status.UNAVAILABLE && err.metadata.get(ERROR_METADATA.retryable).length === 0 ? new NoConnectionError(err.details, { cause: err }) : fromServiceError(err),
    );
  }

}

/** The coordinator could not be reached at all. */
class NoConnectionError extends UnavailableError {}

/** Errors after which another coordinator may answer: a follower's refusal, or no connection. */
function isFailover(err: unknown): boolean {
  return err instanceof NotLeaderError || err instanceof NoConnectionError;
}
