import { InvalidArgumentError } from '@virtfleet/shared';
import { FILTERS, SCORERS, scorerWeights, type PlacementPolicy } from './catalog.js';
import { PipelineScheduler } from './pipeline-scheduler.js';

export interface SchedulerSettings {
  placement: PlacementPolicy;
  /** Scorer weights over the placement policy's defaults. */
  weights: Record<string, number>;
  candidateLimit: number;
}

/**
 * The scheduler the coordinator and the simulator share: every registered
 * filter in catalog order, every scorer with its weight.
 * @throws InvalidArgumentError naming an unknown scorer in `weights`.
 */
export function createScheduler(settings: SchedulerSettings): PipelineScheduler {
  for (const name of Object.keys(settings.weights)) {
    if (!SCORERS.get(name)) throw new InvalidArgumentError(`scheduler.weights.${name}`, `unknown scorer; known: ${SCORERS.names().join(', ')}`);
  }
  const weights = scorerWeights(settings.placement, settings.weights);
  return new PipelineScheduler({
    filters: FILTERS.names().map((n) => FILTERS.get(n)!),
    scorers: SCORERS.names().map((n) => ({ plugin: SCORERS.get(n)!, weight: weights[n] ?? 0 })),
    candidateLimit: settings.candidateLimit,
  });
}
