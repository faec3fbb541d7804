import { InvalidArgumentError } from '@virtfleet/shared';
import { FILTERS } from '../scheduler/catalog.js';
import { toMilliCpus } from '../scheduler/milli-cpus.js';
import type { FilterPlugin } from '../scheduler/plugins.js';
import { assume, demandOf, release, type HostSnapshot, type PlacementRequest, type ResourceVector } from '../scheduler/scheduler.js';
import type { PlanWorkload, RebalanceInput } from './rebalance.js';

/** Resources the arithmetic pre-check sums: milli-CPUs, memory MiB, disk GiB (whole numbers, so sums are exact). */
export const DIMS = 3;

/** A resource vector in the planner's units, in DIMS order: milli-CPUs, MiB, GiB. */
export function units(v: ResourceVector): [number, number, number] {
  return [toMilliCpus(v.vcpus), v.memoryMiB, v.diskGiB];
}
/** Slack for sums of decimal demands; the filters themselves decide exactly. */
const EPSILON = 1e-6;

/** A workload the planner may move. */
export interface Item {
  workload: PlanWorkload;
  /** Index of the host it is on before the plan. */
  origin: number;
  /** milli-CPUs, memory MiB, disk GiB (`units`). */
  demand: Float64Array;
  /** Its size in one number: each resource's demand over the fleet's mean allocatable amount, summed. */
  weight: number;
  /** The placement request the filters judge for a move away from host index `from`: that host avoided, as for a migration. */
  request: (from: number) => PlacementRequest;
}

const FILTER_PLUGINS: readonly FilterPlugin[] = FILTERS.names().map((n) => FILTERS.get(n)!);

/**
 * The fleet as the planner sees it: hosts in id order, the workloads that may
 * move (`items`), and each host's bookings without them (`base`). Every
 * placement decision goes through the scheduler's registered filter plugins
 * on snapshots built with `assume`/`release`; the arithmetic here only rules
 * out candidates early and never admits one on its own.
 */
export class FleetState {
  readonly hosts: readonly HostSnapshot[];
  readonly items: readonly Item[];
  /** Per host: its pinned workloads. */
  readonly pinned: readonly (readonly PlanWorkload[])[];
  /** Per host: its snapshot with the pinned bookings only. */
  readonly base: readonly HostSnapshot[];
  /** Per host and resource (index h * DIMS + d): allocatable less the pinned bookings. */
  readonly free: Float64Array;
  /** Per host: workloads it takes beyond its pinned ones. */
  readonly slots: Int32Array;
  /** Per host: its free capacity in item weight units (each resource's free amount over the fleet's mean allocatable amount, summed). */
  readonly capacityWeight: Float64Array;
  /** Per host: accepting new workloads at all (up, not cordoned). */
  readonly receptive: readonly boolean[];
  /** Per host: had a booking before the plan. */
  readonly usedBefore: readonly boolean[];
  /** Filter calls made. */
  filterCalls = 0;
  /** Counts each filter call as one evaluation of the search's effort, when set. */
  meter: { spend(n?: number): unknown } | undefined;

