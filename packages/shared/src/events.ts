import { randomUUID } from 'node:crypto';

/**
 * Events are CloudEvents 1.0 in structured JSON mode, published on NATS at
 * `virtfleet.events.<category>.<subject>` (category is `workload` or `host`).
 */
export const EVENT_SUBJECT_PREFIX = 'virtfleet.events';
export const EVENT_TYPE_PREFIX = 'io.virtfleet';

export const EVENT_TYPES = {
  workloadSubmitted: 'io.virtfleet.workload.submitted',
  workloadPlaced: 'io.virtfleet.workload.placed',
  workloadUnplaceable: 'io.virtfleet.workload.unplaceable',
  workloadStateChanged: 'io.virtfleet.workload.state_changed',
  workloadDeleted: 'io.virtfleet.workload.deleted',
  /** Its host was lost; the workload goes back to the queue to be placed elsewhere. */
  workloadRescheduled: 'io.virtfleet.workload.rescheduled',
  /** Reconciliation found the host's copy differs from the desired state; data says how and what was done. */
  workloadDrift: 'io.virtfleet.workload.drift',
  hostUp: 'io.virtfleet.host.up',
  hostDown: 'io.virtfleet.host.down',
  /** Back after being down; not schedulable until its stale copies are cleaned up. */
  hostRecovering: 'io.virtfleet.host.recovering',
  hostConfirmedDead: 'io.virtfleet.host.confirmed_dead',
  hostCordoned: 'io.virtfleet.host.cordoned',
  hostUncordoned: 'io.virtfleet.host.uncordoned',
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
  /** Extension attribute: position in the coordinator's event log. */
  sequence?: number;
}

export function makeEvent<T>(source: string, type: EventType, subject: string, data: T): CloudEvent<T> {
  return { specversion: '1.0', id: randomUUID(), source, type, subject, time: new Date().toISOString(), datacontenttype: 'application/json', data };
}

export function eventSubject(event: CloudEvent): string {
  const category = event.type.slice(EVENT_TYPE_PREFIX.length + 1).split('.')[0] ?? 'other';
  return `${EVENT_SUBJECT_PREFIX}.${category}.${event.subject}`;
}
