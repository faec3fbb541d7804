import { hostPortKey } from '@virtfleet/shared';
import type { FilterPlugin } from '../plugins.js';
import { OK } from '../plugins.js';

export const PORTS = 'ports';

/** The host ports the workload publishes are free there: one workload per host port and protocol. */
export const portsFilter: FilterPlugin = {
  name: PORTS,
  filter({ spec }, host) {
    for (const p of spec.ports ?? []) {
      const key = hostPortKey(p);
      if (host.ports.has(key)) return { status: 'unschedulable', reason: `${p.protocol} port ${p.host_port} taken` };
    }
    return OK;
  },
};
