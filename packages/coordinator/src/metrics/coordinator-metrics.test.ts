import { EVENT_TYPES, type WorkloadKind, type WorkloadState } from '@virtfleet/shared';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { CandidateRecord, PlacementRecord, Scheduler } from '../scheduler/scheduler.js';
import { CoordinatorMetrics, unplaceableReason, type CoordinatorState } from './coordinator-metrics.js';

const workload = (state: WorkloadState, kind: WorkloadKind = 'container') => ({ state, spec: { kind } }) as never;
const telemetry = (cpuUtilisation: number, cpuCount: number, memoryUsedMiB: number) => ({ host: { cpu_utilisation: cpuUtilisation, cpu_count: cpuCount, memory_used_mib: memoryUsedMiB } }) as never;
const vector = (vcpus: number, memoryMiB: number, diskGiB: number) => ({ vcpus, memoryMiB, diskGiB });

/** Two hosts up and one down: only the up ones count toward capacity. */
function state(overrides: Partial<CoordinatorState> = {}): CoordinatorState {
  return {
    workloads: () => [workload('running'), workload('running'), workload('running', 'vm'), workload('pending'), workload('deleted')],
    queue: () => ({ size: 1, policy: 'fcfs' }),
    isLeader: () => true,
    term: () => 7,
    hosts: () => [
      { id: 'h1', status: 'up', cordoned: false, telemetry: telemetry(0.5, 8, 1024) },
      { id: 'h2', status: 'up', cordoned: true, telemetry: telemetry(0.25, 4, 512) },
      { id: 'h3', status: 'down', cordoned: false, telemetry: telemetry(1, 64, 99_999) },
    ],
    snapshots: () => [
      { id: 'h1', capacity: vector(8, 16_384, 100), allocatable: vector(32, 15_872, 100), allocated: vector(2, 1024, 10) },
      { id: 'h2', capacity: vector(4, 8192, 50), allocatable: vector(16, 7680, 50), allocated: vector(1, 512, 0) },
      { id: 'h3', capacity: vector(64, 1_000_000, 1000), allocatable: vector(256, 1_000_000, 1000), allocated: vector(64, 1_000_000, 1000) },
    ],
    ...overrides,
  };
}

