import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseWorkloadSpec, WorkloadView, type DriverInfo, type WorkloadSpec } from '@virtfleet/shared';
import type { Host } from '../hosts/host.js';
import { AdmissionQueue } from './admission-queue.js';
import type { PlacementPolicy } from './catalog.js';
import { createScheduler } from './create-scheduler.js';
import { assume, type HostSnapshot, type PlacementRecord } from './scheduler.js';
import { snapshotOf } from './snapshots.js';

/*
 * Properties of the whole pipeline, checked against a model written here
 * from the README's rules rather than from the plugins' code. Everything the
 * checks read comes from the generated cluster and the list of specs placed
 * on each host, never from the snapshots' bookkeeping, so a bug in assume()
 * or snapshotOf() shows up as well as one in a filter.
 */

type DriverState = 'healthy' | 'unhealthy' | 'none';

interface HostDef {
  id: string;
  up: boolean;
  capacity: { vcpus: number; memory_mib: number; disk_gib: number };
  reserved: { vcpus: number; memory_mib: number; disk_gib: number };
  ratio: { cpu: number; memory: number };
  trust: number;
  features: string[];
  zone: string;
  drivers: { vm: DriverState; container: DriverState };
  cpuUtilisation: number;
  memoryAvailableMiB: number;
}

const FEATURES = ['encrypted-storage', 'secure-boot'];
const driverState = fc.constantFrom<DriverState>('healthy', 'healthy', 'healthy', 'healthy', 'healthy', 'healthy', 'unhealthy', 'none');

const hostDefArb = fc
  .record({
    up: fc.integer({ min: 0, max: 9 }).map((n) => n > 0),
    vcpus: fc.integer({ min: 1, max: 64 }),
    memoryGiB: fc.integer({ min: 1, max: 128 }),
    disk_gib: fc.integer({ min: 10, max: 2000 }),
    reserved: fc.record({ vcpus: fc.integer({ min: 0, max: 4 }), memory_mib: fc.integer({ min: 0, max: 4096 }), disk_gib: fc.integer({ min: 0, max: 50 }) }),
    // Multiples of 1/4 and 1/8 keep every sum exact in binary floating point.
    ratio: fc.record({ cpu: fc.integer({ min: 4, max: 16 }).map((n) => n / 4), memory: fc.integer({ min: 8, max: 12 }).map((n) => n / 8) }),
    trust: fc.integer({ min: 0, max: 3 }),
    features: fc.subarray(FEATURES),
    zone: fc.constantFrom('a', 'b', 'c'),
    drivers: fc.record({ vm: driverState, container: driverState }),
    cpuUtilisation: fc.integer({ min: 0, max: 20 }).map((n) => n / 20),
    memoryAvailablePercent: fc.integer({ min: 0, max: 100 }),
  })
  .map(
    ({ vcpus, memoryGiB, disk_gib, memoryAvailablePercent, ...rest }): Omit<HostDef, 'id'> => ({
      ...rest,
      capacity: { vcpus, memory_mib: memoryGiB * 1024, disk_gib },
      memoryAvailableMiB: Math.round((memoryGiB * 1024 * memoryAvailablePercent) / 100),
    }),
  );

const clusterArb = fc.array(hostDefArb, { minLength: 2, maxLength: 30, size: 'medium' }).map((defs) => defs.map((d, i): HostDef => ({ id: `h${i}`, ...d })));

const requestArb = fc.record({
  kind: fc.constantFrom('vm' as const, 'container' as const),
  quarterVcpus: fc.integer({ min: 1, max: 64 }),
  memory_mib: fc.integer({ min: 64, max: 32768 }),
  disk_gib: fc.integer({ min: 0, max: 200 }),
  tenant: fc.constantFrom('t1', 't2', 't3'),
  isolation: fc.constantFrom('shared', 'shared', 'shared', 'shared', 'tenant', 'tenant', 'dedicated'),
  group: fc.constantFrom(undefined, undefined, 'g1', 'g2', 'g3'),
  minTrust: fc.constantFrom(0, 0, 0, 1, 2, 3),
  features: fc.oneof({ weight: 3, arbitrary: fc.constant<string[]>([]) }, { weight: 1, arbitrary: fc.subarray(FEATURES) }),
  zone: fc.constantFrom(undefined, undefined, undefined, 'a', 'b', 'c'),
  latency: fc.constantFrom('standard', 'standard', 'low', 'batch'),
  maxUtil: fc.option(fc.integer({ min: 1, max: 20 }).map((n) => n / 20), { nil: undefined, freq: 3 }),
  headroom: fc.constantFrom(0, 0, 0, 512, 2048),
});

