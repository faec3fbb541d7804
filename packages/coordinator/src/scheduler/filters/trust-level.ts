import type { FilterPlugin } from '../plugins.js';
import { OK } from '../plugins.js';

export const TRUST_LEVEL = 'trust-level';

export const trustLevelFilter: FilterPlugin = {
  name: TRUST_LEVEL,
  filter({ spec }, host) {
    const min = spec.security.min_trust_level;
    return host.trustLevel >= min ? OK : { status: 'unresolvable', reason: `trust level below ${min}` };
  },
};
