import { NotFoundError, PermissionDeniedError } from '@virtfleet/shared';
import type { Workload } from '../workloads/workload.js';
import { describePrincipal, type Principal } from './principal.js';

/** Whether the caller may see the workload: every workload, or its own tenant's. */
export const sees = (caller: Principal, w: Pick<Workload, 'spec'>): boolean => !caller.tenant || w.spec.tenant === caller.tenant;

/**
 * The workload, if the caller may see it; to a tenant-scoped caller another
 * tenant's workload does not exist (NOT_FOUND, as for an unknown name), so
 * names reveal nothing across tenants.
 */
export function visibleTo<W extends Pick<Workload, 'spec'>>(caller: Principal, w: W, ref: string): W {
  if (!sees(caller, w)) throw new NotFoundError('workload', ref);
  return w;
}

/**
 * The tenant a caller's spec goes into: a tenant-scoped caller's own when
 * the spec names none.
 * @throws PermissionDeniedError when it names another
 */
export function tenantFor(caller: Principal, requested: string | undefined): string | undefined {
  if (!caller.tenant) return requested || undefined;
  if (requested && requested !== caller.tenant) throw new PermissionDeniedError(`${describePrincipal(caller)} may submit only into tenant ${caller.tenant}, not ${requested}`);
  return caller.tenant;
}
