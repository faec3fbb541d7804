import { telemetrySchema, telemetrySubject, TELEMETRY_VERSION, type Logger, type NatsConnection, type Telemetry } from '@virtfleet/shared';
import type { HostSampler } from './host-sampler.js';
import type { WorkloadSampler } from './workload-sampler.js';

/** The parts of a telemetry message that do not change between samples. */
export type TelemetryIdentity = Pick<
  Telemetry,
  'host_id' | 'hostname' | 'address' | 'agent_version' | 'boot_id' | 'labels' | 'trust_level' | 'features' | 'overcommit' | 'reserved'
>;

/**
 * Publishes one telemetry message per interval, and one soon after any
 * workload change (`nudge`). Samples never overlap: a slow sample delays the
 * next tick rather than piling up.
 */
export class TelemetryPublisher {
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private nudged = false;
  private stopped = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly identity: TelemetryIdentity,
    private readonly capacity: () => Promise<Pick<Telemetry, 'drivers' | 'capacity'>>,
    private readonly host: HostSampler,
    private readonly workloads: WorkloadSampler,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.schedule(0);
  }

  /** Publish soon, because something changed. */
  nudge(): void {
    if (this.stopped) return;
    if (this.running) {
      this.nudged = true;
      return;
    }
    this.schedule(50);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  async buildMessage(): Promise<Telemetry> {
    // Stamped before sampling: the coordinator ignores samples older than its last command.
    const time = new Date().toISOString();
    const [host, workloads, drivers] = await Promise.all([this.host.sample(), this.workloads.sample(), this.capacity()]);
    return {
      version: TELEMETRY_VERSION,
      ...this.identity,
      seq: this.seq++,
      time,
      ...drivers,
      host,
      workloads,
    };
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
        if (this.stopped) return;
        this.schedule(this.nudged ? 0 : this.intervalMs);
        this.nudged = false;
      });
    }, delayMs);
  }

  private async tick(): Promise<void> {
    try {
      const message = await this.buildMessage();
      // Validate our own output too: a bad message would be dropped by every receiver.
      const checked = telemetrySchema.safeParse(message);
      if (!checked.success) {
        this.log.error({ issues: checked.error.issues.slice(0, 3) }, 'telemetry failed validation; not published');
        return;
      }
      if (!this.nc.isClosed()) this.nc.publish(telemetrySubject(this.identity.host_id), JSON.stringify(message));
    } catch (err) {
      this.log.warn({ err }, 'telemetry sample failed');
    }
  }
}
