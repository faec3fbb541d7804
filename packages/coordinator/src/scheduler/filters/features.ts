import type { FilterPlugin } from '../plugins.js';
import { OK } from '../plugins.js';

export const FEATURES = 'features';

export const featuresFilter: FilterPlugin = {
  name: FEATURES,
  filter({ spec }, host) {
    for (const feature of spec.security.required_features) {
      if (!host.features.has(feature)) return { status: 'unresolvable', reason: `missing feature ${feature}` };
    }
    return OK;
  },
};