  constructor(input: RebalanceInput) {
    const hosts = [...input.hosts].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const index = new Map<string, number>();
    hosts.forEach((h, i) => {
      if (index.has(h.id)) throw new InvalidArgumentError('hosts', `host ${h.id} is listed twice`);
      index.set(h.id, i);
    });
    const listed: PlanWorkload[][] = hosts.map(() => []);
    for (const w of input.workloads) {
      const h = index.get(w.hostId);
      if (h !== undefined) listed[h]!.push(w);
    }
    const seen = new Set<string>();
    const items: Item[] = [];
    const pinned: PlanWorkload[][] = [];
    const base: HostSnapshot[] = [];
    hosts.forEach((host, h) => {
      const on = listed[h]!.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      if (on.length !== host.workloadCount)
        throw new InvalidArgumentError('workloads', `host ${host.id} books ${host.workloadCount} workload(s) but ${on.length} are listed on it; list every booking`);
      const snapshot = cloneSnapshot(host);
      let remaining = on;
      for (const w of on) {
        if (w.pinned !== undefined) continue;
        if (seen.has(w.id)) throw new InvalidArgumentError('workloads', `workload ${w.id} is listed twice without being pinned`);
        seen.add(w.id);
        remaining = remaining.filter((r) => r !== w);
        release(snapshot, w.spec, remaining.map((r) => r.spec));
        items.push({ workload: w, origin: h, demand: vector(w), weight: 0, request: (from) => ({ workloadId: w.id, spec: w.spec, avoidHosts: [hosts[from]!.id] }) });
      }
      pinned.push(on.filter((w) => w.pinned !== undefined));
      base.push(snapshot);
    });

    const m = hosts.length;
    const free = new Float64Array(m * DIMS);
    const slots = new Int32Array(m);
    const reference = new Float64Array(DIMS);
    hosts.forEach((host, h) => {
      const b = base[h]!;
      const a = units(host.allocatable);
      const u = units(b.allocated);
      for (let d = 0; d < DIMS; d++) {
        free[h * DIMS + d] = a[d]! - u[d]!;
        reference[d] = reference[d]! + a[d]! / Math.max(1, m);
      }
      slots[h] = b.maxWorkloads - b.workloadCount;
    });
    const weigh = (v: ArrayLike<number>, offset: number): number => {
      let weight = 0;
      for (let d = 0; d < DIMS; d++) if (reference[d]! > 0) weight += v[offset + d]! / reference[d]!;
      return weight;
    };
    for (const item of items) item.weight = weigh(item.demand, 0);
    this.capacityWeight = Float64Array.from(hosts, (_, h) => weigh(free, h * DIMS));
    this.hosts = hosts;
    this.items = items;
    this.pinned = pinned;
    this.base = base;
    this.free = free;
    this.slots = slots;
    this.receptive = base.map((b) => b.schedulable);
    this.usedBefore = hosts.map((host) => host.workloadCount > 0);
  }

  /** True when `load` (per resource, movable items only) fits host h's free capacity and slots. */
  fits(h: number, load: Float64Array, offset: number, count: number): boolean {
    if (count > this.slots[h]!) return false;
    for (let d = 0; d < DIMS; d++) if (load[offset + d]! > this.free[h * DIMS + d]! + EPSILON) return false;
    return true;
  }

  /**
   * Host h's snapshot with its pinned bookings and `residents` booked: those
   * already there before the plan first, then the others in the order given.
   */
  snapshotWith(h: number, residents: readonly number[]): HostSnapshot {
    const s = cloneSnapshot(this.base[h]!);
    for (const i of residents) if (this.items[i]!.origin === h) assume(s, this.items[i]!.workload.spec);
    for (const i of residents) if (this.items[i]!.origin !== h) assume(s, this.items[i]!.workload.spec);
    return s;
  }

  /**
   * Whether host h may end up holding exactly `residents` (besides its pinned
   * workloads): every resident that was not there before must pass every
   * filter, booked after those that were, one at a time in the order given.
   */
  accepts(h: number, residents: readonly number[]): boolean {
    const s = cloneSnapshot(this.base[h]!);
    for (const i of residents) if (this.items[i]!.origin === h) assume(s, this.items[i]!.workload.spec);
    for (const i of residents) {
      const item = this.items[i]!;
      if (item.origin === h) continue;
      if (!this.admits(i, s, item.origin)) return false;
      assume(s, item.workload.spec);
    }
    return true;
  }

  /** Every registered filter, in catalog order, admits item i, leaving host index `from`, onto snapshot s. */
  admits(i: number, s: HostSnapshot, from: number): boolean {
    const request = this.items[i]!.request(from);
    for (const f of FILTER_PLUGINS) {
      this.filterCalls++;
      this.meter?.spend();
      if (f.filter(request, s).status !== 'ok') return false;
    }
    return true;
  }
}

function vector(w: PlanWorkload): Float64Array {
  return Float64Array.from(units(demandOf(w.spec)));
}

/** A copy `assume`/`release` can change without touching the original. */
export function cloneSnapshot(s: HostSnapshot): HostSnapshot {
  return {
    ...s,
    allocated: { ...s.allocated },
    ...(s.heldByStopped ? { heldByStopped: { ...s.heldByStopped } } : {}),
    tenants: new Map(s.tenants),
    antiAffinityGroups: new Set(s.antiAffinityGroups),
    ports: new Set(s.ports),
    isolation: s.isolation ? { ...s.isolation } : undefined,
  };
}
