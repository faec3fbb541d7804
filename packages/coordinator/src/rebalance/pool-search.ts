import type { Budget } from './budget.js';
import { DIMS, type FleetState } from './fleet-state.js';
import type { Random } from './random.js';

/** Largest number of workloads taken out of one host, or put on it, by one exchange. */
const MAX_OUT = 2;
const MAX_IN = 2;
/** Candidates kept per iteration, tried in order until the filters admit one. */
const KEEP = 8;
/**
 * Hosts whose exchanges one iteration weighs, at most: the half with the
 * most free room (where pool workloads fit), the other half drawn at random
 * from the rest. A fleet with fewer hosts in use has all of them weighed.
 */
const HOSTS_PER_ITERATION = 64;
/** The pool never grows past this many workloads, nor past twice what it started with. */
const MAX_POOL = 12;
const EPSILON = 1e-9;

interface Move {
  host: number;
  /** Items leaving the host for the pool. */
  out: number[];
  /** Items entering the host from the pool. */
  in: number[];
  /** Weight put on the host: the pool's loss. */
  gain: number;
  /** Change in the pool's item count (more, smaller items are easier to place). */
  poolDelta: number;
  /** Free weight left on the host after the move (smaller: a tighter fit). */
  residue: number;
  tie: number;
}

/** a before b: more weight placed, then a pool of more (smaller) items, then a tighter fit, then chance. */
function better(a: Move, b: Move): boolean {
  if (a.gain > b.gain + EPSILON) return true;
  if (a.gain < b.gain - EPSILON) return false;
  if (a.poolDelta !== b.poolDelta) return a.poolDelta > b.poolDelta;
  if (a.residue < b.residue - EPSILON) return true;
  if (a.residue > b.residue + EPSILON) return false;
  return a.tie < b.tie;
}

/**
 * Tries to empty one host, `h`. Its workloads and those of one of the least
 * loaded other hosts, the pool's home, form a pool; a tabu search then
 * exchanges up to two workloads of another host in use with up to two of
 * the pool at a time, taking the best exchange each step (the most weight
 * placed, then a pool of more and so smaller workloads, then the tightest
 * fit), even one that places less than it takes, to leave local optima. A
 * workload that just left a host may not return to it, nor one that just
 * arrived leave it again, for a few steps. It succeeds once what is left in
 * the pool fits the home.
 *
 * The search works on where workloads end up; the arithmetic on free
 * resources proposes exchanges, and one is made only when every scheduler
 * filter admits the host's new workloads (`FleetState.accepts`). Ordering
 * the migrations that reach the result is `sequenceMoves`' job.
 */
export class PoolSearch {
  /** Host index per item; -1 while in the pool. */
  readonly binOf: Int32Array;
  private readonly members: number[][];
  private readonly load: Float64Array;
  private readonly weightOn: Float64Array;
  private pool: number[] = [];
  private readonly tabu = new Map<number, number>();
  private iteration = 0;
  private readonly scratch = new Float64Array(DIMS * 4);

  constructor(
    private readonly state: FleetState,
    assignment: Int32Array,
    private readonly random: Random,
  ) {
    const m = state.hosts.length;
    this.binOf = Int32Array.from(assignment);
    this.members = state.hosts.map(() => []);
    this.load = new Float64Array(m * DIMS);
    this.weightOn = new Float64Array(m);
    for (let i = 0; i < assignment.length; i++) this.place(i, assignment[i]!);
  }

  /** Hosts with a booking: movable workloads or pinned ones. */
  inUse(h: number): boolean {
    return this.members[h]!.length > 0 || this.state.pinned[h]!.length > 0;
  }

  membersOf(h: number): readonly number[] {
    return this.members[h]!;
  }

