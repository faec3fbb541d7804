import { EVENT_TYPES, WORKLOAD_KINDS, WORKLOAD_STATES, measureGauge, newMetricsRegistry, type CloudEvent } from '@virtfleet/shared';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Host, HostStatus } from '../hosts/host.js';
import type { HostSnapshot, PlacementRecord, PlacementRequest, Scheduler } from '../scheduler/scheduler.js';
import type { Workload } from '../workloads/workload.js';

/** What the collect-time gauges read, at scrape time only. */
export interface CoordinatorState {
  /** Every workload this coordinator holds (a follower's mirror included). */
  workloads(): Iterable<Pick<Workload, 'state' | 'spec'>>;
  /** The admission queue: the leader's holds the pending workloads, a follower's is empty. */
  queue(): { readonly size: number; readonly policy: string };
  isLeader(): boolean;
  /** The current lease term, when one is known. */
  term(): number | undefined;
  hosts(): readonly Pick<Host, 'id' | 'status' | 'cordoned' | 'telemetry'>[];
  /** Every host as the scheduler sees it: allocatable and booked. */
  snapshots(): readonly Pick<HostSnapshot, 'id' | 'capacity' | 'allocatable' | 'allocated'>[];
}

const HOST_STATUSES: readonly HostStatus[] = ['up', 'down', 'recovering'];
const MIB = 2 ** 20;
const GIB = 2 ** 30;

/** A scheduler decision takes microseconds to tens of milliseconds (thousands of hosts). */
const PLACEMENT_SECONDS_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
/** Queue waits run from a pass (milliseconds) to hours for a workload nothing fits. */
const WAIT_SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
/** Telemetry is applied within milliseconds unless the coordinator falls behind its fleet. */
const LAG_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * The filter that rejected the most hosts of an unplaceable decision, by
 * name (`resources`, `driver`, ...): a label of few values, unlike the
 * summary's reasons, which carry numbers. `no-hosts` when none are known.
 */
export function unplaceableReason(record: Pick<PlacementRecord, 'hostsTotal' | 'rejections' | 'candidates'>): string {
  if (record.hostsTotal === 0) return 'no-hosts';
  let top: string | undefined;
  let most = 0;
  for (const [reason, n] of Object.entries(record.rejections)) {
    if (n > most) {
      most = n;
      top = reason;
    }
  }
  // The rejections count reasons; the listed rejected hosts say which filter gave each.
  for (const c of record.candidates) {
    if (c.feasible) continue;
    const verdict = c.filters.find((f) => f.status !== 'ok');
    if (verdict && (verdict.reason ?? verdict.plugin) === top) return verdict.plugin;
  }
  return 'unknown';
}

/**
 * The coordinator's metrics, in a registry of its own. State (workloads,
 * queue, hosts, capacity, leadership) is read when Prometheus scrapes;
 * what happens (decisions, reschedules, migrations, backups, renewals) is
 * counted where it happens, each in O(1).
 */
export class CoordinatorMetrics {
  readonly registry: Registry;
  private readonly placementSeconds: Histogram;
  private readonly queueWaitSeconds: Histogram;
  private readonly decisions: Counter<'outcome' | 'reason'>;
  private readonly placed: { inc(): void };
  private readonly telemetryLag: Histogram;
  private readonly leadershipChanges: Counter<'to'>;
  private readonly renewals: Counter<'outcome'>;
  private readonly reschedules: Counter<'failover'>;
  private readonly migrations: Counter<'outcome'>;
  private readonly backups: Counter<'operation' | 'outcome'>;
  private readonly events: Counter<'type'>;
  /** The events counter's child per type, made once: a stored event costs a map lookup and an increment. */
  private readonly eventCounters = new Map<string, { inc(): void }>();

