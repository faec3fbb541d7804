import { FailedPreconditionError, type WorkloadState } from '@virtfleet/shared';
import type { AgentAction } from '../dispatch/agent-client.js';
import type { DesiredState, Workload } from './workload.js';

export const DESIRED_BY_ACTION: Record<AgentAction, DesiredState> = {
  start: 'running',
  resume: 'running',
  stop: 'stopped',
  pause: 'paused',
  delete: 'deleted',
};

/**
 * The observed states from which each verb is carried out. A verb whose
 * target state is already reached is in its own list: it is idempotent by
 * intent and still sent, so the agent confirms it and the desired state
 * follows the operator. States absent here are refused before anything is
 * recorded: `pending`, `creating`, `deleting` and `deleted` for all but delete,
 * and `unknown` (the host is away, answered with UNAVAILABLE by the caller).
 */
const ALLOWED_FROM: Record<Exclude<AgentAction, 'delete'>, readonly WorkloadState[]> = {
  start: ['stopped', 'failed', 'running'],
  stop: ['running', 'paused', 'stopped', 'failed'],
  pause: ['running', 'paused'],
  resume: ['paused', 'running'],
};

const REFUSAL: Record<Exclude<AgentAction, 'delete'>, string> = {
  start: 'only a stopped or failed workload can be started (a paused one is resumed)',
  stop: 'only a running, paused or failed workload can be stopped',
  pause: 'only a running workload can be paused',
  resume: 'only a paused workload can be resumed',
};

export type LifecycleVerdict =
  /** Send the command to the workload's agent. */
  | { kind: 'dispatch' }
  /** Nothing to do: the request is already satisfied (a delete of a deleted workload). */
  | { kind: 'done' }
  /** Not placed yet: a delete takes it out of the queue; nothing else applies. */
  | { kind: 'dequeue' }
  /** The host is away: the caller answers UNAVAILABLE. */
  | { kind: 'host-away' }
  | { kind: 'refuse'; error: FailedPreconditionError };

/** Whether `action` may be carried out on `w` as the coordinator sees it now. Pure; changes nothing. */
export function lifecycleVerdict(action: AgentAction, w: Pick<Workload, 'id' | 'state' | 'hostId' | 'message'>): LifecycleVerdict {
  const refuse = (why: string): LifecycleVerdict => ({ kind: 'refuse', error: new FailedPreconditionError(`workload ${w.id} ${why}`) });
  if (w.state === 'deleted') return action === 'delete' ? { kind: 'done' } : refuse('was deleted');
  if (!w.hostId) return action === 'delete' ? { kind: 'dequeue' } : refuse(`is not placed yet: ${w.message}`);
  if (action === 'delete') return w.state === 'unknown' ? { kind: 'host-away' } : { kind: 'dispatch' };
  if (w.state === 'unknown') return { kind: 'host-away' };
  if (w.state === 'creating') return refuse('is still being created; try again');
  if (w.state === 'deleting') return refuse('is being deleted');
  if (!ALLOWED_FROM[action].includes(w.state)) return refuse(`is ${w.state}; ${REFUSAL[action]}`);
  return { kind: 'dispatch' };
}