  /**
   * Finds places on the other hosts in use for every workload of host `h`,
   * within `budget`. True when it did: `binOf` is then the new assignment.
   * False leaves this search unusable.
   */
  empty(h: number, budget: Budget): boolean {
    const { state } = this;
    let open: number[] = [];
    for (let b = 0; b < state.hosts.length; b++) if (b !== h && state.receptive[b] && this.inUse(b)) open.push(b);
    // The home: one of the least loaded hosts gives its workloads to the pool too, and takes back whatever
    // the pool holds once that fits it. A pool of two hosts' workloads leaves room to exchange.
    const lightest = open
      .filter((b) => this.members[b]!.length > 0)
      .sort((a, b) => this.weightOn[a]! - this.weightOn[b]! || a - b)
      .slice(0, 3);
    const home = lightest.length > 0 ? lightest[this.random.below(lightest.length)] : undefined;
    if (home !== undefined) open = open.filter((b) => b !== home);
    for (const x of home === undefined ? [h] : [h, home]) for (const i of [...this.members[x]!]) this.toPool(i);
    const poolLimit = Math.min(MAX_POOL, Math.max(4, 2 * this.pool.length));
    for (;;) {
      if (home === undefined ? this.pool.length === 0 : this.settleHome(home)) return true;
      if (budget.exhausted()) return false;
      this.iteration++;
      let made = false;
      for (const move of this.candidates(this.sample(open), poolLimit, budget)) {
        if (this.carryOut(move)) {
          made = true;
          break;
        }
      }
      if (!made && !this.kick(open)) return false;
    }
  }

  /** When what is left in the pool fits the home and the filters admit it there, puts it there; true when done. */
  private settleHome(home: number): boolean {
    const { state } = this;
    const l = this.scratch;
    for (let d = 0; d < DIMS; d++) l[d] = 0;
    for (const i of this.pool) for (let d = 0; d < DIMS; d++) l[d] = l[d]! + state.items[i]!.demand[d]!;
    if (!state.fits(home, l, 0, this.pool.length) || !state.accepts(home, this.pool)) return false;
    for (const i of this.pool) this.place(i, home);
    this.pool = [];
    return true;
  }

  /** The hosts this iteration weighs: all of them in a small fleet, else `HOSTS_PER_ITERATION` (see there). */
  private sample(open: readonly number[]): readonly number[] {
    if (open.length <= HOSTS_PER_ITERATION) return open;
    const room = (b: number) => this.state.capacityWeight[b]! - this.weightOn[b]!;
    const roomiest = [...open].sort((a, b) => room(b) - room(a) || a - b).slice(0, HOSTS_PER_ITERATION / 2);
    const rest = open.filter((b) => !roomiest.includes(b));
    for (let i = 0; i < HOSTS_PER_ITERATION / 2; i++) {
      const j = i + this.random.below(rest.length - i);
      [rest[i], rest[j]] = [rest[j]!, rest[i]!];
    }
    return [...roomiest, ...rest.slice(0, HOSTS_PER_ITERATION / 2)];
  }

