import { assume, release, type HostSnapshot } from '../scheduler/scheduler.js';
import type { FleetState } from './fleet-state.js';

/** One migration of item `item` from host index `from` to host index `to`. */
export interface Step {
  item: number;
  from: number;
  to: number;
}

/**
 * Orders the moves that take the fleet from assignment `from` to assignment
 * `to` (host index per item) so that each is admitted by every filter when
 * its turn comes: the target's snapshot then holds everything still there
 * or already arrived, and the moving workload stays booked on its source
 * until its move is over, as a migration holds both. A move that cannot go
 * yet waits for others to make room; when none can go (two full hosts
 * swapping workloads), one workload is parked on a third host that admits
 * it and moves on from there later. Undefined when even that fails.
 */
export function sequenceMoves(state: FleetState, from: Int32Array, to: Int32Array): Step[] | undefined {
  const { items } = state;
  const residents: number[][] = state.hosts.map(() => []);
  for (let i = 0; i < from.length; i++) residents[from[i]!]!.push(i);
  const live = new Map<number, HostSnapshot>();
  const snapshot = (h: number): HostSnapshot => {
    let s = live.get(h);
    if (!s) live.set(h, (s = state.snapshotWith(h, residents[h]!)));
    return s;
  };
  const current = Int32Array.from(from);
  const steps: Step[] = [];
  const execute = (i: number, target: number): void => {
    const source = current[i]!;
    const spec = items[i]!.workload.spec;
    assume(snapshot(target), spec);
    const left = residents[source]!.filter((r) => r !== i);
    const s = snapshot(source);
    residents[source] = left;
    release(s, spec, [...state.pinned[source]!.map((w) => w.spec), ...left.map((r) => items[r]!.workload.spec)]);
    residents[target]!.push(i);
    current[i] = target;
    steps.push({ item: i, from: source, to: target });
  };

  // Largest first: they are the hardest to fit once smaller ones have taken the room.
  let pending = [...Array(from.length).keys()].filter((i) => from[i] !== to[i]).sort((a, b) => items[b]!.weight - items[a]!.weight || a - b);
  let parkings = pending.length;
  while (pending.length > 0) {
    const waiting: number[] = [];
    for (const i of pending) {
      if (state.admits(i, snapshot(to[i]!), current[i]!)) execute(i, to[i]!);
      else waiting.push(i);
    }
    if (waiting.length === pending.length) {
      if (parkings-- <= 0) return undefined;
      const parked = park(state, waiting, current, to, snapshot);
      if (!parked) return undefined;
      execute(parked.item, parked.host);
    }
    pending = waiting;
  }
  return steps;
}

/**
 * A waiting item and a third host that admits it now: a host in use rather
 * than an idle one, then the one with the most room left (memory and CPU
 * shares). Undefined when there is none.
 */
function park(state: FleetState, waiting: readonly number[], current: Int32Array, to: Int32Array, snapshot: (h: number) => HostSnapshot): { item: number; host: number } | undefined {
  const share = (free: number, all: number) => (all > 0 ? free / all : 0);
  for (const i of waiting) {
    let best: { host: number; room: number } | undefined;
    for (let h = 0; h < state.hosts.length; h++) {
      if (h === current[i] || h === to[i] || !state.receptive[h]) continue;
      const s = snapshot(h);
      if (!state.admits(i, s, current[i]!)) continue;
      const inUse = s.workloadCount > 0 ? 2 : 0;
      const room = inUse + share(s.allocatable.memoryMiB - s.allocated.memoryMiB, s.allocatable.memoryMiB) + share(s.allocatable.vcpus - s.allocated.vcpus, s.allocatable.vcpus);
      if (!best || room > best.room) best = { host: h, room };
    }
    if (best) return { item: i, host: best.host };
  }
  return undefined;
}
