import { heartbeatSchema, heartbeatSubject, telemetrySchema, telemetrySubject } from '@virtfleet/shared';
import type { NatsConnection } from '@nats-io/transport-node';

export interface SignsOfLife {
  /** When each valid heartbeat or telemetry message of the host arrived (performance.now()), in order. */
  readonly at: number[];
  /** The longest wait between two of them, and from `since` to the first. */
  longestGapMs(since?: number): number;
  stop(): void;
}

/**
 * What the coordinator counts as a host's signs of life, as a plain NATS
 * subscriber sees them: its heartbeats and its telemetry (an agent leaves a
 * heartbeat out when telemetry just went).
 */
export function watchSignsOfLife(nc: NatsConnection, hostId: string): SignsOfLife {
  const at: number[] = [];
  const record = (subject: string, valid: (body: unknown) => boolean) =>
    nc.subscribe(subject, {
      callback: (err, msg) => {
        if (!err && valid(msg.json())) at.push(performance.now());
      },
    });
  const subscriptions = [
    record(heartbeatSubject(hostId), (body) => heartbeatSchema.safeParse(body).success),
    record(telemetrySubject(hostId), (body) => telemetrySchema.safeParse(body).success),
  ];
  return {
    at,
    longestGapMs: (since?: number) => Math.max(0, ...at.slice(1).map((t, i) => t - at[i]!), since === undefined || at.length === 0 ? 0 : at[0]! - since),
    stop: () => subscriptions.forEach((s) => s.unsubscribe()),
  };
}