  constructor(state: CoordinatorState, registry: Registry = newMetricsRegistry()) {
    this.registry = registry;
    const registers = [registry];
    new Gauge({
      name: 'virtfleet_workloads',
      help: 'Workloads by state and kind, as this coordinator holds them (followers mirror the leader: aggregate with max, not sum, over coordinators).',
      labelNames: ['state', 'kind'],
      registers,
      collect() {
        const counts = new Map<string, number>();
        for (const w of state.workloads()) counts.set(`${w.state}/${w.spec.kind}`, (counts.get(`${w.state}/${w.spec.kind}`) ?? 0) + 1);
        for (const s of WORKLOAD_STATES) for (const kind of WORKLOAD_KINDS) this.set({ state: s, kind }, counts.get(`${s}/${kind}`) ?? 0);
      },
    });
    new Gauge({
      name: 'virtfleet_queue_depth',
      help: 'Workloads waiting in the admission queue, by the queue’s policy (the leader’s queue; a follower counts the pending workloads it mirrors).',
      labelNames: ['policy'],
      registers,
      collect() {
        this.reset();
        const queue = state.queue();
        let depth = queue.size;
        if (!state.isLeader()) {
          depth = 0;
          for (const w of state.workloads()) if (w.state === 'pending') depth++;
        }
        this.set({ policy: queue.policy }, depth);
      },
    });
    new Gauge({
      name: 'virtfleet_hosts',
      help: 'Hosts by status.',
      labelNames: ['status'],
      registers,
      collect() {
        const hosts = state.hosts();
        for (const s of HOST_STATUSES) this.set({ status: s }, hosts.filter((h) => h.status === s).length);
      },
    });
    new Gauge({
      name: 'virtfleet_hosts_cordoned',
      help: 'Hosts cordoned: no new placements.',
      registers,
      collect() {
        this.set(state.hosts().filter((h) => h.cordoned).length);
      },
    });
    // Capacity over the hosts that are up: what they have, what placement may book ((capacity - reserved) * overcommit), what is booked, what is used.
    const capacityHelp = (what: string) => `${what} of the hosts that are up: capacity, allocatable ((capacity - reserved) * overcommit), allocated (booked by workloads) and used (measured).`;
    const totals = () => {
      const up = new Map(state.hosts().filter((h) => h.status === 'up').map((h) => [h.id, h]));
      const sum = { vcpus: { capacity: 0, allocatable: 0, allocated: 0, used: 0 }, memory: { capacity: 0, allocatable: 0, allocated: 0, used: 0 }, disk: { capacity: 0, allocatable: 0, allocated: 0 } };
      for (const s of state.snapshots()) {
        const host = up.get(s.id);
        if (!host) continue;
        sum.vcpus.capacity += s.capacity.vcpus;
        sum.vcpus.allocatable += s.allocatable.vcpus;
        sum.vcpus.allocated += s.allocated.vcpus;
        sum.vcpus.used += host.telemetry.host.cpu_utilisation * host.telemetry.host.cpu_count;
        sum.memory.capacity += s.capacity.memoryMiB * MIB;
        sum.memory.allocatable += s.allocatable.memoryMiB * MIB;
        sum.memory.allocated += s.allocated.memoryMiB * MIB;
        sum.memory.used += host.telemetry.host.memory_used_mib * MIB;
        sum.disk.capacity += s.capacity.diskGiB * GIB;
        sum.disk.allocatable += s.allocatable.diskGiB * GIB;
        sum.disk.allocated += s.allocated.diskGiB * GIB;
      }
      return sum;
    };
    const capacityGauge = (name: string, help: string, pick: (t: ReturnType<typeof totals>) => Record<string, number>) => measureGauge(registry, name, help, () => pick(totals()));
    capacityGauge('virtfleet_cluster_vcpus', capacityHelp('vCPUs (used: CPUs busy)'), (t) => t.vcpus);
    capacityGauge('virtfleet_cluster_memory_bytes', capacityHelp('Memory'), (t) => t.memory);
    capacityGauge('virtfleet_cluster_disk_bytes', capacityHelp('Disk (never overcommitted; no measured use)'), (t) => t.disk);
    new Gauge({
      name: 'virtfleet_leader',
      help: '1 while this coordinator leads (places, dispatches and writes), else 0.',
      registers,
      collect() {
        this.set(state.isLeader() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'virtfleet_leader_term',
      help: 'The leader lease’s term as this coordinator last saw it (0 before it saw one); it grows by one with every change of leader.',
      registers,
      collect() {
        this.set(state.term() ?? 0);
      },
    });

    this.placementSeconds = new Histogram({ name: 'virtfleet_placement_duration_seconds', help: 'Time the scheduler took to decide one placement (filters and scores), placed or not.', buckets: PLACEMENT_SECONDS_BUCKETS, registers });
    this.queueWaitSeconds = new Histogram({
      name: 'virtfleet_queue_wait_seconds',
      help: 'Time a workload waited in the admission queue until it was placed, from its submission (a rescheduled workload keeps its place, and counts from its submission).',
      buckets: WAIT_SECONDS_BUCKETS,
      registers,
    });
    this.decisions = new Counter({
      name: 'virtfleet_placement_decisions_total',
      help: 'Placement decisions, by outcome: placed, or unplaceable with the filter that rejected the most hosts as reason. A waiting workload is decided again every pass.',
      labelNames: ['outcome', 'reason'],
      registers,
    });
    this.placed = this.decisions.labels({ outcome: 'placed', reason: '' });
    this.telemetryLag = new Histogram({
      name: 'virtfleet_telemetry_lag_seconds',
      help: 'From a telemetry message’s published_at (the agent’s clock) to this coordinator applying it; clocks are assumed in step (NTP).',
      buckets: LAG_SECONDS_BUCKETS,
      registers,
    });
    this.leadershipChanges = new Counter({ name: 'virtfleet_leadership_changes_total', help: 'Times this coordinator became leader (to="leader") or stopped leading (to="follower").', labelNames: ['to'], registers });
    this.renewals = new Counter({
      name: 'virtfleet_leader_lease_renewals_total',
      help: 'Leader lease renewals by outcome: ok, failed (the store did not answer) or lost (another coordinator had taken the lease).',
      labelNames: ['outcome'],
      registers,
    });
    this.reschedules = new Counter({ name: 'virtfleet_reschedules_total', help: 'Workloads sent back to the queue because their host was lost or had no room, by failover mode.', labelNames: ['failover'], registers });
    this.migrations = new Counter({ name: 'virtfleet_migrations_total', help: 'Migrations ended, by outcome: completed, failed or cancelled.', labelNames: ['outcome'], registers });
    this.backups = new Counter({
      name: 'virtfleet_backups_total',
      help: 'Backups taken (operation="create", scheduled ones included) and restored (operation="restore"), by outcome: succeeded or failed.',
      labelNames: ['operation', 'outcome'],
      registers,
    });
    this.events = new Counter({ name: 'virtfleet_events_total', help: 'Events this coordinator stored in the event log, by type (a repeat the log dropped is not counted).', labelNames: ['type'], registers });
  }

  /** The scheduler with each decision timed (`virtfleet_placement_duration_seconds`). */
  timed(scheduler: Scheduler): Scheduler {
    const seconds = this.placementSeconds;
    return {
      place(request: PlacementRequest, hosts: readonly HostSnapshot[]): PlacementRecord {
        const startedAt = performance.now();
        const record = scheduler.place(request, hosts);
        seconds.observe((performance.now() - startedAt) / 1000);
        return record;
      },
    };
  }

  /** A placement decision kept for `explain`; `waitedMs` counts toward the queue wait when it came from the queue and placed the workload. */
  decided(record: Pick<PlacementRecord, 'hostId' | 'hostsTotal' | 'rejections' | 'candidates'> & { waitedMs: number }, fromQueue: boolean): void {
    if (record.hostId === undefined) {
      this.decisions.inc({ outcome: 'unplaceable', reason: unplaceableReason(record) });
      return;
    }
    this.placed.inc();
    if (fromQueue) this.queueWaitSeconds.observe(Math.max(0, record.waitedMs) / 1000);
  }

  telemetryApplied(lagMs: number): void {
    if (Number.isFinite(lagMs)) this.telemetryLag.observe(Math.max(0, lagMs) / 1000);
  }

  leadershipChanged(leading: boolean): void {
    this.leadershipChanges.inc({ to: leading ? 'leader' : 'follower' });
  }

  leaseRenewed(outcome: 'ok' | 'failed' | 'lost'): void {
    this.renewals.inc({ outcome });
  }

  backupEnded(operation: 'create' | 'restore', outcome: 'succeeded' | 'failed'): void {
    this.backups.inc({ operation, outcome });
  }

  /** An event the log stored: counted by type, and as a reschedule or a migration's end. */
  eventStored(event: Pick<CloudEvent, 'type' | 'data'>): void {
    let counter = this.eventCounters.get(event.type);
    if (!counter) {
      counter = this.events.labels({ type: event.type });
      this.eventCounters.set(event.type, counter);
    }
    counter.inc();
    const data = event.data as Record<string, unknown> | undefined;
    if (event.type === EVENT_TYPES.workloadRescheduled) this.reschedules.inc({ failover: typeof data?.failover === 'string' ? data.failover : 'unknown' });
    else if (event.type === EVENT_TYPES.workloadMigrationCompleted) this.migrations.inc({ outcome: 'completed' });
    else if (event.type === EVENT_TYPES.workloadMigrationFailed) this.migrations.inc({ outcome: data?.cancelled === true ? 'cancelled' : 'failed' });
  }
}
