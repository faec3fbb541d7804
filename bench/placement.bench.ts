import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { assume, coordinatorConfigSchema, createScheduler, seededRandom, snapshotOf, type HostSnapshot, type PlacementRecord } from '@virtfleet/coordinator';
import { parseWorkloadSpec, WorkloadView, type DriverInfo, type Telemetry, type WorkloadSpec } from '@virtfleet/shared';
import { DEFAULTS_ONLY, formatTarget, type Target } from './targets.js';

type Host = Parameters<typeof snapshotOf>[0];

/** The scheduler settings a coordinator runs with when its config sets none: its config schema's defaults. */
const COORDINATOR_DEFAULT = coordinatorConfigSchema.parse(DEFAULTS_ONLY).scheduler;
/** Placements per host count through the pipeline and the baseline (BENCH_PLACEMENTS overrides). */
const PLACEMENTS = Number(process.env.BENCH_PLACEMENTS ?? 20_000);
const ROUNDS = 5;
/** How long the candidateLimit 0 run places for at each host count. */
const EXHAUSTIVE_MS = 1000;
const RECORDS_KEPT = 10_000;
/** The performance limit: the default pipeline places at least `rate` requests per second on one core at `hosts` hosts. */
const TARGET = { hosts: 5000, rate: 10_000 };

export interface PlacementRow {
  hosts: number;
  placements: number;
  /** Coordinator default pipeline, records on, assume() after each placement. */
  pipeline: Rate;
  /** First-fit over the same hosts: up + kind + free cpu/memory/disk, no records. */
  naive: Rate;
  /** candidateLimit 0: every host evaluated for every placement. */
  exhaustive: Rate;
}

export interface Rate {
  placements: number;
  seconds: number;
  unplaced: number;
  /** Mean hosts looked at per placement: the pipeline's hostsEvaluated, the hosts first-fit scanned. */
  evaluated: number;
}

export interface PlacementMemory {
  hosts: number;
  gc: 'forced' | 'unavailable';
  snapshotsBytes: number;
  records: { kept: number; bytes: number };
  /** One candidateLimit 0 record at this host count. */
  exhaustiveRecordBytes: number;
}

export interface PlacementResult {
  rows: PlacementRow[];
  memory: PlacementMemory;
}

/** Deterministic: every run draws the same numbers. */
const random = (seed: number): (() => number) => seededRandom(seed).next;

