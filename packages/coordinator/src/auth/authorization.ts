import { ServerInterceptingCall, status, type Metadata, type ServerInterceptor } from '@grpc/grpc-js';
import { callerIdentity, grpcStatusName, type Identity, type Logger } from '@virtfleet/shared';
import { allows, COORDINATOR_METHOD_ACCESS, type AccessRole, type MethodAccess } from './access.js';
import { attachPrincipal, describePrincipal, PRINCIPAL_METADATA_KEY, type Principal } from './principal.js';
import type { Authentication, TokenRegistry } from './token-registry.js';

const SERVICE_PREFIX = '/virtfleet.v1.Coordinator/';

/** One mutating call, allowed or refused, as the audit trail keeps it. */
export interface AuditRecord {
  /** Undefined when the caller could not be authenticated. */
  principal: Principal | undefined;
  method: string;
  /** What the call names: a workload id or name, a host, an image, a token, a backup; '' when nothing. */
  object: string;
  requestId: string;
  /** The gRPC status the call ended with, by name (OK, PERMISSION_DENIED, ...). */
  result: string;
  details: string;
}

/** How a caller is recognised, on the gRPC API and on the HTTP server alike. */
export interface AuthenticationOptions {
  tokens: Pick<TokenRegistry, 'authenticate'>;
  /** Operator certificate names that act with a role without a token (the first admin, say). */
  certificateRoles: Readonly<Record<string, { role: AccessRole; tenant?: string | undefined }>>;
  /** The role of a caller with neither token nor mapped certificate; undefined: such calls are refused. */
  anonymousRole?: AccessRole | undefined;
}

export interface AuthorizationOptions extends AuthenticationOptions {
  audit(record: AuditRecord): void;
  log: Logger;
}

/** What a caller presented: its `authorization` header (undefined: none) and its client certificate's identity. */
export interface PresentedCredentials {
  authorization: string | undefined;
  certificate: Identity | undefined;
}

/**
 * Who is calling: a bearer token decides, when there is an authorization
 * header; else an operator certificate listed in `certificateRoles`; else
 * `anonymousRole`. A refusal says why, for UNAUTHENTICATED (401).
 */
export function authenticate(presented: PresentedCredentials, options: AuthenticationOptions): Authentication {
  if (presented.authorization !== undefined) {
    const bearer = /^Bearer\s+(\S+)$/i.exec(presented.authorization)?.[1];
    if (!bearer) return { refusal: 'the authorization header must be "Bearer <token>"' };
    return options.tokens.authenticate(bearer);
  }
  const identity = presented.certificate;
  const mapped = identity?.role === 'operator' ? options.certificateRoles[identity.name] : undefined;
  if (identity && mapped) return { principal: { kind: 'certificate', id: identity.name, role: mapped.role, ...(mapped.tenant ? { tenant: mapped.tenant } : {}) } };
  if (options.anonymousRole) return { principal: { kind: 'anonymous', id: '', role: options.anonymousRole } };
  return { refusal: 'a bearer token is required (`virtfleet token create` makes one; the CLI sends VIRTFLEET_TOKEN, --token or the token in its config)' };
}

/** Why `principal` may not call `name` (a method, a route) that takes `access`, for PERMISSION_DENIED (403); undefined when it may. */
export function authorize(principal: Principal, access: MethodAccess | undefined, name: string): string | undefined {
  if (!access) return `${name} is not open to any caller`;
  if (!allows(principal.role, access.role)) return `${describePrincipal(principal)} may not call ${name}: it takes the ${access.role} role`;
  if (principal.tenant && !access.tenantScoped) return `${describePrincipal(principal)} may not call ${name}: it acts across tenants`;
  return undefined;
}


/** The object a request names, read off its usual fields. */
function objectOf(message: unknown): string {
  if (typeof message !== 'object' || message === null) return '';
  const m = message as Record<string, unknown>;
  const spec = m.spec as Record<string, unknown> | undefined;
  const header = m.header as Record<string, unknown> | undefined;
  for (const v of [m.id, m.host_id, m.workload_id, spec?.name, m.name, header?.name, m.backup_id, m.policy]) if (typeof v === 'string' && v !== '') return v;
  return '';
}

const requestIdOf = (message: unknown): string => {
  const id = (message as { request_id?: unknown } | null)?.request_id;
  return typeof id === 'string' ? id : '';
};

/**
 * Who is calling, and may they: every call to the operator API passes here
 * before its handler. A bearer token (`authorization: Bearer vft_...`)
 * decides the caller's role and tenant; without one, an operator
 * certificate listed in `certificateRoles` does, else `anonymousRole`, else
 * the call is refused (UNAUTHENTICATED). A role below what the method takes
 * is PERMISSION_DENIED. Refusals happen before the handler sees the request,
 * so they change nothing. The caller goes to the handler in metadata
 * (`principalOf`), for tenant checks; a client cannot set it. Every
 * mutating call is audited with its outcome.
 */
export function operatorAuthorization(options: AuthorizationOptions): ServerInterceptor {
  return (methodDescriptor, call) => {
    if (!methodDescriptor.path.startsWith(SERVICE_PREFIX)) return new ServerInterceptingCall(call);
    const method = methodDescriptor.path.slice(SERVICE_PREFIX.length);
    const access = COORDINATOR_METHOD_ACCESS[method];
    let principal: Principal | undefined;
    let refusal: { code: status; details: string } | undefined;
    let firstMessage: unknown;
    let audited = false;
    let refused = false;
    const audit = (code: status, details: string) => {
      if (audited || !access?.mutating) return;
      audited = true;
      options.audit({ principal, method, object: objectOf(firstMessage), requestId: requestIdOf(firstMessage), result: grpcStatusName(code), details });
    };
    const refuse = () => {
      if (!refusal || refused) return;
      refused = true;
      options.log.warn({ method, code: grpcStatusName(refusal.code), caller: principal ? describePrincipal(principal) : 'unauthenticated', reason: refusal.details }, 'API call refused');
      audit(refusal.code, refusal.details);
      call.sendStatus(refusal);
    };

    const check = (metadata: Metadata): void => {
      metadata.remove(PRINCIPAL_METADATA_KEY);
      const header = metadata.get('authorization')[0];
      // A binary header is present but no bearer token: refused as such.
      const result = authenticate({ authorization: header === undefined ? undefined : typeof header === 'string' ? header : '', certificate: callerIdentity(call) }, options);
      if ('refusal' in result) return void (refusal = { code: status.UNAUTHENTICATED, details: result.refusal });
      principal = result.principal;
      const denied = authorize(principal, access, method);
      if (denied) refusal = { code: status.PERMISSION_DENIED, details: denied };
      else attachPrincipal(metadata, principal);
    };

    return new ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            check(metadata);
            // A refused call goes on (without a caller attached) only so that its first message arrives, to say what it
            // was about for the audit trail; that message is answered with the refusal and never reaches the handler.
            nextMetadata(metadata);
          },
          onReceiveMessage: (message, nextMessage) => {
            firstMessage ??= message;
            if (refusal) return refuse();
            nextMessage(message);
          },
          onReceiveHalfClose: (nextHalfClose) => {
            if (refusal) return refuse();
            nextHalfClose();
          },
        });
      },
      sendStatus: (outcome, nextStatus) => {
        audit(outcome.code, outcome.details);
        nextStatus(outcome);
      },
    });
  };
}