const streamArb = fc.array(requestArb, { minLength: 20, maxLength: 200, size: 'large' }).map((requests) =>
  requests.map((r, i) =>
    parseWorkloadSpec({
      name: `w${i}`,
      kind: r.kind,
      ...(r.kind === 'container' ? { image: 'busybox:latest' } : {}),
      vcpus: r.kind === 'vm' ? Math.ceil(r.quarterVcpus / 4) : r.quarterVcpus / 4,
      memory_mib: r.memory_mib,
      disk_gib: r.disk_gib,
      tenant: r.tenant,
      security: { isolation: r.isolation, min_trust_level: r.minTrust, required_features: r.features, ...(r.group ? { anti_affinity_group: r.group } : {}) },
      performance: { latency_class: r.latency, memory_headroom_mib: r.headroom, ...(r.maxUtil !== undefined ? { max_host_cpu_utilisation: r.maxUtil } : {}) },
      host_selector: r.zone ? { zone: r.zone } : {},
    }),
  ),
);

function driver(name: string, kind: 'vm' | 'container', state: DriverState): DriverInfo[] {
  return state === 'none' ? [] : [{ name, version: '1', kinds: [kind], domain_types: [], healthy: state === 'healthy', detail: '' }];
}

/** The coordinator's Host for a generated definition, so snapshots come from the real snapshotOf. */
function hostOf(d: HostDef): Host {
  return {
    id: d.id,
    status: d.up ? 'up' : 'down',
    lastSeenMs: 0,
    cordoned: false,
    cpuUtilisationSmoothed: d.cpuUtilisation,
    telemetry: {
      version: 1,
      host_id: d.id,
      hostname: d.id,
      address: '127.0.0.1:1',
      agent_version: '0',
      boot_id: 'b',
      seq: 1,
      time: new Date(0).toISOString(),
      labels: { zone: d.zone },
      drivers: [...driver('libvirt', 'vm', d.drivers.vm), ...driver('docker', 'container', d.drivers.container)],
      capacity: d.capacity,
      reserved: d.reserved,
      overcommit: d.ratio,
      trust_level: d.trust,
      features: d.features,
      host: {
        cpu_count: d.capacity.vcpus,
        cpu_utilisation: d.cpuUtilisation,
        load1: 0,
        load5: 0,
        load15: 0,
        memory_total_mib: d.capacity.memory_mib,
        memory_used_mib: d.capacity.memory_mib - d.memoryAvailableMiB,
        memory_available_mib: d.memoryAvailableMiB,
        storage: [],
      },
    },
    workloads: new WorkloadView(),
  };
}

// ---- the model ----

const allocatableOf = (d: HostDef) => ({
  vcpus: Math.max(0, d.capacity.vcpus - d.reserved.vcpus) * d.ratio.cpu,
  memory: Math.max(0, d.capacity.memory_mib - d.reserved.memory_mib) * d.ratio.memory,
  disk: Math.max(0, d.capacity.disk_gib - d.reserved.disk_gib),
});

function usedBy(specs: readonly WorkloadSpec[]) {
  const used = { vcpus: 0, memory: 0, disk: 0 };
  for (const s of specs) {
    used.vcpus += s.vcpus;
    used.memory += s.memory_mib;
    used.disk += s.disk_gib;
  }
  return used;
}

/** Facts about the host alone that no placement or removal changes. */
function staticallyFits(d: HostDef, s: WorkloadSpec, acceptUnhealthyDriver: boolean): boolean {
  const a = allocatableOf(d);
  const drivers = d.drivers[s.kind];
  return (
    (drivers === 'healthy' || (acceptUnhealthyDriver && drivers === 'unhealthy')) &&
    d.trust >= s.security.min_trust_level &&
    s.security.required_features.every((f) => d.features.includes(f)) &&
    Object.entries(s.host_selector).every(([k, v]) => (k === 'zone' ? d.zone === v : false)) &&
    s.vcpus <= a.vcpus &&
    s.memory_mib <= a.memory &&
    s.disk_gib <= a.disk &&
    (s.performance.memory_headroom_mib === 0 || d.capacity.memory_mib - s.memory_mib >= s.performance.memory_headroom_mib)
  );
}

