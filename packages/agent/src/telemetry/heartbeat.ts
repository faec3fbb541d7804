import { heartbeatSubject, TELEMETRY_VERSION, type Heartbeat, type Logger, type NatsConnection } from '@virtfleet/shared';
import { every, type Periodic } from '../periodic.js';

/**
 * Publishes `virtfleet.heartbeat.<hostId>` every `intervalMs` from its own
 * timer. A beat is built from fields in memory and handed to the NATS client
 * without waiting for anything, so a stalled engine, a slow disk or a busy
 * create storm can never make it late; only a blocked event loop can.
 */
export class HeartbeatPublisher {
  private seq = 0;
  private timer: Periodic | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly identity: Pick<Heartbeat, 'host_id' | 'boot_id' | 'address'>,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  /** Beats at once, then every interval from `phase × intervalMs` on (see `every`). */
  start(phase = 0): void {
    this.beat();
    this.timer = every(this.intervalMs, () => this.beat(), phase);
  }

  stop(): void {
    this.timer?.stop();
  }

  /** The next beat's message. */
  message(): Heartbeat {
    return { version: TELEMETRY_VERSION, ...this.identity, seq: this.seq++, time: new Date().toISOString() };
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
