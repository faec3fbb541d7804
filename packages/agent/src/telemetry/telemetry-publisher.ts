import {
  headers,
  telemetrySchema,
  telemetrySubject,
  TELEMETRY_KIND_HEADER,
  TELEMETRY_VERSION,
  WorkloadDeltaEncoder,
  type Logger,
  type NatsConnection,
  type Telemetry,
  type TelemetryKind,
  type WorkloadTelemetry,
} from '@virtfleet/shared';
import type { HostSource } from './host-sampler.js';
import type { WorkloadSampler } from './workload-sampler.js';

/** The parts of a telemetry message that do not change between samples. */
export type TelemetryIdentity = Pick<
  Telemetry,
  'host_id' | 'hostname' | 'address' | 'agent_version' | 'boot_id' | 'labels' | 'trust_level' | 'features' | 'overcommit' | 'reserved'
>;

/**
 * Publishes one telemetry message per interval, and one soon after any
 * workload change (`nudge`). A tick waits at most half an interval for the
 * workloads' states (`WorkloadSampler.snapshot`) and then publishes what it
 * has: a stalled engine makes the workload part late (its `time` and
 * `workloads_sampled_at` say how late), never the message. Until the first
 * observation completes nothing is published; the heartbeat covers liveness.
 * The workload list goes out whole every `fullEveryMs` and as changes in
 * between (`WorkloadDeltaEncoder`); the `Virtfleet-Telemetry` header says
 * which.
 */
/** The last message published, and the whole workload list it was made from (a delta carries only changes). */
export interface PublishedTelemetry {
  message: Telemetry;
  kind: TelemetryKind;
  workloads: readonly WorkloadTelemetry[];
}

/** A nudge waits this long, so the changes of one burst share a message. */
const NUDGE_GATHER_MS = 50;

export class TelemetryPublisher {
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private nudged = false;
  private stopped = false;
  /** When the scheduled tick fires (performance.now()); Infinity while one runs. */
  private dueAt = Infinity;
  /** When the last tick began; nudges keep a quarter interval from it. */
  private lastTickAt = -Infinity;
  private readonly encoder: WorkloadDeltaEncoder;
  private last: PublishedTelemetry | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly identity: TelemetryIdentity,
    /** What the host offers now: drivers, capacity, and the images it holds (none when absent). */
    private readonly capacity: () => Promise<Pick<Telemetry, 'drivers' | 'capacity'> & Partial<Pick<Telemetry, 'images' | 'networks'>>>,
    private readonly host: HostSource,
    private readonly workloads: WorkloadSampler,
    private readonly intervalMs: number,
    private readonly log: Logger,
    /** The longest between two messages carrying the whole workload list. 0: every message does. @default 10000 */
    fullEveryMs = 10_000,
    /** Called after each message is handed to NATS (the heartbeat stands down). */
    private readonly afterPublish: () => void = () => undefined,
  ) {
    this.encoder = new WorkloadDeltaEncoder(fullEveryMs);
  }

  /** The first message goes out `phase × intervalMs` from now, so hosts sharing a process spread theirs. @default phase 0 */
  start(phase = 0): void {
    this.schedule(Math.floor((phase % 1) * this.intervalMs));
  }

  /**
   * Publish soon, because something changed: 50 ms from now, to gather the
   * changes of one burst, and no sooner than a quarter interval after the
   * last tick began, so a host whose workloads change all the time sends at
   * most four messages per interval instead of sampling without pause. A
   * nudge never postpones a tick already due earlier.
   */
  nudge(): void {
    if (this.stopped) return;
    if (this.running) {
      this.nudged = true;
      return;
    }
    const now = performance.now();
    const at = Math.max(now + NUDGE_GATHER_MS, this.lastTickAt + this.intervalMs / 4);
    if (at < this.dueAt) this.schedule(at - now);
  }

  /** The last message handed to NATS; undefined before the first. */
  get lastPublished(): PublishedTelemetry | undefined {
    return this.last;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** The next message and its kind, or undefined while no workload observation has completed yet. Its workload part counts as sent: the encoder is reset when it is not. */
  private async buildMessage(): Promise<PublishedTelemetry | undefined> {
    const [host, snapshot, drivers] = await Promise.all([this.host.sample(), this.workloads.snapshot(Math.floor(this.intervalMs / 2)), this.capacity()]);
    if (!snapshot) return undefined;
    // The observation's start, not now: the coordinator ignores samples older than its last command.
    const time = new Date(snapshot.startedAtMs).toISOString();
    const seq = this.seq++;
    const { part, kind } = this.encoder.encode(seq, snapshot.workloads);
    const message: Telemetry = {
      version: TELEMETRY_VERSION,
      ...this.identity,
      seq,
      time,
      published_at: new Date().toISOString(),
      workloads_sampled_at: time,
      ...drivers,
      host,
      ...part,
    };
    return { message, kind, workloads: snapshot.workloads };
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    const dueAt = performance.now() + delayMs;
    this.dueAt = dueAt;
    this.timer = setTimeout(() => {
      this.dueAt = Infinity;
      this.lastTickAt = performance.now();
      this.running = this.tick().finally(() => {
        this.running = undefined;
        if (this.stopped) return;
        // Counted from when this tick was due, so neither a late timer nor the tick's own time stretches the
        // interval (or drifts the phase); a tick that overran its interval is followed at once.
        const regular = Math.max(0, dueAt + this.intervalMs - performance.now());
        const nudged = this.nudged ? Math.max(0, this.lastTickAt + this.intervalMs / 4 - performance.now()) : Infinity;
        this.nudged = false;
        this.schedule(Math.min(regular, nudged));
      });
    }, delayMs);
  }

  private async tick(): Promise<void> {
    try {
      const built = await this.buildMessage();
      if (!built) return;
      // Validate our own output too: a bad message would be dropped by every receiver.
      const checked = telemetrySchema.safeParse(built.message);
      if (!checked.success) {
        this.encoder.reset();
        this.log.error({ issues: checked.error.issues.slice(0, 3) }, 'telemetry failed validation; not published');
        return;
      }
      if (this.nc.isClosed()) {
        this.encoder.reset();
        return;
      }
      const h = headers();
      h.set(TELEMETRY_KIND_HEADER, built.kind);
      this.nc.publish(telemetrySubject(this.identity.host_id), JSON.stringify(built.message), { headers: h });
      this.last = built;
      this.afterPublish();
    } catch (err) {
      this.encoder.reset();
      this.log.warn({ err }, 'telemetry sample failed');
    }
  }
}
