import type { ScorePlugin } from '../plugins.js';
import { clamp100 } from '../plugins.js';

export const TENANT_AFFINITY = 'tenant-affinity';

/**
 * Prefers hosts whose workloads belong to the request's own tenant, so
 * tenants share hosts with as few others as possible. An empty host scores 50.
 */
export const tenantAffinityScorer: ScorePlugin = {
  name: TENANT_AFFINITY,
  score({ spec }, host) {
    if (host.workloadCount === 0) return 50;
    return clamp100(((host.tenants.get(spec.tenant) ?? 0) / host.workloadCount) * 100);
  },
};
