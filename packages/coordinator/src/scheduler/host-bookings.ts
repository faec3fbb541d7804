import { diskDemandGiB, hostPortKey, type IsolationLevel, type StoppedReservation, type WorkloadSpec } from '@virtfleet/shared';
import { holdsResources, type Workload } from '../workloads/workload.js';
import { fromMilliCpus, toMilliCpus } from './milli-cpus.js';
import type { HostSnapshot, ResourceVector } from './scheduler.js';

/** A running sum of demands in whole units (milli-CPUs, MiB, GiB), so that it never drifts. */
interface Totals {
  milliCpus: number;
  memoryMiB: number;
  diskGiB: number;
}

interface Booking {
  allocated: Totals;
  heldByStopped: Totals;
  count: number;
  stopped: number;
  tenants: Map<string, number>;
  antiAffinityGroups: Map<string, number>;
  /** Published host ports, as `tcp/8080`. */
  ports: Map<string, number>;
  /** Workloads that asked for isolation, in the order they were booked. */
  isolated: Map<string, { level: IsolationLevel; tenant: string }>;
}

/**
 * What the store's workloads book on each host, kept up to date one change
 * at a time (`change(before, after)` for every record written, read or
 * removed), so that a placement pass costs as many steps as there are hosts,
 * not as there are workloads.
 */
export class HostBookings {
  private readonly hosts = new Map<string, Booking>();

  constructor(private readonly stoppedReservation: StoppedReservation = 'keep') {}

  static of(workloads: Iterable<Readonly<Workload>>, stoppedReservation: StoppedReservation = 'keep'): HostBookings {
    const bookings = new HostBookings(stoppedReservation);
    for (const w of workloads) bookings.change(undefined, w);
    return bookings;
  }

  /** Moves one workload's booking from what `before` held to what `after` holds; undefined: no record. */
  change(before: Readonly<Workload> | undefined, after: Readonly<Workload> | undefined): void {
    if (before && holdsResources(before, this.stoppedReservation)) this.bookWithMigration(before, -1);
    if (after && holdsResources(after, this.stoppedReservation)) this.bookWithMigration(after, 1);
  }

  clear(): void {
    this.hosts.clear();
  }

  /** Adds the host's bookings to a snapshot built from its telemetry (which has none). */
  applyTo(s: HostSnapshot): void {
    const b = this.hosts.get(s.id);
    if (!b) return;
    s.allocated = vectorOf(b.allocated);
    if (b.stopped > 0) s.heldByStopped = vectorOf(b.heldByStopped);
    s.workloadCount = b.count;
    s.tenants = new Map(b.tenants);
    s.antiAffinityGroups = new Set(b.antiAffinityGroups.keys());
    s.ports = new Set(b.ports.keys());
    // A dedicated workload, the first booked, rules the host; else the last tenant-isolated one.
    let isolation: HostSnapshot['isolation'];
    for (const i of b.isolated.values()) if (isolation === undefined || isolation.level === 'tenant') isolation = i;
    s.isolation = isolation;
  }

  /** A migrating workload holds its place on the target as well as on its host until the move ends. */
  private bookWithMigration(w: Readonly<Workload>, sign: 1 | -1): void {
    this.book(w, sign);
    if (w.migration && w.migration.targetHostId !== w.hostId) this.book({ ...w, hostId: w.migration.targetHostId }, sign);
  }

  private book(w: Readonly<Workload>, sign: 1 | -1): void {
    let b = this.hosts.get(w.hostId);
    if (!b) {
      b = { allocated: zero(), heldByStopped: zero(), count: 0, stopped: 0, tenants: new Map(), antiAffinityGroups: new Map(), ports: new Map(), isolated: new Map() };
      this.hosts.set(w.hostId, b);
    }
    const d = totalsOf(w.spec);
    add(b.allocated, d, sign);
    b.count += sign;
    if (w.state === 'stopped') {
      add(b.heldByStopped, d, sign);
      b.stopped += sign;
    }
    count(b.tenants, w.spec.tenant, sign);
    const group = w.spec.security.anti_affinity_group;
    if (group) count(b.antiAffinityGroups, group, sign);
    for (const p of w.spec.ports ?? []) count(b.ports, hostPortKey(p), sign);
    if (w.spec.security.isolation !== 'shared') {
      if (sign > 0) b.isolated.set(w.id, { level: w.spec.security.isolation, tenant: w.spec.tenant });
      else b.isolated.delete(w.id);
    }
    if (b.count === 0) this.hosts.delete(w.hostId);
  }
}

const zero = (): Totals => ({ milliCpus: 0, memoryMiB: 0, diskGiB: 0 });

// Memory and disk are whole numbers in a valid spec; CPU is counted in milli-CPUs.
const totalsOf = (spec: WorkloadSpec): Totals => ({ milliCpus: toMilliCpus(spec.vcpus), memoryMiB: spec.memory_mib, diskGiB: diskDemandGiB(spec) });

const vectorOf = (t: Totals): ResourceVector => ({ vcpus: fromMilliCpus(t.milliCpus), memoryMiB: t.memoryMiB, diskGiB: t.diskGiB });

function add(to: Totals, d: Totals, sign: number): void {
  to.milliCpus += sign * d.milliCpus;
  to.memoryMiB += sign * d.memoryMiB;
  to.diskGiB += sign * d.diskGiB;
}

function count(map: Map<string, number>, key: string, sign: number): void {
  const n = (map.get(key) ?? 0) + sign;
  if (n > 0) map.set(key, n);
  else map.delete(key);
}
