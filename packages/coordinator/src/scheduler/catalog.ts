import { antiAffinityFilter } from './filters/anti-affinity.js';
import { avoidHostsFilter } from './filters/avoid-hosts.js';
import { driverFilter } from './filters/driver.js';
import { featuresFilter } from './filters/features.js';
import { hostSelectorFilter } from './filters/host-selector.js';
import { isolationFilter } from './filters/isolation.js';
import { networkFilter } from './filters/network.js';
import { performanceFilter } from './filters/performance.js';
import { portsFilter } from './filters/ports.js';
import { resourcesFilter } from './filters/resources.js';
import { schedulableFilter } from './filters/schedulable.js';
import { trustLevelFilter } from './filters/trust-level.js';
import type { FilterPlugin, QueueSortPlugin, ScorePlugin } from './plugins.js';
import { fcfsSort } from './queue/fcfs.js';
import { prioritySort } from './queue/priority.js';
import { sjfSort } from './queue/sjf.js';
import { Registry } from './registry.js';
import { binpackScorer } from './scorers/binpack.js';
import { imageLocalityScorer } from './scorers/image-locality.js';
import { performanceHeadroomScorer } from './scorers/performance-headroom.js';
import { spreadScorer } from './scorers/spread.js';
import { tenantAffinityScorer } from './scorers/tenant-affinity.js';

/**
 * Filters in the order they run: cheapest and most selective first. Status,
 * avoided hosts and driver are flag checks; resources is arithmetic; isolation walks the
 * host's tenants; performance reads measured load and goes last so that a
 * host that cannot fit the request anyway is not judged on its load.
 */
export const FILTERS = new Registry<FilterPlugin>('filter');
for (const f of [schedulableFilter, avoidHostsFilter, driverFilter, networkFilter, trustLevelFilter, featuresFilter, hostSelectorFilter, resourcesFilter, portsFilter, antiAffinityFilter, isolationFilter, performanceFilter])
  FILTERS.register(f.name, f);

export const SCORERS = new Registry<ScorePlugin>('scorer');
for (const s of [binpackScorer, spreadScorer, performanceHeadroomScorer, tenantAffinityScorer, imageLocalityScorer]) SCORERS.register(s.name, s);

/** Queue orderings by name; priority takes its aging rate. */
export const QUEUE_SORTS = new Registry<(options: { agingPerMinute: number }) => QueueSortPlugin>('queue policy');
QUEUE_SORTS.register(fcfsSort.name, () => fcfsSort);
QUEUE_SORTS.register(sjfSort.name, () => sjfSort);
QUEUE_SORTS.register('priority', ({ agingPerMinute }) => prioritySort(agingPerMinute));

export const QUEUE_POLICIES = ['fcfs', 'sjf', 'priority'] as const;
export type QueuePolicy = (typeof QUEUE_POLICIES)[number];
export const PLACEMENT_POLICIES = ['binpack', 'spread'] as const;
export type PlacementPolicy = (typeof PLACEMENT_POLICIES)[number];

/** Scorer weights for a placement policy; `overrides` come from config. */
export function scorerWeights(placement: PlacementPolicy, overrides: Record<string, number> = {}): Record<string, number> {
  const base: Record<string, number> = {
    binpack: placement === 'binpack' ? 1 : 0,
    spread: placement === 'spread' ? 1 : 0,
    'performance-headroom': 0.5,
    'tenant-affinity': 0.25,
    'image-locality': 0.5,
  };
  return { ...base, ...overrides };
}