/** Whether `s` may go on host `d` that already runs `placed`, by the README's rules. */
function modelFits(d: HostDef, placed: readonly WorkloadSpec[], s: WorkloadSpec): boolean {
  if (!d.up || !staticallyFits(d, s, false)) return false;
  const a = allocatableOf(d);
  const used = usedBy(placed);
  if (used.vcpus + s.vcpus > a.vcpus || used.memory + s.memory_mib > a.memory || used.disk + s.disk_gib > a.disk) return false;
  const group = s.security.anti_affinity_group;
  if (group && placed.some((p) => p.security.anti_affinity_group === group)) return false;
  if (placed.some((p) => p.security.isolation === 'dedicated')) return false;
  if (s.security.isolation === 'dedicated' && placed.length > 0) return false;
  if (placed.some((p) => p.security.isolation === 'tenant' && p.tenant !== s.tenant)) return false;
  if (s.security.isolation === 'tenant' && placed.some((p) => p.tenant !== s.tenant)) return false;
  const tolerated = Math.min(s.performance.max_host_cpu_utilisation ?? 1, s.performance.latency_class === 'low' ? 0.6 : 1);
  if (d.cpuUtilisation > tolerated) return false;
  if (s.performance.memory_headroom_mib > 0 && d.memoryAvailableMiB - used.memory - s.memory_mib < s.performance.memory_headroom_mib) return false;
  return true;
}

/** Fails with `message` unless `ok`; plain, as it runs for every placement (vitest's expect is far slower). */
function check(ok: boolean, message: () => string): void {
  if (!ok) throw new Error(message());
}

const names = (specs: readonly WorkloadSpec[]) => specs.map((s) => `${s.name}(${s.tenant}, ${s.security.isolation}${s.security.anti_affinity_group ? `, ${s.security.anti_affinity_group}` : ''})`).join(' ');

/** The invariants (a)-(d) for one host and what runs on it. */
function checkHost(d: HostDef, placed: readonly WorkloadSpec[], context: string): void {
  const a = allocatableOf(d);
  const used = usedBy(placed);
  // (a) capacity: (capacity - reserved) × ratio, disk never overcommitted
  check(used.vcpus <= a.vcpus && used.memory <= a.memory && used.disk <= a.disk, () => `${context}: ${d.id} offers ${JSON.stringify(a)}, holds ${JSON.stringify(used)}`);
  // (b) anti-affinity
  const groups = placed.map((s) => s.security.anti_affinity_group).filter((g): g is string => Boolean(g));
  check(new Set(groups).size === groups.length, () => `${context}: one anti-affinity group twice on ${d.id}: ${names(placed)}`);
  // (c) isolation
  check(placed.length === 1 || placed.every((s) => s.security.isolation !== 'dedicated'), () => `${context}: a dedicated workload shares ${d.id}: ${names(placed)}`);
  for (const s of placed) {
    if (s.security.isolation === 'tenant') check(placed.every((p) => p.tenant === s.tenant), () => `${context}: ${s.name} is isolated for ${s.tenant} on ${d.id}: ${names(placed)}`);
  }
  // (d) trust, features, and the other facts of the host
  for (const s of placed) {
    check(d.trust >= s.security.min_trust_level, () => `${context}: ${s.name} wants trust ${s.security.min_trust_level}, ${d.id} has ${d.trust}`);
    check(
      s.security.required_features.every((f) => d.features.includes(f)),
      () => `${context}: ${s.name} wants ${s.security.required_features.join(',')}, ${d.id} has ${d.features.join(',')}`,
    );
    check(d.up && staticallyFits(d, s, false), () => `${context}: ${s.name} on ${d.id}, which is down, lacks a healthy ${s.kind} driver or the label`);
  }
}

const CONFIGS: { placement: PlacementPolicy; candidateLimit: number }[] = [
  { placement: 'binpack', candidateLimit: 0 },
  { placement: 'binpack', candidateLimit: 4 },
  { placement: 'spread', candidateLimit: 0 },
  { placement: 'spread', candidateLimit: 4 },
];

