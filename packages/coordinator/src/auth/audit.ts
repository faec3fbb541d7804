import { status } from '@grpc/grpc-js';
import { EVENT_TYPES, type EventType } from '@virtfleet/shared';
import type { AuditRecord } from './authorization.js';

const REFUSALS = new Set([status[status.UNAUTHENTICATED], status[status.PERMISSION_DENIED]]);

/** Refused for who the caller is (denied), or let through to succeed or fail on its merits (allowed). */
export const auditEventType = (r: AuditRecord): EventType => (REFUSALS.has(r.result) ? EVENT_TYPES.auditDenied : EVENT_TYPES.auditAllowed);

/**
 * The most characters of the request's own text an audit event keeps: what it
 * names and its request id, and of the answer's message. A refused request
 * may carry megabytes there, and an event over NATS's max_payload is never
 * stored (the event log retried it for ever).
 */
export const MAX_AUDITED_CHARS = { object: 256, requestId: 256, details: 1024 } as const;

const clipped = (text: string, max: number): string => (text.length > max ? `${text.slice(0, max)}...(${text.length} characters)` : text);

/** The event's data: snake_case, like the rest of the API. */
export function auditEventData(r: AuditRecord) {
  return {
    caller: r.principal ? { kind: r.principal.kind, id: r.principal.id, role: r.principal.role, ...(r.principal.tenant ? { tenant: r.principal.tenant } : {}) } : null,
    method: r.method,
    object: clipped(r.object, MAX_AUDITED_CHARS.object),
    request_id: clipped(r.requestId, MAX_AUDITED_CHARS.requestId),
    result: r.result,
    ...(r.details ? { details: clipped(r.details, MAX_AUDITED_CHARS.details) } : {}),
  };
}
