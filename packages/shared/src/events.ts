import { randomUUID } from 'node:crypto';

/**
 * Events are CloudEvents 1.0 in structured JSON mode, published on NATS at
 * `virtfleet.events.<category>.<subject>` (category is `workload`, `host` or `failover`)
 * once stored, with their `sequence`.
 */
export const EVENT_SUBJECT_PREFIX = 'virtfleet.events';
/**
 * Where the coordinator stores events, `virtfleet.eventlog.<category>.<subject>`:
 * apart from the plain subjects, so that plain subscribers see only stored
 * events, each once, carrying the sequence the stream gave it.
 */
export const EVENT_LOG_SUBJECT_PREFIX = 'virtfleet.eventlog';
export const EVENT_TYPE_PREFIX = 'io.virtfleet';

export const EVENT_TYPES = {
  workloadSubmitted: 'io.virtfleet.workload.submitted',
  workloadPlaced: 'io.virtfleet.workload.placed',
  workloadUnplaceable: 'io.virtfleet.workload.unplaceable',
  workloadStateChanged: 'io.virtfleet.workload.state_changed',
  workloadDeleted: 'io.virtfleet.workload.deleted',
  /** Its host was lost; the workload goes back to the queue to be placed elsewhere. */
  workloadRescheduled: 'io.virtfleet.workload.rescheduled',
  /** A migration to another host began (its target chosen and booked). */
  workloadMigrationStarted: 'io.virtfleet.workload.migration_started',
  /** A migration under way: phase, bytes transferred and remaining, rate, expected downtime; about every 2 s. */
  workloadMigrationProgress: 'io.virtfleet.workload.migration_progress',
  /** The workload runs on the target now, and nothing of it is left on the source. */
  workloadMigrationCompleted: 'io.virtfleet.workload.migration_completed',
  /** The migration failed or was cancelled; the workload runs where it was. */
  workloadMigrationFailed: 'io.virtfleet.workload.migration_failed',
  /** A backup of the workload was stored: its id, size and the bytes it added to the repository. */
  backupCreated: 'io.virtfleet.workload.backup_created',
  /** A backup of the workload was removed, with the bytes freed. */
  backupDeleted: 'io.virtfleet.workload.backup_deleted',
  /** The workload (the subject) was made from a backup of another (or of the same name). */
  backupRestored: 'io.virtfleet.workload.backup_restored',
  /** Reconciliation found the host's copy differs from the desired state; data says how and what was done. */
  workloadDrift: 'io.virtfleet.workload.drift',
  hostUp: 'io.virtfleet.host.up',
  hostDown: 'io.virtfleet.host.down',
  /** Back after being down; not schedulable until its stale copies are cleaned up. */
  hostRecovering: 'io.virtfleet.host.recovering',
  hostConfirmedDead: 'io.virtfleet.host.confirmed_dead',
  hostCordoned: 'io.virtfleet.host.cordoned',
  hostUncordoned: 'io.virtfleet.host.uncordoned',
  /** More than failover.maxDownFraction of the hosts are down together: no workload is moved until fewer are. Emitted on the change. */
  failoverSuspended: 'io.virtfleet.failover.suspended',
  /** Failover runs again after a suspension; data `mode` says at which rate (`normal` or `partial`). */
  failoverResumed: 'io.virtfleet.failover.resumed',
  /**
   * More than failover.partialDisruptionFraction of the hosts are down together (but not more than maxDownFraction,
   * in a cluster larger than smallClusterHosts): workloads move at failover.secondaryReschedulesPerSecond. Emitted on the change from normal.
   */
  failoverSlowed: 'io.virtfleet.failover.slowed',
  /** Failover is back at failover.reschedulesPerSecond after a partial disruption. */
  failoverFullRate: 'io.virtfleet.failover.full_rate',
  /** One of a host's drivers stopped answering within its deadline; the host stays up and nothing moves because of it. */
  hostDriverUnhealthy: 'io.virtfleet.host.driver_unhealthy',
  /** A driver that was unhealthy answers again. */
  hostDriverHealthy: 'io.virtfleet.host.driver_healthy',
  /** A drain began: the host is cordoned, and data lists how many workloads it holds, the parallelism, mode and deadline. */
  hostDrainStarted: 'io.virtfleet.host.drain_started',
  /** One workload of a drain changed outcome (moving, moved, or left and why); data carries the counts so far. */
  hostDrainProgress: 'io.virtfleet.host.drain_progress',
  /** A drain ended; data `state` says how (drained: the host is empty; incomplete, deadline_exceeded, cancelled) and lists what was left. */
  hostDrainEnded: 'io.virtfleet.host.drain_ended',
  /** An operator undrained the host: a drain under way stops starting moves, and the host is uncordoned. */
  hostUndrained: 'io.virtfleet.host.undrained',
  /** A down, empty host was forgotten: by an operator (`host rm`) or after hosts.forgetDownAfterMs; data `by` says which. */
  hostForgotten: 'io.virtfleet.host.forgotten',
  /** A mutating API call was carried out, or tried and failed on its merits; data: caller, method, object, request_id, result (the gRPC status). Subject: the caller. */
  auditAllowed: 'io.virtfleet.audit.allowed',
  /** A mutating API call was refused before it ran: no or a bad credential (UNAUTHENTICATED), or a role too low (PERMISSION_DENIED). */
  auditDenied: 'io.virtfleet.audit.denied',
} as const;
export type EventType = (typeof EVENT_TYPES)[keyof typeof EVENT_TYPES];

