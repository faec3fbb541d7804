import type { FilterPlugin } from '../plugins.js';
import { OK } from '../plugins.js';

export const DRIVER = 'driver';

/**
 * A healthy driver for the workload's kind, and for a VM that asks for a
 * domain type, a driver that offers it. A driver that exists but is
 * unhealthy may recover.
 */
export const driverFilter: FilterPlugin = {
  name: DRIVER,
  filter({ spec }, host) {
    if (spec.kind === 'vm' && spec.domain_type !== undefined) {
      const wanted = spec.domain_type;
      if (!host.drivers.some((d) => (d.kinds as readonly string[]).includes('vm') && d.domain_types.includes(wanted))) return { status: 'unresolvable', reason: `no ${wanted} domain type` };
    }
    if (host.kinds.has(spec.kind)) return OK;
    const present = host.drivers.some((d) => (d.kinds as readonly string[]).includes(spec.kind));
    return present ? { status: 'unschedulable', reason: `${spec.kind} driver unhealthy` } : { status: 'unresolvable', reason: `no ${spec.kind} driver` };
  },
};
