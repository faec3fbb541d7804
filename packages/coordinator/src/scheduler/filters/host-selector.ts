import type { FilterPlugin } from '../plugins.js';
import { OK } from '../plugins.js';

export const HOST_SELECTOR = 'host-selector';

/** Every `host_selector` label must be on the host with exactly that value. */
export const hostSelectorFilter: FilterPlugin = {
  name: HOST_SELECTOR,
  filter({ spec }, host) {
    for (const [key, value] of Object.entries(spec.host_selector)) {
      if (host.labels[key] !== value) return { status: 'unresolvable', reason: `label ${key}≠${value}` };
    }
    return OK;
  },
};