const pick = <T>(rand: () => number, items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
const between = (rand: () => number, min: number, max: number) => min + Math.floor(rand() * (max - min + 1));

const SIZES = [
  { vcpus: 16, memory_mib: 64 * 1024, disk_gib: 500 },
  { vcpus: 32, memory_mib: 128 * 1024, disk_gib: 1000 },
  { vcpus: 64, memory_mib: 256 * 1024, disk_gib: 2000 },
  { vcpus: 128, memory_mib: 512 * 1024, disk_gib: 4000 },
] as const;

const driver = (name: string, kind: 'vm' | 'container'): DriverInfo => ({ name, version: '1', kinds: [kind], domain_types: [], healthy: true, detail: '' });

/** Hosts as the registry holds them, with synthesized telemetry; snapshotOf turns them into what the scheduler reads. */
export function simulatedHosts(count: number, seed = 1): Host[] {
  const rand = random(seed);
  const hosts: Host[] = [];
  for (let i = 0; i < count; i++) {
    const id = `host-${String(i).padStart(5, '0')}`;
    const size = pick(rand, SIZES);
    const kinds = rand();
    const drivers = kinds < 0.7 ? [driver('libvirt', 'vm'), driver('docker', 'container')] : kinds < 0.85 ? [driver('libvirt', 'vm')] : [driver('docker', 'container')];
    const features = [...(rand() < 0.3 ? ['encrypted-storage'] : []), ...(rand() < 0.2 ? ['secure-boot'] : [])];
    const utilisation = rand() * 0.8;
    const memoryAvailable = Math.round(size.memory_mib * (0.3 + rand() * 0.6));
    const telemetry: Telemetry = {
      version: 1,
      host_id: id,
      hostname: id,
      address: '127.0.0.1:7070',
      agent_version: 'bench',
      boot_id: 'bench',
      seq: 1,
      time: new Date(0).toISOString(),
      labels: { zone: pick(rand, ['a', 'b', 'c']), rack: `r${i % 40}` },
      drivers,
      capacity: size,
      reserved: { vcpus: 2, memory_mib: 4096, disk_gib: 50 },
      overcommit: { cpu: pick(rand, [1, 2, 4]), memory: pick(rand, [1, 1.25, 1.5]) },
      trust_level: between(rand, 0, 3),
      features,
      host: {
        cpu_count: size.vcpus,
        cpu_utilisation: utilisation,
        load1: 0,
        load5: 0,
        load15: 0,
        memory_total_mib: size.memory_mib,
        memory_used_mib: size.memory_mib - memoryAvailable,
        memory_available_mib: memoryAvailable,
        storage: [],
      },
      workloads: [],
    };
    hosts.push({ id, status: rand() < 0.01 ? 'down' : 'up', lastSeenMs: 0, telemetry, workloads: new WorkloadView(), cpuUtilisationSmoothed: utilisation, cordoned: false });
  }
  return hosts;
}

/** Varied requests: containers and VMs, some with security or performance demands or a zone. */
export function requestStream(count: number, seed = 2): WorkloadSpec[] {
  const rand = random(seed);
  const specs: WorkloadSpec[] = [];
  for (let i = 0; i < count; i++) {
    const container = rand() < 0.6;
    const security: Record<string, unknown> = {};
    if (rand() < 0.15) security.min_trust_level = between(rand, 1, 3);
    if (rand() < 0.08) security.required_features = rand() < 0.6 ? ['encrypted-storage'] : ['secure-boot'];
    if (rand() < 0.1) security.anti_affinity_group = `g${between(rand, 0, 499)}`;
    const isolation = rand();
    if (isolation < 0.002) security.isolation = 'dedicated';
    else if (isolation < 0.012) security.isolation = 'tenant';
    const performance: Record<string, unknown> = {};
    const perf = rand();
    if (perf < 0.05) performance.latency_class = 'low';
    else if (perf < 0.08) performance.max_host_cpu_utilisation = 0.5;
    else if (perf < 0.1) performance.memory_headroom_mib = 2048;
    specs.push(
      parseWorkloadSpec({
        name: `bench-${i}`,
        kind: container ? 'container' : 'vm',
        ...(container ? { image: 'busybox:latest' } : {}),
        vcpus: container ? pick(rand, [0.25, 0.5, 1, 2, 4]) : pick(rand, [1, 2, 4, 8, 16]),
        memory_mib: container ? pick(rand, [256, 512, 1024, 2048, 4096]) : pick(rand, [1024, 2048, 4096, 8192, 16384, 32768]),
        disk_gib: container ? 0 : between(rand, 10, 200),
        tenant: `t${between(rand, 0, 49)}`,
        priority: between(rand, 0, 100),
        security,
        performance,
        host_selector: rand() < 0.2 ? { zone: pick(rand, ['a', 'b', 'c']) } : {},
      }),
    );
  }
  return specs;
}

/** The simplest scheduler that works: the index of the first host that is up, runs the kind and has the room; -1 if none. */
function firstFit(hosts: readonly HostSnapshot[], spec: WorkloadSpec): number {
  for (let i = 0; i < hosts.length; i++) {
    const h = hosts[i]!;
    if (!h.schedulable || !h.kinds.has(spec.kind)) continue;
    const a = h.allocatable;
    const u = h.allocated;
    if (u.vcpus + spec.vcpus <= a.vcpus && u.memoryMiB + spec.memory_mib <= a.memoryMiB && u.diskGiB + spec.disk_gib <= a.diskGiB) return i;
  }
  return -1;
}

interface Placer {
  /** Places `specs[from, to)` one by one, booking each; stops early past `deadlineNs`. Returns how many it tried. */
  run(specs: readonly WorkloadSpec[], ids: readonly string[], from: number, to: number, deadlineNs?: bigint): number;
  rate: Rate;
}

function pipelinePlacer(hosts: readonly Host[], candidateLimit: number, keep?: (id: string, record: PlacementRecord) => void): Placer {
  const scheduler = createScheduler({ ...COORDINATOR_DEFAULT, candidateLimit });
  const snapshots = hosts.map(snapshotOf);
  const byId = new Map(snapshots.map((s) => [s.id, s]));
  const rate: Rate = { placements: 0, seconds: 0, unplaced: 0, evaluated: 0 };
  return {
    rate,
    run(specs, ids, from, to, deadlineNs) {
      let evaluated = 0;
      let unplaced = 0;
      let i = from;
      const t0 = process.hrtime.bigint();
      for (; i < to; i++) {
        const spec = specs[i]!;
        const record = scheduler.place({ workloadId: ids[i]!, spec }, snapshots);
        evaluated += record.hostsEvaluated;
        if (record.hostId === undefined) unplaced++;
        else assume(byId.get(record.hostId)!, spec);
        keep?.(ids[i]!, record);
        if (deadlineNs !== undefined && process.hrtime.bigint() > deadlineNs) {
          i++;
          break;
        }
      }
      const elapsed = process.hrtime.bigint() - t0;
      rate.seconds += Number(elapsed) / 1e9;
      rate.evaluated = (rate.evaluated * rate.placements + evaluated) / (rate.placements + i - from);
      rate.placements += i - from;
      rate.unplaced += unplaced;
      return i - from;
    },
  };
}

function naivePlacer(hosts: readonly Host[]): Placer {
  const snapshots = hosts.map(snapshotOf);
  const rate: Rate = { placements: 0, seconds: 0, unplaced: 0, evaluated: 0 };
  return {
    rate,
    run(specs, _ids, from, to) {
      let unplaced = 0;
      let scanned = 0;
      const t0 = process.hrtime.bigint();
      for (let i = from; i < to; i++) {
        const spec = specs[i]!;
        const index = firstFit(snapshots, spec);
        if (index < 0) {
          unplaced++;
          scanned += snapshots.length;
        } else {
          assume(snapshots[index]!, spec);
          scanned += index + 1;
        }
      }
      rate.seconds += Number(process.hrtime.bigint() - t0) / 1e9;
      rate.evaluated = (rate.evaluated * rate.placements + scanned) / (rate.placements + to - from);
      rate.placements += to - from;
      rate.unplaced += unplaced;
      return to - from;
    },
  };
}

/** A way to force a full collection: --expose-gc (e.g. NODE_OPTIONS=--expose-gc), else V8's flag set at run time. */
function collector(): (() => void) | undefined {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}

function heapUsed(gc: (() => void) | undefined): number {
  if (gc) for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

function measureMemory(hostCount: number, specs: readonly WorkloadSpec[], ids: readonly string[]): PlacementMemory {
  const gc = collector();
  const hosts = simulatedHosts(hostCount);

  const beforeSnapshots = heapUsed(gc);
  const snapshots = hosts.map(snapshotOf);
  const snapshotsBytes = heapUsed(gc) - beforeSnapshots;
  if (snapshots.length !== hostCount) throw new Error('snapshots went missing'); // and keeps them alive until measured

  // The last record per workload, as the coordinator keeps them (a shallow copy with two fields added).
  const decisions = new Map<string, PlacementRecord & { queuePolicy: string; waitedMs: number }>();
  const keep = (id: string, record: PlacementRecord) => decisions.set(id, { ...record, queuePolicy: COORDINATOR_DEFAULT.queuePolicy, waitedMs: 0 });
  const placer = pipelinePlacer(hosts, COORDINATOR_DEFAULT.candidateLimit, keep);
  placer.run(specs, ids, 0, Math.min(RECORDS_KEPT, specs.length));
  const withRecords = heapUsed(gc);
  const kept = decisions.size;
  decisions.clear();
  const recordsBytes = withRecords - heapUsed(gc);

  const few = 5;
  const exhaustive: PlacementRecord[] = [];
  const all = pipelinePlacer(hosts, 0, (_id, record) => exhaustive.push(record));
  const beforeExhaustive = heapUsed(gc);
  all.run(specs, ids, 0, few);
  const exhaustiveBytes = heapUsed(gc) - beforeExhaustive;
  const recordsHeld = exhaustive.length;
  exhaustive.length = 0;

  return {
    hosts: hostCount,
    gc: gc ? 'forced' : 'unavailable',
    snapshotsBytes,
    records: { kept, bytes: recordsBytes },
    exhaustiveRecordBytes: exhaustiveBytes / recordsHeld,
  };
}

/**
 * Placements per second on one core, through the coordinator's scheduler with
 * its decision records, against a naive first-fit on the same hosts and the
 * same request stream, measured in the same run. Both book every placement on
 * their snapshots with assume(), so the cluster fills as it would.
 */
export function benchPlacement(hostCounts: readonly number[] = [1000, 5000, 10_000]): PlacementResult {
  const total = Math.max(PLACEMENTS, RECORDS_KEPT);
  const specs = requestStream(total);
  const ids = specs.map((_, i) => `w-${String(i).padStart(6, '0')}`);

  // Warm the JIT on a throwaway cluster so the first host count is not penalised.
  const warmHosts = simulatedHosts(1000, 99);
  pipelinePlacer(warmHosts, COORDINATOR_DEFAULT.candidateLimit).run(specs, ids, 0, 5000);
  naivePlacer(warmHosts).run(specs, ids, 0, 5000);
  pipelinePlacer(warmHosts, 0).run(specs, ids, 0, 200);

  const rows: PlacementRow[] = [];
  for (const count of hostCounts) {
    const hosts = simulatedHosts(count);
    const pipeline = pipelinePlacer(hosts, COORDINATOR_DEFAULT.candidateLimit);
    const naive = naivePlacer(hosts);
    // Interleave rounds so machine noise hits both alike; each round places the next slice of the same stream.
    const per = Math.ceil(PLACEMENTS / ROUNDS);
    for (let r = 0; r < ROUNDS; r++) {
      const from = r * per;
      const to = Math.min(PLACEMENTS, from + per);
      pipeline.run(specs, ids, from, to);
      naive.run(specs, ids, from, to);
    }
    const exhaustive = pipelinePlacer(hosts, 0);
    exhaustive.run(specs, ids, 0, specs.length, process.hrtime.bigint() + BigInt(EXHAUSTIVE_MS) * 1_000_000n);
    rows.push({ hosts: count, placements: PLACEMENTS, pipeline: pipeline.rate, naive: naive.rate, exhaustive: exhaustive.rate });
  }
  const largest = Math.max(...hostCounts);
  return { rows, memory: measureMemory(largest, specs, ids) };
}

const perSecond = (r: Rate) => r.placements / r.seconds;
const microseconds = (r: Rate) => (r.seconds * 1e6) / r.placements;
const thousands = (n: number) => Math.round(n).toLocaleString('en-US');
const megabytes = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const kilobytes = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;

/** Right-aligned columns, each as wide as its widest cell. */
function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => cell.padStart(widths[c]!)).join('  '));
}