  private candidates(open: readonly number[], poolLimit: number, budget: Budget): Move[] {
    const { state } = this;
    const kept: Move[] = [];
    const pool = this.pool;
    const p = pool.length;
    const l = this.scratch;
    const consider = (host: number, out: number[], inn: number[], gain: number, weightAfter: number): void => {
      const poolDelta = out.length - inn.length;
      if (p + poolDelta > poolLimit) return;
      const move: Move = { host, out, in: inn, gain, poolDelta, residue: state.capacityWeight[host]! - weightAfter, tie: 0 };
      if (kept.length === KEEP && !better(move, kept[KEEP - 1]!)) return;
      move.tie = this.random.next();
      let at = kept.length;
      while (at > 0 && better(move, kept[at - 1]!)) at--;
      kept.splice(at, 0, move);
      if (kept.length > KEEP) kept.pop();
    };
    for (const b of open) {
      const members = this.members[b]!;
      const k = members.length;
      // Out-sets: none, one, two members (never one that just arrived).
      const outs: number[][] = [[]];
      for (let x = 0; x < k; x++) {
        if (this.isTabu(members[x]!, b)) continue;
        outs.push([members[x]!]);
        if (MAX_OUT > 1) for (let y = x + 1; y < k; y++) if (!this.isTabu(members[y]!, b)) outs.push([members[x]!, members[y]!]);
      }
      for (const out of outs) {
        // l[0..DIMS): the host's load without `out`.
        let outWeight = 0;
        for (let d = 0; d < DIMS; d++) l[d] = this.load[b * DIMS + d]!;
        for (const o of out) {
          outWeight += state.items[o]!.weight;
          for (let d = 0; d < DIMS; d++) l[d] = l[d]! - state.items[o]!.demand[d]!;
        }
        const count = k - out.length;
        const base = this.weightOn[b]! - outWeight;
        for (let s = 0; s < p; s++) {
          const a = pool[s]!;
          if (this.isTabu(a, b)) continue;
          if (!budget.spend()) return kept;
          const ia = state.items[a]!;
          for (let d = 0; d < DIMS; d++) l[DIMS + d] = l[d]! + ia.demand[d]!;
          if (!state.fits(b, l, DIMS, count + 1)) continue;
          consider(b, out, [a], ia.weight - outWeight, base + ia.weight);
          if (MAX_IN < 2) continue;
          for (let t = s + 1; t < p; t++) {
            const c = pool[t]!;
            if (this.isTabu(c, b)) continue;
            budget.spend();
            const ic = state.items[c]!;
            for (let d = 0; d < DIMS; d++) l[2 * DIMS + d] = l[DIMS + d]! + ic.demand[d]!;
            if (!state.fits(b, l, 2 * DIMS, count + 2)) continue;
            consider(b, out, [a, c], ia.weight + ic.weight - outWeight, base + ia.weight + ic.weight);
          }
        }
      }
    }
    return kept;
  }

  /** Makes the exchange when the filters admit the host's new workloads; false, and nothing changed, otherwise. */
  private carryOut(move: Move): boolean {
    const b = move.host;
    if (!this.state.accepts(b, this.members[b]!.filter((i) => !move.out.includes(i)).concat(move.in))) return false;
    for (const i of move.out) {
      this.toPool(i);
      this.setTabu(i, b);
    }
    for (const i of move.in) {
      this.pool = this.pool.filter((x) => x !== i);
      this.place(i, b);
      this.setTabu(i, b);
    }
    return true;
  }

  /** No exchange can be made: a random workload of a random host goes to the pool. */
  private kick(open: readonly number[]): boolean {
    const hosts = open.filter((b) => this.members[b]!.some((i) => !this.isTabu(i, b)));
    if (hosts.length === 0) return false;
    const b = hosts[this.random.below(hosts.length)]!;
    const free = this.members[b]!.filter((i) => !this.isTabu(i, b));
    const i = free[this.random.below(free.length)]!;
    this.toPool(i);
    this.setTabu(i, b);
    return true;
  }

  private toPool(i: number): void {
    const h = this.binOf[i]!;
    const item = this.state.items[i]!;
    this.members[h] = this.members[h]!.filter((x) => x !== i);
    for (let d = 0; d < DIMS; d++) this.load[h * DIMS + d] = this.load[h * DIMS + d]! - item.demand[d]!;
    this.weightOn[h] = this.weightOn[h]! - item.weight;
    this.binOf[i] = -1;
    this.pool.push(i);
  }

  private place(i: number, h: number): void {
    const item = this.state.items[i]!;
    this.members[h]!.push(i);
    for (let d = 0; d < DIMS; d++) this.load[h * DIMS + d] = this.load[h * DIMS + d]! + item.demand[d]!;
    this.weightOn[h] = this.weightOn[h]! + item.weight;
    this.binOf[i] = h;
  }

  private key(i: number, h: number): number {
    return i * this.state.hosts.length + h;
  }

  private isTabu(i: number, h: number): boolean {
    return (this.tabu.get(this.key(i, h)) ?? 0) >= this.iteration;
  }

  private setTabu(i: number, h: number): void {
    this.tabu.set(this.key(i, h), this.iteration + 3 + this.random.below(8));
  }
}
