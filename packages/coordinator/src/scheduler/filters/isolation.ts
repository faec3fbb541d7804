import type { FilterPlugin } from '../plugins.js';
import { OK } from '../plugins.js';

export const ISOLATION = 'isolation';

export const ISOLATION_REASONS = {
  notEmpty: 'not empty (dedicated requested)',
  dedicated: 'dedicated to another workload',
  otherTenants: 'runs other tenants',
  tenantIsolated: 'isolated for another tenant',
} as const;

/**
 * `dedicated`: alone on its host, both ways. `tenant`: the host runs only
 * that tenant's workloads, both ways. `shared` workloads may join a host
 * isolated for their own tenant, never another's.
 */
export const isolationFilter: FilterPlugin = {
  name: ISOLATION,
  filter({ spec }, host) {
    if (host.isolation?.level === 'dedicated') return { status: 'unschedulable', reason: ISOLATION_REASONS.dedicated };
    const wanted = spec.security.isolation;
    if (wanted === 'dedicated') return host.workloadCount > 0 ? { status: 'unschedulable', reason: ISOLATION_REASONS.notEmpty } : OK;
    if (host.isolation?.level === 'tenant' && host.isolation.tenant !== spec.tenant) return { status: 'unschedulable', reason: ISOLATION_REASONS.tenantIsolated };
    if (wanted === 'tenant') {
      for (const [tenant, count] of host.tenants) if (tenant !== spec.tenant && count > 0) return { status: 'unschedulable', reason: ISOLATION_REASONS.otherTenants };
    }
    return OK;
  },
};
