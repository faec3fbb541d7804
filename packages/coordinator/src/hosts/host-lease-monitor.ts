import { randomUUID } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { errorMessage, FENCE_RECORD_PREFIX, fenceRecordSchema, HOST_LEASE_PREFIX, hostLeaseSchema, LEASE_BUCKET_STREAM_HARDENING, type FenceRecord, type HostLeaseRecord, type Logger, type NatsConnection } from '@virtfleet/shared';

export interface FenceVerdict {
  fenced: boolean;
  /** Why, or how long until, for workload messages and `host ls`. */
  detail: string;
}

export interface HostLeaseMonitorOptions {
  bucket: string;
  replicas: number;
  /** Added to the agent's fence timeout to cover the time it takes to stop its workloads. */
  fenceMarginMs: number;
  /** How often this coordinator writes a probe through the bucket. @default 500 */
  probeIntervalMs?: number;
}

const PROBE_PREFIX = 'probe.';

/** What the monitor knows of one host, for `judgeFence`. */
export interface FenceEvidence {
  /** The host's latest lease renewal seen: its revision in the bucket, and whether it has lapsed by fence timeout + margin. */
  lease?: { revision: number; lapsed: boolean; fenceTimeoutMs: number };
  /** The host's latest fence record seen, with its revision in the bucket. */
  record?: { revision: number; fencedAt: string; workloads: number };
}

const CONFIRM = 'or confirm it dead with `virtfleet host confirm-dead`';

/**
 * Whether a host's fence-first workloads are proven stopped. A lapsed lease
 * is not proof on its own: a dead agent stops renewing without stopping
 * anything. Proof is a fence record stored after the last renewal (a fenced
 * host starts no fence-first workload until it renews again).
 */
export function judgeFence(evidence: FenceEvidence): FenceVerdict {
  const { lease, record } = evidence;
  if (!lease) return { fenced: false, detail: `it has no host lease, so it cannot fence itself; ${CONFIRM}` };
  // No countdown in the texts: workload messages would change (and be stored) every check.
  if (!lease.lapsed) return { fenced: false, detail: `its host lease has not lapsed (it fences itself ${lease.fenceTimeoutMs} ms after its last renewal), ${CONFIRM}` };
  if (record && record.revision > lease.revision) return { fenced: true, detail: `its host lease lapsed and it recorded stopping its fence-first workloads at ${record.fencedAt} (${record.workloads} stopped)` };
  return { fenced: false, detail: `its host lease lapsed but it has recorded no fencing since its last renewal (an agent that died stops nothing); waiting for its fence record or its return, ${CONFIRM}` };
}

/**
 * The coordinator's side of fencing: decides when a silent host must have
 * fenced itself. It watches the lease bucket and notes, on its own monotonic
 * clock, when each host's latest renewal reached it.
 *
 * "Reached it" needs care: a stalled watch would make every host look
 * silent. So this coordinator also writes probes into the bucket and only
 * trusts the watch up to the newest probe it has read back. A host counts
 * as fenced once a probe sent at least fence timeout + margin after the
 * host's last seen renewal has come back: the stream is ordered, so any
 * renewal stored before that probe would have been seen first.
 */
export class HostLeaseMonitor {
  private readonly seen = new Map<string, { atMs: number; revision: number; record: HostLeaseRecord }>();
  private readonly fenceRecords = new Map<string, { revision: number; record: FenceRecord }>();
  private newestProbeSentAt: number | undefined;
  private readonly bootId = randomUUID();
  private probeTimer: NodeJS.Timeout | undefined;
  private watcher: { stop(): void } | undefined;
  private stopped = false;

  private constructor(
    private readonly kv: KV,
    private readonly coordinatorId: string,
    private readonly options: HostLeaseMonitorOptions,
    private readonly log: Logger,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Creates the bucket if needed (agents only open it) and starts watching. */
  static async open(nc: NatsConnection, coordinatorId: string, options: HostLeaseMonitorOptions, log: Logger): Promise<HostLeaseMonitor> {
    const kv = await new Kvm(nc).create(options.bucket, { replicas: options.replicas, history: 1 });
    await hardenLeaseBucket(nc, options.bucket);
    const monitor = new HostLeaseMonitor(kv, coordinatorId, options, log);
    monitor.startWatching();
    monitor.probeTimer = setInterval(() => void monitor.probe(), options.probeIntervalMs ?? 500);
    return monitor;
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.probeTimer);
    this.watcher?.stop();
  }

