import { InvalidArgumentError } from '@virtfleet/shared';
import { balance } from './balance.js';
import { Budget } from './budget.js';
import { consolidate, hostsInUse, lowerBound } from './consolidate.js';
import { FleetState } from './fleet-state.js';
import { CPU, MEMORY, spread, utilisation } from './metrics.js';
import { seededRandom } from './random.js';
import { REBALANCE_GOALS, type RebalanceInput, type RebalanceOptions, type RebalancePlan, type RebalancePlanner } from './rebalance.js';

export const DEFAULT_EFFORT = 5_000_000;
export const DEFAULT_TIME_LIMIT_MS = 10_000;
export const DEFAULT_MIN_IMPROVEMENT = 0.002;

/** The planner: `consolidate` (pool search per host) or `balance` (greedy moves), then the plan's figures. */
export class SearchRebalancer implements RebalancePlanner {
  plan(input: RebalanceInput, options: RebalanceOptions): RebalancePlan {
    if (!(REBALANCE_GOALS as readonly string[]).includes(options.goal)) throw new InvalidArgumentError('goal', `must be one of ${REBALANCE_GOALS.join(', ')}`);
    const state = new FleetState(input);
    const budget = new Budget(options.effort ?? DEFAULT_EFFORT, options.timeLimitMs ?? DEFAULT_TIME_LIMIT_MS);
    state.meter = budget;
    const random = seededRandom(options.seed ?? 1);
    const bound = lowerBound(state);
    const { assignment, steps } =
      options.goal === 'consolidate' ? consolidate(state, budget, random, bound) : balance(state, budget, options.minImprovement ?? DEFAULT_MIN_IMPROVEMENT);

    const initial = Int32Array.from(state.items, (item) => item.origin);
    const before = hostsInUse(state, initial);
    const after = hostsInUse(state, assignment);
    const count = (used: readonly boolean[]) => used.filter(Boolean).length;
    const utilBefore = utilisation(state, initial);
    const utilAfter = utilisation(state, assignment);
    return {
      goal: options.goal,
      moves: steps.map(({ item, from, to }) => {
        const w = state.items[item]!.workload;
        return { workloadId: w.id, name: w.name, from: state.hosts[from]!.id, to: state.hosts[to]!.id };
      }),
      hostsUsedBefore: count(before),
      hostsUsedAfter: count(after),
      hostsLowerBound: bound,
      gain: {
        hostsFreed: count(before) - count(after),
        freedHosts: state.hosts.flatMap((h, i) => (before[i] && !after[i] ? [h.id] : [])),
        memory: { before: spread(utilBefore, before, MEMORY), after: spread(utilAfter, after, MEMORY) },
        cpu: { before: spread(utilBefore, before, CPU), after: spread(utilAfter, after, CPU) },
      },
      pinned: state.pinned.flatMap((list, h) => list.map((w) => ({ workloadId: w.id, name: w.name, hostId: state.hosts[h]!.id, reason: w.pinned ?? '' }))),
      truncated: budget.truncated,
    };
  }
}

/** Computes a rebalancing plan; see `RebalancePlanner.plan`. */
export function planRebalance(input: RebalanceInput, options: RebalanceOptions): RebalancePlan {
  return new SearchRebalancer().plan(input, options);
}
