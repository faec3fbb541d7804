import { status } from '@grpc/grpc-js';
import { EVENT_TYPES, type EventType } from '@virtfleet/shared';
import type { AuditRecord } from './authorization.js';

const REFUSALS = new Set([status[status.UNAUTHENTICATED], status[status.PERMISSION_DENIED]]);

/** Refused for who the caller is (denied), or let through to succeed or fail on its merits (allowed). */
export const auditEventType = (r: AuditRecord): EventType => (REFUSALS.has(r.result) ? EVENT_TYPES.auditDenied : EVENT_TYPES.auditAllowed);

/** The event's data: snake_case, like the rest of the API. */
export function auditEventData(r: AuditRecord) {
  return {
    caller: r.principal ? { kind: r.principal.kind, id: r.principal.id, role: r.principal.role, ...(r.principal.tenant ? { tenant: r.principal.tenant } : {}) } : null,
    method: r.method,
    object: r.object,
    request_id: r.requestId,
    result: r.result,
    ...(r.details ? { details: r.details } : {}),
  };
}
