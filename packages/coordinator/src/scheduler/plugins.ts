import type { FilterStatus, HostSnapshot, PlacementRequest } from './scheduler.js';

export interface FilterResult {
  status: FilterStatus;
  /** Set unless ok: a short phrase that reads after a count, e.g. "insufficient memory". */
  reason?: string;
}

export const OK: FilterResult = { status: 'ok' };

/**
 * Decides whether a host may run a request. Pure and cheap: it runs for many
 * hosts per placement. It throws only for bugs.
 */
export interface FilterPlugin {
  readonly name: string;
  filter(request: PlacementRequest, host: HostSnapshot): FilterResult;
}

/** Rates a feasible host from 0 (worst) to 100 (best). Pure. */
export interface ScorePlugin {
  readonly name: string;
  score(request: PlacementRequest, host: HostSnapshot): number;
}

/** A request waiting in the admission queue. */
export interface QueuedRequest {
  workloadId: string;
  priority: number;
  expectedRuntimeSeconds: number;
  /** Arrival order, unique and increasing. */
  arrivalSeq: number;
  /** Arrival time in ms (the simulator's clock or the wall clock). */
  arrivalMs: number;
}

/** Orders the admission queue: one active at a time, like Kubernetes' QueueSort. */
export interface QueueSortPlugin {
  readonly name: string;
  /** True when `a` goes before `b` at time `nowMs`. Must be a strict weak order. */
  less(a: QueuedRequest, b: QueuedRequest, nowMs: number): boolean;
}

export const clamp100 = (n: number): number => Math.max(0, Math.min(100, n));
