import type { Budget } from './budget.js';
import { DIMS, type FleetState } from './fleet-state.js';
import { PoolSearch } from './pool-search.js';
import type { Random } from './random.js';
import { sequenceMoves, type Step } from './sequence.js';

export interface Consolidation {
  /** Host index per item at the end. */
  assignment: Int32Array;
  steps: Step[];
}

/** Rounds over the candidate hosts; a host that could not be emptied is tried again in the next round, with other random choices. */
const ROUNDS = 3;

/**
 * Frees hosts one at a time. Hosts in use without pinned workloads are
 * candidates, the least loaded first; emptying one is a `PoolSearch` with a
 * share of the budget, and it counts only when `sequenceMoves` finds an
 * order in which every move is admitted. It stops at the lower bound, when
 * no candidate can be emptied, or when the budget is spent. Then the plan is
 * shortened: workloads go back to their own host where that host is still
 * in use and admits them, and hosts trade contents when that saves moves.
 */
export function consolidate(state: FleetState, budget: Budget, random: Random, lowerBound: number): Consolidation {
  const initial = Int32Array.from(state.items, (item) => item.origin);
  let committed: Int32Array = initial;
  const steps: Step[] = [];
  const attemptCap = Math.max(200_000, Math.floor(budget.limit / 20));
  let failed = new Set<number>();
  let round = 0;
  while (!budget.exhausted()) {
    const search = new PoolSearch(state, committed, random);
    const hosts = [...state.hosts.keys()];
    if (hosts.filter((h) => search.inUse(h)).length <= lowerBound) break;
    const weight = (h: number) => search.membersOf(h).reduce((a, i) => a + state.items[i]!.weight, 0);
    const candidates = hosts
      .filter((h) => state.pinned[h]!.length === 0 && search.membersOf(h).length > 0 && !failed.has(h))
      .map((h) => ({ h, weight: weight(h), count: search.membersOf(h).length }))
      .sort((a, b) => a.weight - b.weight || a.count - b.count || a.h - b.h);
    const next = candidates[0];
    if (!next) {
      if (++round >= ROUNDS || failed.size === 0) break;
      failed = new Set();
      continue;
    }
    if (search.empty(next.h, budget.slice(attemptCap))) {
      const target = fewerMoves(state, committed, search.binOf);
      const order = sequenceMoves(state, committed, target);
      if (order) {
        steps.push(...order);
        committed = target;
        failed = new Set();
        continue;
      }
    }
    failed.add(next.h);
  }
  const reduced = fewerMoves(state, initial, committed);
  const direct = sequenceMoves(state, initial, reduced);
  if (direct && direct.length <= steps.length) return { assignment: reduced, steps: direct };
  return { assignment: committed, steps };
}

/** Hosts with a booking under `assignment`. */
export function hostsInUse(state: FleetState, assignment: Int32Array): boolean[] {
  const used = state.hosts.map((_, h) => state.pinned[h]!.length > 0);
  for (const h of assignment) used[h] = true;
  return used;
}

/**
 * The same hosts in use with fewer workloads away from their own host:
 * a moved workload goes back when its host is still in use and admits it,
 * and two hosts trade their movable workloads when that leaves more of them
 * at home and both admit what they receive.
 */
export function fewerMoves(state: FleetState, initial: Int32Array, final: Int32Array): Int32Array {
  const assignment = Int32Array.from(final);
  const members: number[][] = state.hosts.map(() => []);
  for (let i = 0; i < assignment.length; i++) members[assignment[i]!]!.push(i);
  const inUse = (h: number) => members[h]!.length > 0 || state.pinned[h]!.length > 0;
  const away = (content: readonly number[], h: number) => content.reduce((n, i) => n + (initial[i] === h ? 0 : 1), 0);
  for (let pass = 0; pass < 4; pass++) {
    let improved = false;
    const moved = [...assignment.keys()].filter((i) => assignment[i] !== initial[i]).sort((a, b) => state.items[b]!.weight - state.items[a]!.weight || a - b);
    for (const i of moved) {
      const home = initial[i]!;
      const now = assignment[i]!;
      if (!inUse(home) || !state.accepts(home, [...members[home]!, i])) continue;
      members[now] = members[now]!.filter((x) => x !== i);
      members[home]!.push(i);
      assignment[i] = home;
      improved = true;
    }
    for (let x = 0; x < state.hosts.length; x++) {
      const content = members[x]!;
      if (content.length === 0) continue;
      const origins = new Map<number, number>();
      for (const i of content) origins.set(initial[i]!, (origins.get(initial[i]!) ?? 0) + 1);
      const [p] = [...origins.entries()].filter(([h]) => h !== x).sort((a, b) => b[1] - a[1] || a[0] - b[0])[0] ?? [];
      if (p === undefined) continue;
      const other = members[p]!;
      const before = away(content, x) + away(other, p);
      const after = away(content, p) + away(other, x);
      const usedBefore = Number(inUse(x)) + Number(inUse(p));
      const usedAfter = Number(content.length > 0 || state.pinned[p]!.length > 0) + Number(other.length > 0 || state.pinned[x]!.length > 0);
      if (after >= before || usedAfter > usedBefore) continue;
      if (!state.accepts(p, content) || !state.accepts(x, other)) continue;
      members[x] = other;
      members[p] = content;
      for (const i of content) assignment[i] = p;
      for (const i of other) assignment[i] = x;
      improved = true;
    }
    if (!improved) break;
  }
  return assignment;
}

/**
 * No placement uses fewer hosts: per resource, the hosts with pinned
 * workloads stay in use, and the rest of the demand needs at least as many
 * of the largest other hosts in use as it takes to hold it.
 */
export function lowerBound(state: FleetState): number {
  const m = state.hosts.length;
  const mandatory = [...Array(m).keys()].filter((h) => state.pinned[h]!.length > 0);
  const optional = [...Array(m).keys()].filter((h) => state.pinned[h]!.length === 0 && state.usedBefore[h]);
  let bound = mandatory.length;
  for (let d = 0; d < DIMS; d++) {
    let rest = state.items.reduce((a, item) => a + item.demand[d]!, 0);
    for (const h of mandatory) rest -= Math.max(0, state.free[h * DIMS + d]!);
    const sizes = optional.map((h) => state.free[h * DIMS + d]!).sort((a, b) => b - a);
    let extra = 0;
    while (rest > 1e-6 && extra < sizes.length) rest -= sizes[extra++]!;
    bound = Math.max(bound, mandatory.length + extra);
  }
  return bound;
}
