import type { FilterPlugin } from '../plugins.js';
import { OK } from '../plugins.js';

export const ANTI_AFFINITY = 'anti-affinity';

/** No two members of one anti-affinity group on one host. */
export const antiAffinityFilter: FilterPlugin = {
  name: ANTI_AFFINITY,
  filter({ spec }, host) {
    const group = spec.security.anti_affinity_group;
    return group && host.antiAffinityGroups.has(group) ? { status: 'unschedulable', reason: `anti-affinity group ${group} present` } : OK;
  },
};
