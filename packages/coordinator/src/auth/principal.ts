import type { Metadata } from '@grpc/grpc-js';
import { InternalError } from '@virtfleet/shared';
import { z } from 'zod';
import { ACCESS_ROLES, type AccessRole } from './access.js';

/** Who is calling, as the authorization interceptor established it. */
export interface Principal {
  /** token: a bearer token; certificate: an operator certificate mapped to a role by auth.certificateRoles; anonymous: auth.anonymousRole. */
  kind: 'token' | 'certificate' | 'anonymous';
  /** The token id, or the certificate's operator name; '' when anonymous. */
  id: string;
  role: AccessRole;
  /** Set for a tenant-scoped caller: it sees and acts on this tenant's workloads only. */
  tenant?: string;
}

export function describePrincipal(p: Principal): string {
  const tenant = p.tenant ? ` of tenant ${p.tenant}` : '';
  if (p.kind === 'token') return `token ${p.id} (${p.role}${tenant})`;
  if (p.kind === 'certificate') return `operator certificate ${p.id} (${p.role}${tenant})`;
  return `an anonymous caller (${p.role})`;
}

/** An event subject for the caller: one NATS subject token. */
export function principalSubject(p: Principal | undefined): string {
  if (!p) return 'unauthenticated';
  return p.kind === 'anonymous' ? 'anonymous' : `${p.kind}-${p.id}`;
}

/** Where the interceptor hands the principal to the handlers; a client sending it has it removed. */
export const PRINCIPAL_METADATA_KEY = 'x-virtfleet-principal';

const principalSchema = z.object({ kind: z.enum(['token', 'certificate', 'anonymous']), id: z.string(), role: z.enum(ACCESS_ROLES), tenant: z.string().optional() }).strict();

export function attachPrincipal(metadata: Metadata, p: Principal): void {
  metadata.set(PRINCIPAL_METADATA_KEY, JSON.stringify(p));
}

/**
 * The caller of a call that passed the authorization interceptor.
 * @throws InternalError when there is none: the server was built without the interceptor.
 */
export function principalOf(call: { metadata: Metadata }): Principal {
  const raw = call.metadata.get(PRINCIPAL_METADATA_KEY)[0];
  const parsed = typeof raw === 'string' ? principalSchema.safeParse(JSON.parse(raw)) : undefined;
  if (!parsed?.success) throw new InternalError('the call carries no caller: the server runs without its authorization interceptor');
  const { tenant, ...rest } = parsed.data;
  return tenant === undefined ? rest : { ...rest, tenant };
}
