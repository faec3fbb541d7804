import { restartPolicyOf, type WorkloadSpec, type WorkloadState } from '@virtfleet/shared';

/** What decides whether a workload may be moved by a plan. */
export interface MovabilityFacts {
  spec: WorkloadSpec;
  state: WorkloadState;
  /** The state asked for; absent: the same as `state`. */
  desiredState?: string;
  /** A migration is under way. */
  migrating?: boolean;
  /** A command for it is on its way to an agent. */
  busy?: boolean;
  /** Its host is up (reporting); a cordoned host is up. */
  hostUp: boolean;
}

/**
 * Why a workload must stay where it is, or undefined when a plan may move
 * it. Only a running or paused workload on a host that is up, with nothing
 * under way (no migration, no command, no state change pending), moves: the
 * migration machinery moves exactly those. A workload with `restart_policy:
 * never` stays, VM or container, the rule a host drain follows too: a
 * container moves cold (stopped, carried, started again), which its owner
 * ruled out, and one rule for both kinds is the one an operator can predict.
 */
export function pinnedReason(w: MovabilityFacts): string | undefined {
  if (w.migrating) return 'migrating';
  if (!w.hostUp) return 'its host is not up';
  if (w.state !== 'running' && w.state !== 'paused') return `${w.state}: only running and paused workloads move`;
  if (w.desiredState !== undefined && w.desiredState !== w.state) return `changing to ${w.desiredState}`;
  if (w.busy) return 'a command is under way';
  if (restartPolicyOf(w.spec) === 'never') return 'restart_policy never';
  return undefined;
}
