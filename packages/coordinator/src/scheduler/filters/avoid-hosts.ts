import type { FilterPlugin } from '../plugins.js';
import { OK } from '../plugins.js';

export const AVOID_HOSTS = 'avoid-hosts';

/**
 * The request's `avoidHosts`, whatever its spec says: a rescheduled workload
 * never goes back to the host it is leaving. Not now, so unschedulable.
 */
export const avoidHostsFilter: FilterPlugin = {
  name: AVOID_HOSTS,
  filter: ({ avoidHosts }, host) => (avoidHosts?.includes(host.id) ? { status: 'unschedulable', reason: 'being left by this workload' } : OK),
};