export interface CloudEvent<T = unknown> {
  specversion: '1.0';
  id: string;
  source: string;
  type: EventType;
  subject: string;
  time: string;
  datacontenttype: 'application/json';
  data: T;
  /** Extension attribute: position in the coordinator's event log, the JetStream stream sequence. */
  sequence?: number;
}

export function makeEvent<T>(source: string, type: EventType, subject: string, data: T): CloudEvent<T> {
  return { specversion: '1.0', id: randomUUID(), source, type, subject, time: new Date().toISOString(), datacontenttype: 'application/json', data };
}

/**
 * The type filter a person means: `host.cordoned` (as `virtfleet events`
 * prints types) stands for `io.virtfleet.host.cordoned`. Full types, and
 * prefixes of `io.virtfleet.`, are taken as they are.
 */
export function eventTypePrefix(prefix: string): string {
  const full = `${EVENT_TYPE_PREFIX}.`;
  return prefix === '' || prefix.startsWith(full) || full.startsWith(prefix) ? prefix : full + prefix;
}

// RFC 3339 date-time: the zone is required, so a time means the same everywhere.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/**
 * An RFC 3339 time (`2025-01-02T15:04:05.123456Z`, `...+02:00`) as
 * nanoseconds since the epoch, exact, so event times compare without
 * rounding. Undefined when `text` is not one (or names a day that does not
 * exist, or a leap second).
 */
export function parseRfc3339Nanos(text: string): bigint | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return undefined;
  const local = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  local.setUTCFullYear(year); // Date.UTC maps years 0-99 to 1900-1999
  if (local.getUTCDate() !== day) return undefined;
  let ms = local.getTime();
  if (!m[8]) {
    const offsetHours = Number(m[10]);
    const offsetMinutes = Number(m[11]);
    if (offsetHours > 23 || offsetMinutes > 59) return undefined;
    ms -= (m[9] === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutes) * 60_000;
  }
  return BigInt(ms) * 1_000_000n + BigInt((m[7] ?? '').padEnd(9, '0'));
}

export function eventSubject(event: CloudEvent, prefix: string = EVENT_SUBJECT_PREFIX): string {
  const category = event.type.slice(EVENT_TYPE_PREFIX.length + 1).split('.')[0] ?? 'other';
  return `${prefix}.${category}.${event.subject}`;
}
