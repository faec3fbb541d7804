import { catalogRefsOf, parseCatalogRef, type WorkloadSpec } from '@virtfleet/shared';
import type { ScorePlugin } from '../plugins.js';

export const IMAGE_LOCALITY = 'image-locality';

const pinnedBySpec = new WeakMap<WorkloadSpec, readonly string[]>();

/** The digests of the catalog images a (pinned) spec uses; the coordinator pins them at submit. */
export function pinnedImageDigests(spec: WorkloadSpec): readonly string[] {
  let digests = pinnedBySpec.get(spec);
  if (!digests) {
    digests = catalogRefsOf(spec).flatMap(({ ref }) => parseCatalogRef(ref)?.digest ?? []);
    pinnedBySpec.set(spec, digests);
  }
  return digests;
}

/**
 * Prefers hosts that already hold the workload's catalog images, as
 * Kubernetes' ImageLocality does: no fetch before the start, and no
 * transfer across the network. The share of its images the host holds, 0-100;
 * 0 everywhere for a workload without catalog images.
 */
export const imageLocalityScorer: ScorePlugin = {
  name: IMAGE_LOCALITY,
  score({ spec }, host) {
    const digests = pinnedImageDigests(spec);
    if (digests.length === 0 || host.images.size === 0) return 0;
    let held = 0;
    for (const d of digests) if (host.images.has(d)) held++;
    return (held / digests.length) * 100;
  },
};
