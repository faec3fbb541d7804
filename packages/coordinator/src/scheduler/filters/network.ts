import { SPEC_NETWORK_NONE } from '@virtfleet/shared';
import type { FilterPlugin } from '../plugins.js';
import { OK } from '../plugins.js';

export const NETWORK = 'network';

/** The host offers the network the spec names (`none` and no network fit anywhere). */
export const networkFilter: FilterPlugin = {
  name: NETWORK,
  filter({ spec }, host) {
    const wanted = spec.network;
    if (wanted === undefined || wanted === SPEC_NETWORK_NONE || host.networks.has(wanted)) return OK;
    return { status: 'unresolvable', reason: `no network ${wanted}` };
  },
};
