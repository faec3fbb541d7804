import { DIMS, units, type FleetState } from './fleet-state.js';
import type { UtilisationSpread } from './rebalance.js';

/** Booked / allocatable per host and resource (index h * DIMS + d) with the movable workloads placed as `assignment` says. */
export function utilisation(state: FleetState, assignment: Int32Array): Float64Array {
  const m = state.hosts.length;
  const booked = new Float64Array(m * DIMS);
  state.base.forEach((b, h) => booked.set(units(b.allocated), h * DIMS));
  assignment.forEach((h, i) => {
    for (let d = 0; d < DIMS; d++) booked[h * DIMS + d] = booked[h * DIMS + d]! + state.items[i]!.demand[d]!;
  });
  state.hosts.forEach((host, h) => {
    const all = units(host.allocatable);
    for (let d = 0; d < DIMS; d++) booked[h * DIMS + d] = all[d]! > 0 ? booked[h * DIMS + d]! / all[d]! : 0;
  });
  return booked;
}

/** Max, mean and population standard deviation of resource `d`'s utilisation over the hosts in `used`; zeros when none is. */
export function spread(util: Float64Array, used: readonly boolean[], d: number): UtilisationSpread {
  const values = used.flatMap((u, h) => (u ? [util[h * DIMS + d]!] : []));
  if (values.length === 0) return { max: 0, mean: 0, stddev: 0 };
  const mean = values.reduce((a, v) => a + v, 0) / values.length;
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length;
  return { max: Math.max(...values), mean, stddev: Math.sqrt(variance) };
}

export const CPU = 0;
export const MEMORY = 1;
