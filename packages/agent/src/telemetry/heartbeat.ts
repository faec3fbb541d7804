import { heartbeatSubject, TELEMETRY_VERSION, type Heartbeat, type Logger, type NatsConnection } from '@virtfleet/shared';

/**
 * Telemetry stands in for a beat for this many intervals: a little over
 * one, so a host whose telemetry arrives on time each interval sends no
 * beats at all, whatever the timers' jitter.
 */
const TELEMETRY_STANDS_IN = 1.25;

/**
 * Publishes `virtfleet.heartbeat.<hostId>` from its own timer. A beat is
 * built from fields in memory and handed to the NATS client without waiting
 * for anything, so a stalled engine, a slow disk or a busy create storm can
 * never make it late; only a blocked event loop can.
 *
 * Telemetry is a sign of life too, so the timer is a watchdog: it beats when
 * no beat went out for `intervalMs` and no telemetry for 1.25 intervals
 * (`telemetrySent` re-arms it). A healthy host thus sends one message per
 * interval, not two (half the coordinator's per-host messages), and the
 * longest silence while the agent runs is 1.25 intervals.
 */
export class HeartbeatPublisher {
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly identity: Pick<Heartbeat, 'host_id' | 'boot_id' | 'address'>,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  /** Beats at once, then `phase × intervalMs` later and every interval after that (unless telemetry stands in). */
  start(phase = 0): void {
    this.stopped = false;
    this.beat();
    this.arm(Math.floor((phase % 1) * this.intervalMs) || this.intervalMs);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Telemetry just went out: the next beat is due only if no more follows within 1.25 intervals. */
  telemetrySent(): void {
    if (!this.stopped && this.timer) this.arm(TELEMETRY_STANDS_IN * this.intervalMs);
  }

  /** The next beat's message. */
  message(): Heartbeat {
    return { version: TELEMETRY_VERSION, ...this.identity, seq: this.seq++, time: new Date().toISOString() };
  }

  private arm(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.beat();
      if (!this.stopped) this.arm(this.intervalMs);
    }, delayMs);
  }

  private beat(): void {
    if (this.nc.isClosed()) return;
    try {
      this.nc.publish(heartbeatSubject(this.identity.host_id), JSON.stringify(this.message()));
    } catch (err) {
      this.log.warn({ err }, 'heartbeat not published');
    }
  }
}
