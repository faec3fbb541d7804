import { assume, release, type HostSnapshot } from '../scheduler/scheduler.js';
import type { Budget } from './budget.js';
import { DIMS, units, type FleetState } from './fleet-state.js';
import { CPU, MEMORY } from './metrics.js';
import type { Step } from './sequence.js';

export interface Balancing {
  assignment: Int32Array;
  steps: Step[];
}

/** The most loaded hosts whose workloads are considered as movers in one step. */
const SOURCES_PER_STEP = 8;
/** For each such workload, the least loaded hosts it fits that are weighed as its target. */
const TARGETS_PER_WORKLOAD = 16;

/**
 * Evens out memory and CPU utilisation over the hosts in use, greedily: each
 * step makes the single move that lowers the imbalance most,
 *
 *   imbalance = Σ over memory and CPU, Σ over hosts in use of
 *               (allocatable / mean allocatable) × (utilisation − fleet utilisation)²
 *
 * (fleet utilisation: booked over allocatable, summed over the hosts in use;
 * weighing by capacity makes equal utilisation the optimum even when hosts
 * differ in size), among the workloads of the most loaded hosts, as long as a
 * move lowers it by at least `minImprovement`. Targets are hosts already in
 * use, so no host is added; each workload moves at most once, and each move
 * is admitted by every filter on the hosts as they are at that step, so the
 * steps are valid in order.
 */
export function balance(state: FleetState, budget: Budget, minImprovement: number): Balancing {
  const { items, hosts } = state;
  const m = hosts.length;
  const assignment = Int32Array.from(items, (item) => item.origin);
  const members: number[][] = hosts.map(() => []);
  assignment.forEach((h, i) => members[h]!.push(i));
  const used = state.usedBefore;
  const dims = [CPU, MEMORY];
  // In the planner's units (milli-CPUs for CPU), as the demands and bookings are.
  const capacities = hosts.map((host) => units(host.allocatable));
  const capacity = (h: number, d: number) => capacities[h]![d]!;
  const meanCapacity = dims.map((d) => {
    const list = hosts.flatMap((_, h) => (used[h] ? [capacity(h, d)] : []));
    return list.length > 0 ? list.reduce((a, v) => a + v, 0) / list.length : 0;
  });
  // Booked amounts per host and resource, and the movable part of it, for the arithmetic pre-check.
  const booked = new Float64Array(m * DIMS);
  const load = new Float64Array(m * DIMS);
  state.base.forEach((b, h) => booked.set(units(b.allocated), h * DIMS));
  assignment.forEach((h, i) => {
    for (let d = 0; d < DIMS; d++) {
      booked[h * DIMS + d] = booked[h * DIMS + d]! + items[i]!.demand[d]!;
      load[h * DIMS + d] = load[h * DIMS + d]! + items[i]!.demand[d]!;
    }
  });
  const live = new Map<number, HostSnapshot>();
  const snapshot = (h: number): HostSnapshot => {
    let s = live.get(h);
    if (!s) live.set(h, (s = state.snapshotWith(h, members[h]!)));
    return s;
  };
  // Change in the imbalance when amount x of resource d leaves host a for host b.
  const delta = (a: number, b: number, i: number): number => {
    let sum = 0;
    dims.forEach((d, k) => {
      const x = items[i]!.demand[d]!;
      const ca = capacity(a, d);
      const cb = capacity(b, d);
      if (x === 0 || ca <= 0 || cb <= 0 || meanCapacity[k]! <= 0) return;
      const ua = booked[a * DIMS + d]!;
      const ub = booked[b * DIMS + d]!;
      sum += ((ua - x) ** 2 - ua ** 2) / ca / meanCapacity[k]! + ((ub + x) ** 2 - ub ** 2) / cb / meanCapacity[k]!;
    });
    return sum;
  };
  const pressureOf = (h: number) => dims.reduce((a, d) => a + (capacity(h, d) > 0 ? booked[h * DIMS + d]! / capacity(h, d) : 0), 0);
  // Memory plus CPU utilisation per host, kept up to date as moves are made.
  const pressures = Float64Array.from(hosts, (_, h) => pressureOf(h));
  const pressure = (h: number) => pressures[h]!;

  const moved = new Uint8Array(items.length);
  const steps: Step[] = [];
  const trial = new Float64Array(DIMS);
  const targets = [...Array(m).keys()].filter((h) => used[h] && state.receptive[h]);
  while (!budget.exhausted()) {
    const sources = [...Array(m).keys()]
      .filter((h) => used[h] && members[h]!.some((i) => !moved[i]))
      .sort((a, b) => pressure(b) - pressure(a) || a - b)
      .slice(0, SOURCES_PER_STEP);
    const byPressure = [...targets].sort((a, b) => pressure(a) - pressure(b) || a - b);
    const candidates: { i: number; from: number; to: number; change: number }[] = [];
    for (const a of sources) {
      for (const i of members[a]!) {
        if (moved[i]) continue;
        let weighed = 0;
        for (const b of byPressure) {
          if (b === a) continue;
          if (weighed >= TARGETS_PER_WORKLOAD || pressure(b) >= pressure(a)) break;
          budget.spend();
          for (let d = 0; d < DIMS; d++) trial[d] = load[b * DIMS + d]! + items[i]!.demand[d]!;
          if (!state.fits(b, trial, 0, members[b]!.length + 1)) continue;
          weighed++;
          const change = delta(a, b, i);
          if (change <= -minImprovement) candidates.push({ i, from: a, to: b, change });
        }
      }
    }
    candidates.sort((x, y) => x.change - y.change || x.i - y.i || x.to - y.to);
    const chosen = candidates.find((c) => state.admits(c.i, snapshot(c.to), c.from));
    if (!chosen) break;
    const { i, from, to } = chosen;
    const spec = items[i]!.workload.spec;
    assume(snapshot(to), spec);
    members[from] = members[from]!.filter((x) => x !== i);
    release(snapshot(from), spec, [...state.pinned[from]!.map((w) => w.spec), ...members[from]!.map((x) => items[x]!.workload.spec)]);
    members[to]!.push(i);
    for (let d = 0; d < DIMS; d++) {
      const x = items[i]!.demand[d]!;
      booked[from * DIMS + d] = booked[from * DIMS + d]! - x;
      booked[to * DIMS + d] = booked[to * DIMS + d]! + x;
      load[from * DIMS + d] = load[from * DIMS + d]! - x;
      load[to * DIMS + d] = load[to * DIMS + d]! + x;
    }
    pressures[from] = pressureOf(from);
    pressures[to] = pressureOf(to);
    assignment[i] = to;
    moved[i] = 1;
    steps.push({ item: i, from, to });
  }
  return { assignment, steps };
}