  /**
   * Drops what this monitor remembers of a forgotten host. Its lease and
   * fence record stay in the bucket (one key each): an agent that starts
   * again reads its lapsed lease there and fences itself before anything else.
   */
  forget(hostId: string): void {
    this.seen.delete(hostId);
    this.fenceRecords.delete(hostId);
  }

  /** Whether `hostId` has proven its fence-first workloads stopped by now (see judgeFence). */
  verdict(hostId: string): FenceVerdict {
    const last = this.seen.get(hostId);
    const fence = this.fenceRecords.get(hostId);
    const deadline = last && last.atMs + last.record.fence_timeout_ms + this.options.fenceMarginMs;
    return judgeFence({
      lease: last && { revision: last.revision, lapsed: this.newestProbeSentAt !== undefined && this.newestProbeSentAt >= deadline!, fenceTimeoutMs: last.record.fence_timeout_ms },
      record: fence && { revision: fence.revision, fencedAt: fence.record.fenced_at, workloads: fence.record.workloads.length },
    });
  }

  private startWatching(): void {
    void (async () => {
      while (!this.stopped) {
        try {
          // Last values first: every host's clock starts now, which errs on the late side.
          const updates = await this.kv.watch({ key: '>' });
          this.watcher = updates;
          for await (const e of updates) {
            if (e.key.startsWith(HOST_LEASE_PREFIX)) {
              if (e.operation !== 'PUT') continue;
              const parsed = hostLeaseSchema.safeParse(safeJson(e.string()));
              if (!parsed.success || parsed.data.host_id !== e.key.slice(HOST_LEASE_PREFIX.length)) {
                this.log.warn({ key: e.key }, 'invalid host lease record; ignored');
                continue;
              }
              this.seen.set(parsed.data.host_id, { atMs: this.now(), revision: e.revision, record: parsed.data });
            } else if (e.key.startsWith(FENCE_RECORD_PREFIX)) {
              if (e.operation !== 'PUT') continue;
              const parsed = fenceRecordSchema.safeParse(safeJson(e.string()));
              if (!parsed.success || parsed.data.host_id !== e.key.slice(FENCE_RECORD_PREFIX.length)) {
                this.log.warn({ key: e.key }, 'invalid fence record; ignored');
                continue;
              }
              this.fenceRecords.set(parsed.data.host_id, { revision: e.revision, record: parsed.data });
              this.log.info({ host: parsed.data.host_id, fenced_at: parsed.data.fenced_at, workloads: parsed.data.workloads.length }, 'fence record received');
            } else if (e.key === PROBE_PREFIX + this.coordinatorId && e.operation === 'PUT') {
              const probe = safeJson(e.string()) as { boot?: unknown; sent_at?: unknown } | undefined;
              if (probe?.boot === this.bootId && typeof probe.sent_at === 'number') this.newestProbeSentAt = Math.max(this.newestProbeSentAt ?? 0, probe.sent_at);
            }
          }
        } catch (err) {
          if (!this.stopped) this.log.warn({ err: errorMessage(err) }, 'host lease watch failed; restarting');
        }
        if (!this.stopped) await new Promise((r) => setTimeout(r, 1000));
      }
    })();
  }

  private async probe(): Promise<void> {
    try {
      await this.kv.put(PROBE_PREFIX + this.coordinatorId, JSON.stringify({ boot: this.bootId, sent_at: this.now() }));
    } catch {
      // No probe, no progress: hosts just do not count as fenced yet.
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Refuses roll-up headers on the lease bucket's stream (an agent could purge
 * every host's lease with one on its own key); buckets made before this
 * setting existed are updated in place.
 */
async function hardenLeaseBucket(nc: NatsConnection, bucket: string): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const stream = `KV_${bucket}`;
  const { config } = await jsm.streams.info(stream);
  if (config.allow_rollup_hdrs !== LEASE_BUCKET_STREAM_HARDENING.allow_rollup_hdrs) await jsm.streams.update(stream, { ...config, ...LEASE_BUCKET_STREAM_HARDENING });
}