function runStream(defs: HostDef[], stream: WorkloadSpec[], config: (typeof CONFIGS)[number]) {
  const scheduler = createScheduler({ placement: config.placement, weights: {}, candidateLimit: config.candidateLimit });
  const snapshots = defs.map((d) => snapshotOf(hostOf(d)));
  const placed = new Map<string, WorkloadSpec[]>(defs.map((d) => [d.id, []]));
  const context = `${config.placement}/limit ${config.candidateLimit}`;
  let count = 0;
  for (const [i, spec] of stream.entries()) {
    const record: PlacementRecord = scheduler.place({ workloadId: `w${i}`, spec }, snapshots);
    const at = `${context}, request ${i}`;
    if (record.hostId === undefined) {
      // (e) nothing fits: no host may pass all the rules. Both limits evaluate every host then.
      const fits = defs.filter((d) => modelFits(d, placed.get(d.id)!, spec)).map((d) => d.id);
      check(fits.length === 0, () => `${at}: "${record.summary}" but ${fits.join(', ')} fit`);
      check(record.hostsEvaluated === defs.length, () => `${at}: evaluated ${record.hostsEvaluated} of ${defs.length} hosts before giving up`);
      // "unresolvable" promises that no host could run it even empty (and none is down or has an unhealthy driver).
      if (record.unresolvable) {
        const could = defs.filter((d) => !d.up || staticallyFits(d, spec, true)).map((d) => d.id);
        check(could.length === 0, () => `${at}: "${record.summary}" is unresolvable, yet ${could.join(', ')} could take it some day`);
      }
      continue;
    }
    const index = defs.findIndex((d) => d.id === record.hostId);
    const def = defs[index]!;
    const onHost = placed.get(def.id)!;
    check(modelFits(def, onHost, spec), () => `${at}: ${spec.name} placed on ${def.id}, which the rules forbid; it runs ${names(onHost)}`);
    assume(snapshots[index]!, spec);
    onHost.push(spec);
    count++;
    checkHost(def, onHost, at);
    // assume() books exactly what was placed.
    const used = usedBy(onHost);
    const booked = snapshots[index]!;
    check(
      booked.allocated.vcpus === used.vcpus && booked.allocated.memoryMiB === used.memory && booked.allocated.diskGiB === used.disk && booked.workloadCount === onHost.length,
      () => `${at}: ${def.id} books ${JSON.stringify(booked.allocated)} for ${booked.workloadCount} workloads, holds ${JSON.stringify(used)} for ${onHost.length}`,
    );
  }
  for (const d of defs) checkHost(d, placed.get(d.id)!, `${context}, at the end`);
  return count;
}