/** The value of one series in the text format, or undefined when absent. */
async function value(metrics: CoordinatorMetrics, series: string): Promise<number | undefined> {
  const line = (await metrics.registry.metrics()).split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const rejected = (plugin: string, reason?: string): CandidateRecord => ({ hostId: 'h', feasible: false, filters: [{ plugin: 'schedulable', status: 'ok' }, { plugin, status: 'unschedulable', ...(reason ? { reason } : {}) }], scores: [], total: 0 });

describe('CoordinatorMetrics: state read at scrape time', () => {
  it.each([
    { series: 'virtfleet_workloads{state="running",kind="container"}', want: 2 },
    { series: 'virtfleet_workloads{state="running",kind="vm"}', want: 1 },
    { series: 'virtfleet_workloads{state="deleted",kind="container"}', want: 1 },
    { series: 'virtfleet_workloads{state="failed",kind="vm"}', want: 0 },
    { series: 'virtfleet_queue_depth{policy="fcfs"}', want: 1 },
    { series: 'virtfleet_hosts{status="up"}', want: 2 },
    { series: 'virtfleet_hosts{status="down"}', want: 1 },
    { series: 'virtfleet_hosts{status="recovering"}', want: 0 },
    { series: 'virtfleet_hosts_cordoned', want: 1 },
    { series: 'virtfleet_cluster_vcpus{measure="capacity"}', want: 12 },
    { series: 'virtfleet_cluster_vcpus{measure="allocatable"}', want: 48 },
    { series: 'virtfleet_cluster_vcpus{measure="allocated"}', want: 3 },
    { series: 'virtfleet_cluster_vcpus{measure="used"}', want: 5 },
    { series: 'virtfleet_cluster_memory_bytes{measure="allocated"}', want: 1536 * 2 ** 20 },
    { series: 'virtfleet_cluster_memory_bytes{measure="used"}', want: 1536 * 2 ** 20 },
    { series: 'virtfleet_cluster_disk_bytes{measure="capacity"}', want: 150 * 2 ** 30 },
    { series: 'virtfleet_leader', want: 1 },
    { series: 'virtfleet_leader_term', want: 7 },
  ])('$series = $want', async ({ series, want }) => {
    expect(await value(new CoordinatorMetrics(state(), new Registry()), series)).toBe(want);
  });

  it('a follower counts the pending workloads it mirrors as the queue', async () => {
    const metrics = new CoordinatorMetrics(state({ isLeader: () => false, queue: () => ({ size: 0, policy: 'priority' }) }), new Registry());
    expect(await value(metrics, 'virtfleet_queue_depth{policy="priority"}')).toBe(1);
    expect(await value(metrics, 'virtfleet_leader')).toBe(0);
  });
});

describe('unplaceableReason', () => {
  it.each<{ name: string; record: Pick<PlacementRecord, 'hostsTotal' | 'rejections' | 'candidates'>; want: string }>([
    { name: 'no hosts known', record: { hostsTotal: 0, rejections: {}, candidates: [] }, want: 'no-hosts' },
    { name: 'the filter that rejected the most hosts, not its reason text', record: { hostsTotal: 5, rejections: { 'insufficient memory': 3, 'trust level below 2': 2 }, candidates: [rejected('trust-level', 'trust level below 2'), rejected('resources', 'insufficient memory')] }, want: 'resources' },
    { name: 'a filter that gave no reason counts under its name', record: { hostsTotal: 1, rejections: { driver: 1 }, candidates: [rejected('driver')] }, want: 'driver' },
    { name: 'a reason no listed host shows', record: { hostsTotal: 40, rejections: { 'insufficient cpu': 40 }, candidates: [] }, want: 'unknown' },
  ])('$name: $want', ({ record, want }) => {
    expect(unplaceableReason(record)).toBe(want);
  });
});

describe('CoordinatorMetrics: what happens, counted', () => {
  const placed = { hostId: 'h1', hostsTotal: 2, rejections: {}, candidates: [], waitedMs: 1500 };
  const unplaceable = { hostsTotal: 2, rejections: { 'insufficient memory': 2 }, candidates: [rejected('resources', 'insufficient memory')], waitedMs: 0 };

  it('counts decisions by outcome and times the queue wait of queued placements only', async () => {
    const metrics = new CoordinatorMetrics(state(), new Registry());
    metrics.decided(placed, true);
    metrics.decided(placed, false);
    metrics.decided(unplaceable, true);
    expect(await value(metrics, 'virtfleet_placement_decisions_total{outcome="placed",reason=""}')).toBe(2);
    expect(await value(metrics, 'virtfleet_placement_decisions_total{outcome="unplaceable",reason="resources"}')).toBe(1);
    expect(await value(metrics, 'virtfleet_queue_wait_seconds_count')).toBe(1);
    expect(await value(metrics, 'virtfleet_queue_wait_seconds_sum')).toBe(1.5);
  });

  it('times every decision of the scheduler it wraps, and passes the record on', async () => {
    const metrics = new CoordinatorMetrics(state(), new Registry());
    const record = { workloadId: 'w' } as PlacementRecord;
    const scheduler: Scheduler = { place: () => record };
    const timed = metrics.timed(scheduler);
    expect(timed.place({ workloadId: 'w', spec: {} as never }, [])).toBe(record);
    timed.place({ workloadId: 'w', spec: {} as never }, []);
    expect(await value(metrics, 'virtfleet_placement_duration_seconds_count')).toBe(2);
  });

  it('counts stored events by type, reschedules by failover mode and migrations by outcome', async () => {
    const metrics = new CoordinatorMetrics(state(), new Registry());
    metrics.eventStored({ type: EVENT_TYPES.workloadRescheduled, data: { failover: 'reschedule' } });
    metrics.eventStored({ type: EVENT_TYPES.workloadMigrationCompleted, data: {} });
    metrics.eventStored({ type: EVENT_TYPES.workloadMigrationFailed, data: { cancelled: true } });
    metrics.eventStored({ type: EVENT_TYPES.workloadMigrationFailed, data: { cancelled: false } });
    expect(await value(metrics, 'virtfleet_reschedules_total{failover="reschedule"}')).toBe(1);
    expect(await value(metrics, 'virtfleet_migrations_total{outcome="completed"}')).toBe(1);
    expect(await value(metrics, 'virtfleet_migrations_total{outcome="cancelled"}')).toBe(1);
    expect(await value(metrics, 'virtfleet_migrations_total{outcome="failed"}')).toBe(1);
    expect(await value(metrics, `virtfleet_events_total{type="${EVENT_TYPES.workloadMigrationFailed}"}`)).toBe(2);
  });

  it('counts backups, leadership changes, lease renewals and telemetry lag', async () => {
    const metrics = new CoordinatorMetrics(state(), new Registry());
    metrics.backupEnded('create', 'succeeded');
    metrics.backupEnded('restore', 'failed');
    metrics.leadershipChanged(true);
    metrics.leaseRenewed('ok');
    metrics.leaseRenewed('ok');
    metrics.leaseRenewed('lost');
    metrics.telemetryApplied(20);
    metrics.telemetryApplied(-5); // clocks a little apart: counted as no lag
    metrics.telemetryApplied(Number.NaN); // an unparsable published_at: not counted
    expect(await value(metrics, 'virtfleet_backups_total{operation="create",outcome="succeeded"}')).toBe(1);
    expect(await value(metrics, 'virtfleet_backups_total{operation="restore",outcome="failed"}')).toBe(1);
    expect(await value(metrics, 'virtfleet_leadership_changes_total{to="leader"}')).toBe(1);
    expect(await value(metrics, 'virtfleet_leader_lease_renewals_total{outcome="ok"}')).toBe(2);
    expect(await value(metrics, 'virtfleet_leader_lease_renewals_total{outcome="lost"}')).toBe(1);
    expect(await value(metrics, 'virtfleet_telemetry_lag_seconds_count')).toBe(2);
    expect(await value(metrics, 'virtfleet_telemetry_lag_seconds_sum')).toBe(0.02);
  });
});
