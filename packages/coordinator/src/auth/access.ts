/**
 * Operator roles, each allowing what the one before it does and more:
 * `viewer` reads, `operator` runs workloads (lifecycle, migrate, backup),
 * `admin` runs the cluster (hosts, queue policy, images, tokens).
 */
export const ACCESS_ROLES = ['viewer', 'operator', 'admin'] as const;
export type AccessRole = (typeof ACCESS_ROLES)[number];

const RANK: Record<AccessRole, number> = { viewer: 1, operator: 2, admin: 3 };

export const allows = (held: AccessRole, needed: AccessRole): boolean => RANK[held] >= RANK[needed];

export interface MethodAccess {
  /** The least role that may call it. */
  role: AccessRole;
  /** It changes something: every call, allowed or not, is audited. */
  mutating: boolean;
  /** A tenant-scoped caller may call it (the handler limits it to the tenant's workloads); the rest are cluster-wide. */
  tenantScoped: boolean;
}

const read: MethodAccess = { role: 'viewer', mutating: false, tenantScoped: true };
const readAll: MethodAccess = { role: 'viewer', mutating: false, tenantScoped: false };
const operate: MethodAccess = { role: 'operator', mutating: true, tenantScoped: true };
const operateAll: MethodAccess = { role: 'operator', mutating: true, tenantScoped: false };
const administer: MethodAccess = { role: 'admin', mutating: true, tenantScoped: false };

/**
 * What each method of virtfleet.v1.Coordinator takes. A method missing here
 * is refused to everyone: a new RPC is closed until it is listed.
 */
export const COORDINATOR_METHOD_ACCESS: Readonly<Record<string, MethodAccess>> = {
  GetWorkload: read,
  ListWorkloads: read,
  ListHosts: read,
  ExplainWorkload: read,
  PlanWorkload: read,
  GetQueue: read,
  WatchEvents: read,
  WorkloadLogs: read,
  ListImages: read,
  GetHostDrain: readAll,
  ListBackups: readAll,
  VerifyBackup: readAll,
  PlanRebalance: readAll,
  SubmitWorkload: operate,
  StartWorkload: operate,
  StopWorkload: operate,
  PauseWorkload: operate,
  ResumeWorkload: operate,
  DeleteWorkload: operate,
  MigrateWorkload: operate,
  CreateBackup: operateAll,
  DeleteBackup: operateAll,
  RestoreBackup: operateAll,
  PruneBackups: operateAll,
  CordonHost: administer,
  ConfirmHostDead: administer,
  SetQueuePolicy: administer,
  ImportImage: administer,
  DeleteImage: administer,
  DrainHost: administer,
  UndrainHost: administer,
  RemoveHost: administer,
  CreateToken: administer,
  ListTokens: { role: 'admin', mutating: false, tenantScoped: false },
  RevokeToken: administer,
};

/**
 * What each route of the coordinator's HTTP server takes, by `METHOD /path`,
 * decided by the same rules as the gRPC methods (`authenticate`,
 * `authorize`). A route missing here is refused to everyone unless it is
 * open (health).
 */
export const HTTP_ROUTE_ACCESS: Readonly<Record<string, MethodAccess>> = {
  'GET /metrics': readAll,
  'GET /v1/whoami': read,
};