/** Placements per second at TARGET.hosts through the default pipeline, at least TARGET.rate; missed if that host count was not measured. */
export function placementTargets(result: PlacementResult): Target[] {
  const atTarget = result.rows.find((r) => r.hosts === TARGET.hosts);
  return [
    {
      benchmark: 'placement',
      what: `placements/s at ${thousands(TARGET.hosts)} hosts, coordinator default scheduler`,
      measured: atTarget ? Math.round(perSecond(atTarget.pipeline)) : 0,
      bound: 'at least',
      limit: TARGET.rate,
      unit: 'placements/s',
      basis: atTarget ? 'one core' : `${thousands(TARGET.hosts)} hosts not measured`,
    },
  ];
}

export function reportPlacement(result: PlacementResult): string {
  const first = result.rows[0];
  const vsFirst = first ? `vs ${first.hosts >= 1000 ? `${first.hosts / 1000}k` : first.hosts}` : 'vs first';
  const relative = (rate: number, base: number | undefined) => (base ? `${(rate / base).toFixed(2)}x` : '-');
  const rows = [
    ['hosts', 'pipeline/s', 'µs/place', vsFirst, 'evaluated', 'unplaced', '|', 'naive/s', 'µs/place', 'scanned', 'unplaced', 'pipeline/naive', '|', 'limit 0/s', 'µs/place', vsFirst],
    ...result.rows.map((row) => [
      thousands(row.hosts),
      thousands(perSecond(row.pipeline)),
      microseconds(row.pipeline).toFixed(1),
      relative(perSecond(row.pipeline), first && perSecond(first.pipeline)),
      row.pipeline.evaluated.toFixed(1),
      String(row.pipeline.unplaced),
      '|',
      thousands(perSecond(row.naive)),
      microseconds(row.naive).toFixed(2),
      row.naive.evaluated.toFixed(0),
      String(row.naive.unplaced),
      `${(microseconds(row.pipeline) / microseconds(row.naive)).toFixed(1)}x`,
      '|',
      thousands(perSecond(row.exhaustive)),
      microseconds(row.exhaustive).toFixed(0),
      relative(perSecond(row.exhaustive), first && perSecond(first.exhaustive)),
    ]),
  ];
  const m = result.memory;
  return [
    `placement throughput, one core: coordinator default scheduler (${COORDINATOR_DEFAULT.placement}, candidateLimit ${COORDINATOR_DEFAULT.candidateLimit}, decision records, assume() after each)`,
    `vs naive first-fit on the same hosts and request stream (${thousands(first?.placements ?? 0)} requests per host count, ${ROUNDS} interleaved rounds)`,
    ...table(rows),
    `evaluated/scanned: hosts looked at per placement. naive: up + kind + free cpu/memory/disk, no records. pipeline/naive: ratio of µs per placement.`,
    `limit 0: candidateLimit 0, every host evaluated and recorded, placing for ${EXHAUSTIVE_MS / 1000} s from an empty cluster.`,
    ...placementTargets(result).map(formatTarget),
    `memory at ${thousands(m.hosts)} hosts (gc ${m.gc}): snapshots ${megabytes(m.snapshotsBytes)} (${kilobytes(m.snapshotsBytes / m.hosts)}/host); ` +
      `last record of ${thousands(m.records.kept)} workloads ${megabytes(m.records.bytes)} (${kilobytes(m.records.bytes / Math.max(1, m.records.kept))}/record); ` +
      `one limit 0 record ${megabytes(m.exhaustiveRecordBytes)}`,
  ].join('\n');
}
