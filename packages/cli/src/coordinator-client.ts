import type { ClientReadableStream, ServiceError } from '@grpc/grpc-js';
import { channelCredentials, deadlineIn, fromServiceError, isServiceError, loadCoordinatorProto, type pb, type TlsFiles } from '@virtfleet/shared';

export interface ConnectionOptions {
  /** host:port of the coordinator's API. */
  address: string;
  /** Per-call deadline in ms. */
  timeoutMs: number;
  tls?: TlsFiles;
}

/** Promise wrapper over the generated Coordinator client; errors come back as virtfleet error classes. */
export class CoordinatorApi {
  private readonly client: pb.CoordinatorClient;

  constructor(private readonly options: ConnectionOptions) {
    const proto = loadCoordinatorProto();
    this.client = new proto.Coordinator(options.address, channelCredentials(options.tls));
  }

  submit(req: pb.SubmitWorkloadRequest): Promise<pb.Workload__Output> {
    return this.unary('SubmitWorkload', req);
  }
  get(id: string): Promise<pb.Workload__Output> {
    return this.unary('GetWorkload', { id });
  }
  list(filter: { host_id?: string; state?: string } = {}): Promise<pb.ListWorkloadsResponse__Output> {
    return this.unary('ListWorkloads', filter);
  }
  hosts(): Promise<pb.ListHostsResponse__Output> {
    return this.unary('ListHosts', {});
  }
  act(method: 'StartWorkload' | 'StopWorkload' | 'PauseWorkload' | 'ResumeWorkload' | 'DeleteWorkload', req: pb.WorkloadActionRequest): Promise<pb.Workload__Output> {
    return this.unary(method, req);
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
  queue(): Promise<pb.QueueState__Output> {
    return this.unary('GetQueue', {});
  }
  setQueuePolicy(policy: string, backfill?: boolean): Promise<pb.QueueState__Output> {
    return this.unary('SetQueuePolicy', backfill === undefined ? { policy } : { policy, backfill });
  }
  watch(req: { type_prefix?: string; since_seq?: string; since_time?: string; from_start?: boolean; follow?: boolean }): ClientReadableStream<pb.Event__Output> {
    return this.client.WatchEvents(req);
  }
  close(): void {
    this.client.close();
  }

  private unary<Res>(method: string, req: object): Promise<Res> {
    return new Promise((resolve, reject) => {
      const fn = (this.client as unknown as Record<string, (r: object, o: { deadline: Date }, cb: (e: ServiceError | null, r?: Res) => void) => void>)[method];
      if (!fn) return reject(new Error(`unknown method ${method}`));
      fn.call(this.client, req, { deadline: deadlineIn(this.options.timeoutMs) }, (err, res) => {
        if (err) reject(isServiceError(err) ? fromServiceError(err) : err);
        else resolve(res as Res);
      });
    });
  }
}
