import type { Principal, Role } from './types.js';

const RANK: Record<Role, number> = { viewer: 1, operator: 2, admin: 3 };

/** What an action takes, as the coordinator's COORDINATOR_METHOD_ACCESS says: a role, and whether a tenant's token may use it. */
export interface Need {
  role: Role;
  /** Cluster-wide (hosts, queue policy, backups): refused to a tenant's token. */
  clusterWide?: boolean;
}

/** True when `principal` may do what `need` takes: the dashboard shows no button otherwise. */
export function allowed(principal: Principal | undefined, need: Need): boolean {
  if (!principal || RANK[principal.role] < RANK[need.role]) return false;
  return !(need.clusterWide && principal.tenant);
}