describe('scheduler properties', () => {
  it('every placement respects capacity, anti-affinity, isolation, trust and features; "nothing fits" is true', () => {
    let placements = 0;
    let misses = 0;
    fc.assert(
      fc.property(clusterArb, streamArb, (defs, stream) => {
        for (const config of CONFIGS) {
          const n = runStream(defs, stream, config);
          placements += n;
          misses += stream.length - n;
        }
      }),
      { seed: 20240611, numRuns: 200 },
    );
    // The generators reach both outcomes often, or the properties say little.
    expect(placements).toBeGreaterThan(10_000);
    expect(misses).toBeGreaterThan(10_000);
    // Tens of thousands of placements: seconds of CPU, more on a loaded machine.
  }, 60_000);

  describe('aging through the admission queue', () => {
    /*
     * One host runs one job at a time; every job takes R minutes. A priority
     * 100 request arrives every R minutes until minute H, plus bursts of extra
     * ones, so without aging the host is never free while a high request
     * waits. A few low requests (priority p ≤ 50) arrive in between.
     *
     * The bound. With aging a points/minute, a request that arrives D = (100 - p) / a
     * minutes or more after low request L never goes before it (any priority
     * is at most 100, and a tie goes to the earlier arrival). From L's arrival
     * tL until its start S the host is never idle, since a pass places
     * whatever heads the queue; the jobs run in that time are at most the one
     * running at tL, plus those that arrived before tL + D and had not started
     * by tL. So S ≤ tL + R × (1 + #{r ≠ L : arrival(r) ≤ tL + ⌈D⌉, start(r) ≥ tL}).
     */
    const MINUTE = 60_000;
    const H = 720;
    const specs = new Map<number, WorkloadSpec>();
    const specWithPriority = (priority: number) => {
      let s = specs.get(priority);
      if (!s) specs.set(priority, (s = parseWorkloadSpec({ name: `p${priority}`, kind: 'vm', vcpus: 1, memory_mib: 512, priority })));
      return s;
    };
    const oneSlotHost: HostSnapshot = snapshotOf(
      hostOf({
        id: 'h1',
        up: true,
        capacity: { vcpus: 1, memory_mib: 1024, disk_gib: 10 },
        reserved: { vcpus: 0, memory_mib: 0, disk_gib: 0 },
        ratio: { cpu: 1, memory: 1 },
        trust: 0,
        features: [],
        zone: 'a',
        drivers: { vm: 'healthy', container: 'none' },
        cpuUtilisation: 0,
        memoryAvailableMiB: 1024,
      }),
    );

    interface Arrival {
      id: string;
      minute: number;
      priority: number;
    }

    /** Runs the stream to the end; returns each request's start minute. */
    function simulate(arrivals: Arrival[], jobMinutes: number, agingPerMinute: number, backfill: boolean): Map<string, number> {
      const queue = new AdmissionQueue({ policy: 'priority', agingPerMinute, backfill });
      const scheduler = createScheduler({ placement: 'binpack', weights: {}, candidateLimit: 0 });
      const pending = [...arrivals].sort((a, b) => a.minute - b.minute);
      const starts = new Map<string, number>();
      let next = 0;
      let runningUntil: number | undefined;
      while (next < pending.length || queue.size > 0) {
        const now = Math.min(pending[next]?.minute ?? Infinity, runningUntil ?? Infinity);
        if (!Number.isFinite(now)) throw new Error(`stuck with ${queue.size} queued and the host idle`);
        while (next < pending.length && pending[next]!.minute === now) {
          const a = pending[next++]!;
          queue.add(a.id, specWithPriority(a.priority), now * MINUTE);
        }
        if (runningUntil === now) runningUntil = undefined;
        if (runningUntil !== undefined) continue;
        const host: HostSnapshot = { ...oneSlotHost, tenants: new Map(), antiAffinityGroups: new Set() };
        const { placed } = queue.pass(scheduler, [host], now * MINUTE);
        check(placed.length <= 1, () => `minute ${now}: ${placed.length} placed on one slot`);
        for (const p of placed) {
          starts.set(p.entry.workloadId, now);
          runningUntil = now + jobMinutes;
        }
      }
      return starts;
    }

    const scenarioArb = fc.record({
      jobMinutes: fc.integer({ min: 1, max: 6 }),
      agingPerMinute: fc.integer({ min: 1, max: 10 }),
      backfill: fc.boolean(),
      lows: fc.array(fc.record({ minute: fc.integer({ min: 0, max: 120 }), priority: fc.integer({ min: 0, max: 50 }) }), { minLength: 1, maxLength: 4 }),
      extraHighs: fc.array(fc.integer({ min: 0, max: H - 1 }), { maxLength: 10 }),
    });

    /** A high request every jobMinutes until H, the extra ones, and the low ones. */
    function arrivalsOf({ jobMinutes, lows, extraHighs }: { jobMinutes: number; lows: { minute: number; priority: number }[]; extraHighs: number[] }) {
      const arrivals: Arrival[] = [];
      for (let m = 0, i = 0; m < H; m += jobMinutes, i++) arrivals.push({ id: `high${i}`, minute: m, priority: 100 });
      const lastHigh = arrivals[arrivals.length - 1]!.minute;
      extraHighs.forEach((minute, i) => arrivals.push({ id: `extra${i}`, minute, priority: 100 }));
      const lowArrivals = lows.map((l, i) => ({ id: `low${i}`, ...l }));
      return { arrivals: [...arrivals, ...lowArrivals], lastHigh, lows: lowArrivals };
    }

    it('with aging, every low-priority request starts within the derived bound, and long before it would without', () => {
      fc.assert(
        fc.property(scenarioArb, (scenario) => {
          const { jobMinutes, agingPerMinute, backfill } = scenario;
          const { arrivals, lastHigh, lows } = arrivalsOf(scenario);
          const aged = simulate(arrivals, jobMinutes, agingPerMinute, backfill);
          const unaged = simulate(arrivals, jobMinutes, 0, backfill);
          expect(aged.size).toBe(arrivals.length);
          for (const low of lows) {
            const start = aged.get(low.id)!;
            const horizon = low.minute + Math.ceil((100 - low.priority) / agingPerMinute);
            const ahead = arrivals.filter((r) => r.id !== low.id && r.minute <= horizon && aged.get(r.id)! >= low.minute).length;
            const bound = low.minute + jobMinutes * (1 + ahead);
            expect(start, `${low.id} (priority ${low.priority}, arrived at ${low.minute}, aging ${agingPerMinute}/min, jobs of ${jobMinutes} min)`).toBeLessThanOrEqual(bound);
            // Without aging the same request waits until the high-priority stream stops: it starves.
            expect(unaged.get(low.id)!, `${low.id} without aging`).toBeGreaterThan(lastHigh);
            expect(start, `${low.id}: aging made no difference`).toBeLessThan(unaged.get(low.id)!);
          }
        }),
        { seed: 7, numRuns: 200 },
      );
    });
  });
});
