import type { FilterPlugin } from '../plugins.js';
import { OK } from '../plugins.js';

export const SCHEDULABLE = 'schedulable';

/** The host is up and accepting work. First, as the cheapest check. */
export const schedulableFilter: FilterPlugin = {
  name: SCHEDULABLE,
  filter: (_request, host) => (host.schedulable ? OK : { status: 'unschedulable', reason: host.unschedulableReason ?? 'down' }),
};
