import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { NatsConnection } from '@nats-io/transport-node';
import { agentConfigSchema } from '@virtfleet/agent';
import { coordinatorConfigSchema, INGEST_REPORT_MS, type IngestLagReport } from '@virtfleet/coordinator';
import { telemetrySubject, type pb } from '@virtfleet/shared';
import { startCluster, type TestCluster } from '../test/support/cluster.js';
import type { ManagedProcess } from '../test/support/processes.js';
import { startSimulatedFleet, type SimulatedFleet } from '../test/support/simulated-fleet.js';
import { GiveUp, waitUntil } from '../test/support/wait.js';
import { cpuSeconds, rssMiB } from './proc.js';
import { DEFAULTS_ONLY, formatTarget, type Target } from './targets.js';

// A coordinator loaded by one agent process simulating N hosts (fake driver, each with its own gRPC port, host lease,
// heartbeat and 1 Hz telemetry, as `virtfleet agent --simulate-hosts N` runs them), beside the same measurements
// with a small fleet in the same run. Everything runs with the daemons' default intervals; only the host count changes.

/** The baseline fleet: small enough to cost the coordinator next to nothing, large enough to place on. */
const BASELINE_HOSTS = 10;
/** Seconds the fleet runs untouched before measuring, so start-up work (first telemetry, host.up events) is over. */
const SETTLE_S = 8;
/** Seconds of coordinator CPU measured, with no API call from the bench; long enough to hold one whole ingest report. */
const CPU_WINDOW_S = 21;
/** Simulated hosts per agent process: one Node thread carries about 2,500 at the default intervals on this kind of machine. */
const HOSTS_PER_PROCESS = Number(process.env.BENCH_FLEET_HOSTS_PER_PROCESS ?? 2500);
/** Hosts whose telemetry the bench counts to check the delivered rate. */
const RATE_SAMPLE_HOSTS = 100;
/** Workloads submitted for placement latency, at this rate. */
const PLACE_RATE_PER_S = 25;

const AGENT_DEFAULTS = agentConfigSchema.parse(DEFAULTS_ONLY);
const COORDINATOR_DEFAULTS = coordinatorConfigSchema.parse(DEFAULTS_ONLY);
const TELEMETRY_MS = AGENT_DEFAULTS.telemetry.intervalMs;

export interface Percentiles {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export interface FleetPhase {
  hosts: number;
  /** Agent processes the hosts were simulated in. */
  processes: number;
  /** From the fleet process's start until ListHosts shows every host up. */
  allUpMs: number;
  /** Coordinator CPU over the window, in cores (1 = one core busy). */
  coordinatorCores: number;
  /** The simulating agents' own CPU, in cores: the load generator, reported so a saturated one shows. */
  fleetCores: number;
  /** Telemetry messages per second on NATS during the CPU window: counted for a sample of hosts, scaled to all. */
  telemetryPerSecond: number;
  /** Coordinator resident memory before the fleet started and with it running. */
  rssBeforeMiB: number;
  rssWithFleetMiB: number;
  /** Telemetry published_at → applied by the coordinator, ms, every message: the worst of the coordinator's 10-s reports in the CPU window (n: all of them). */
  lagMs: Percentiles;
  /** Hosts not `up` after the CPU window or after placement. */
  hostsNotUp: number;
  /** Submit called → the placed event received, ms. */
  placeMs: Percentiles;
  /** Submit called → the state_changed-to-running event received, ms. */
  runningMs: Percentiles;
}

export interface FleetResult {
  baseline: FleetPhase;
  phases: FleetPhase[];
  workloads: number;
}

function percentiles(values: number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? Number.NaN };
}

/** The coordinator's 'telemetry ingest' log reports made between `fromMs` and `toMs` (epoch ms). */
function ingestReports(coordinator: ManagedProcess, fromMs: number, toMs: number): IngestLagReport[] {
  const out: IngestLagReport[] = [];
  for (const line of coordinator.output.join('').split('\n')) {
    if (!line.includes('"telemetry ingest"')) continue;
    const r = JSON.parse(line) as IngestLagReport & { time: number; msg: string };
    if (r.msg === 'telemetry ingest' && r.time >= fromMs && r.time <= toMs) out.push(r);
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function allHosts(cluster: TestCluster): Promise<pb.Host__Output[]> {
  const out: pb.Host__Output[] = [];
  let page_token = '';
  do {
    const page = await cluster.api.hosts({ page_size: 5000, page_token });
    out.push(...page.hosts);
    page_token = page.next_page_token;
  } while (page_token !== '');
  return out;
}

/** Submits `count` small containers at `ratePerS`; resolves with each one's latency to placed and to running, from NATS events. */
async function placeUnderLoad(cluster: TestCluster, nc: NatsConnection, prefix: string, count: number, ratePerS: number): Promise<{ place: number[]; running: number[] }> {
  const submittedAt = new Map<string, number>();
  const placedAt = new Map<string, number>();
  const runningAt = new Map<string, number>();
  // Events may come before submit returns the id: keep them by workload id until it is known.
  const sub = nc.subscribe('virtfleet.events.workload.>', {
    callback: (err, msg) => {
      if (err) return;
      const now = performance.now();
      const e = msg.json<{ type: string; subject: string; data: { to?: string } }>();
      if (e.type === 'io.virtfleet.workload.placed') placedAt.set(e.subject, now);
      else if (e.type === 'io.virtfleet.workload.state_changed' && e.data.to === 'running') runningAt.set(e.subject, now);
    },
  });
  await nc.flush();
  const ids: string[] = [];
  const started = performance.now();
  try {
    await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        await sleep(started + (i * 1000) / ratePerS - performance.now());
        const at = performance.now();
        const w = await cluster.api.submit({ request_id: `${prefix}-${i}`, spec: { name: `${prefix}-${i}`, kind: 'container', image: 'sim:latest', vcpus: 0.1, memory_mib: 64 } });
        submittedAt.set(w.id, at);
        ids.push(w.id);
      }),
    );
    await waitUntil(`${count} workloads to run`, () => ids.every((id) => runningAt.has(id)), { timeoutMs: 60_000, intervalMs: 100 });
  } finally {
    sub.unsubscribe();
  }
  return {
    place: ids.map((id) => placedAt.get(id)! - submittedAt.get(id)!),
    running: ids.map((id) => runningAt.get(id)! - submittedAt.get(id)!),
  };
}

/** One fresh nats-server and coordinator, one simulated fleet of `hosts`; every figure taken from them alone. */
async function runPhase(hosts: number, workloads: number): Promise<FleetPhase> {
  // Production intervals and timeouts: the test harness's shorter ones (scheduler retry, leader lease) reset to defaults.
  // BENCH_PROFILE=1: the coordinator writes a CPU profile per phase into the directory the report names.
  const profileDir = process.env.BENCH_PROFILE === '1' ? mkdtempSync(join(tmpdir(), `virtfleet-cpuprof-fleet${hosts}-`)) : undefined;
  if (profileDir) console.error(`fleet ${hosts}: coordinator CPU profile in ${profileDir}`);
  // Plaintext: a certificate per simulated host would take minutes to issue for 5,000.
  const cluster = await startCluster({
    insecure: true,
    hostTtlMs: COORDINATOR_DEFAULTS.hosts.ttlMs,
    coordinatorLogLevel: 'info',
    coordinatorExtra: { scheduler: {}, ha: {}, ...(process.env.BENCH_FLEET_NO_RECONCILE ? { reconcile: { intervalMs: 3_600_000 } } : {}) },
    coordinatorNodeArgs: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
  });
  const dir = mkdtempSync(join(tmpdir(), 'virtfleet-bench-fleet-'));
  const prefix = `sim${hosts}`;
  const nc = await cluster.nats.connect();
  const fleets: SimulatedFleet[] = [];
  try {
    const coordinatorPid = cluster.coordinator.child.pid!;
    await sleep(2000);
    const rssBeforeMiB = rssMiB(coordinatorPid);

    // One Node process carries about 2,500 hosts at 1 Hz (its one thread); more are split over several.
    const processes = Math.ceil(hosts / HOSTS_PER_PROCESS);
    const fleetStartedAt = performance.now();
    for (let k = 0; k < processes; k++) {
      const count = Math.floor(hosts / processes) + (k < hosts % processes ? 1 : 0);
      fleets.push(await startSimulatedFleet({ idPrefix: `${prefix}p${k}`, hosts: count, nats: cluster.nats, dir }));
    }
    const exited = () => fleets.find((f) => !f.process.running);
    await waitUntil(
      `all ${hosts} simulated hosts to be up`,
      async () => {
        const dead = exited();
        if (dead) throw new GiveUp(`${dead.process.name} exited:\n${dead.process.tail()}`);
        return (await allHosts(cluster)).filter((h) => h.status === 'up').length === hosts;
      },
      { timeoutMs: 180_000, intervalMs: 1000 },
    );
    const allUpMs = performance.now() - fleetStartedAt;
    await sleep(SETTLE_S * 1000);

    // CPU and the delivered telemetry rate, with no API call from here. The rate is counted on a sample of hosts
    // spread over the fleet (so over the timer phases), which costs nats-server and this process little.
    let telemetry = 0;
    const ids = fleets.flatMap((f) => f.ids);
    const sampled = Array.from({ length: Math.min(hosts, RATE_SAMPLE_HOSTS) }, (_, i) => ids[Math.floor((i * hosts) / Math.min(hosts, RATE_SAMPLE_HOSTS))]!);
    const counters = sampled.map((id) =>
      nc.subscribe(telemetrySubject(id), {
        callback: () => {
          telemetry++;
        },
      }),
    );
    await nc.flush();
    const fleetCpu = () => fleets.reduce((sum, f) => sum + cpuSeconds(f.process.child.pid!), 0);
    const cpu0 = { coordinator: cpuSeconds(coordinatorPid), fleet: fleetCpu(), at: performance.now(), wallMs: Date.now() };
    telemetry = 0;
    await sleep(CPU_WINDOW_S * 1000);
    const seconds = (performance.now() - cpu0.at) / 1000;
    const coordinatorCores = (cpuSeconds(coordinatorPid) - cpu0.coordinator) / seconds;
    const fleetCores = (fleetCpu() - cpu0.fleet) / seconds;
    const telemetryPerSecond = (telemetry / seconds) * (hosts / sampled.length);
    for (const c of counters) c.unsubscribe();
    const rssWithFleetMiB = rssMiB(coordinatorPid);

    // Ingest lag, as the coordinator's registry reports it for every message: its reports that cover a period
    // wholly inside the window (each covers the INGEST_REPORT_MS before it), the worst of them.
    const reports = ingestReports(cluster.coordinator, cpu0.wallMs + INGEST_REPORT_MS, cpu0.wallMs + seconds * 1000);
    if (reports.length === 0) throw new Error(`the coordinator logged no 'telemetry ingest' report in the window:\n${cluster.coordinator.tail()}`);
    let hostsNotUp = hosts - (await allHosts(cluster)).filter((h) => h.status === 'up').length;

    const placed = await placeUnderLoad(cluster, nc, prefix, workloads, PLACE_RATE_PER_S);
    hostsNotUp = Math.max(hostsNotUp, hosts - (await allHosts(cluster)).filter((h) => h.status === 'up').length);
    const lagMs = { n: reports.reduce((n, r) => n + r.messages, 0), p50: Math.max(...reports.map((r) => r.p50)), p99: Math.max(...reports.map((r) => r.p99)), max: Math.max(...reports.map((r) => r.max)) };
    const dead = exited();
    if (dead) throw new Error(`${dead.process.name} exited:\n${dead.process.tail()}`);
    return {
      processes,
      hosts,
      allUpMs,
      coordinatorCores,
      fleetCores,
      telemetryPerSecond,
      rssBeforeMiB,
      rssWithFleetMiB,
      lagMs,
      hostsNotUp,
      placeMs: percentiles(placed.place),
      runningMs: percentiles(placed.running),
    };
  } finally {
    await nc.close();
    await Promise.all(fleets.map((f) => f.process.stop('SIGTERM', 30_000)));
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The baseline fleet, then each size in `sizes`, each against a fresh coordinator. */
export async function benchFleet(sizes: number[], workloads: number): Promise<FleetResult> {
  for (const n of sizes) if (!Number.isInteger(n) || n <= BASELINE_HOSTS) throw new Error(`BENCH_FLEET_HOSTS: ${n} is not a whole number above the baseline's ${BASELINE_HOSTS} hosts`);
  const baseline = await runPhase(BASELINE_HOSTS, workloads);
  const phases: FleetPhase[] = [];
  for (const n of sizes) phases.push(await runPhase(n, workloads));
  return { baseline, phases, workloads };
}

/** Coordinator CPU per 1,000 hosts, in cores: what the fleet adds over the baseline's, per host. */
const cpuPerThousand = (p: FleetPhase, base: FleetPhase) => ((p.coordinatorCores - base.coordinatorCores) * 1000) / (p.hosts - base.hosts);
/** Coordinator memory per host, KiB: its RSS with the fleet over its RSS before, per host. */
const kibPerHost = (p: FleetPhase) => ((p.rssWithFleetMiB - p.rssBeforeMiB) * 1024) / p.hosts;

/** Cores a coordinator may spend per 1,000 hosts: 5,000 hosts in half of its one event loop, the rest for API and scheduling. */
const MAX_CORES_PER_THOUSAND = 0.1;
/** KiB per host: 10,000 hosts in 1 GiB. */
const MAX_KIB_PER_HOST = 100;

/**
 * Per fleet size:
 * - coordinator CPU per 1,000 hosts ≤ 0.1 core: at 5,000 hosts telemetry, heartbeats and lease renewals may take
 *   half of the coordinator's one event loop, no more.
 * - telemetry ingest lag p99 ≤ half the telemetry interval: a coordinator further behind than that decides on
 *   a view more than one sample old.
 * - memory ≤ 100 KiB per host (10,000 hosts in 1 GiB).
 * - placement p99 ≤ the baseline's p99 + one telemetry interval: load may delay a placement by a pass of the
 *   loop, not by a backlog.
 * - every host up throughout (a host marked down under load is a false failure) and the asked-for telemetry
 *   rate delivered (≥ 95 % of one message per host per interval), or the load was not what it says.
 */
export function fleetTargets(r: FleetResult): Target[] {
  const benchmark = 'fleet';
  const out: Target[] = [];
  for (const p of r.phases) {
    const at = `at ${p.hosts.toLocaleString('en-US')} hosts`;
    out.push(
      { benchmark, what: `coordinator CPU per 1,000 hosts ${at}`, measured: round(cpuPerThousand(p, r.baseline), 3), bound: 'at most', limit: MAX_CORES_PER_THOUSAND, unit: 'cores', basis: `5,000 hosts in half a core; over the ${r.baseline.hosts}-host baseline's ${round(r.baseline.coordinatorCores, 3)}` },
      { benchmark, what: `telemetry ingest lag p99 ${at}`, measured: Math.round(p.lagMs.p99), bound: 'at most', limit: TELEMETRY_MS / 2, unit: 'ms', basis: `half of telemetry.intervalMs ${TELEMETRY_MS}; baseline p99 ${Math.round(r.baseline.lagMs.p99)} ms` },
      { benchmark, what: `coordinator memory per host ${at}`, measured: round(kibPerHost(p), 1), bound: 'at most', limit: MAX_KIB_PER_HOST, unit: 'KiB', basis: '10,000 hosts in 1 GiB' },
      { benchmark, what: `placement p99 (submit → placed) ${at}`, measured: Math.round(p.placeMs.p99), bound: 'at most', limit: Math.round(r.baseline.placeMs.p99 + TELEMETRY_MS), unit: 'ms', basis: `baseline p99 ${Math.round(r.baseline.placeMs.p99)} ms + one telemetry interval` },
      { benchmark, what: `hosts not up at any check ${at}`, measured: p.hostsNotUp, bound: 'at most', limit: 0, unit: '', basis: 'every simulated host stays alive' },
      { benchmark, what: `telemetry messages/s delivered ${at}`, measured: Math.round(p.telemetryPerSecond), bound: 'at least', limit: Math.floor((0.95 * p.hosts * 1000) / TELEMETRY_MS), unit: '/s', basis: `95 % of ${p.hosts} hosts at ${TELEMETRY_MS} ms` },
    );
  }
  return out;
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export function reportFleet(r: FleetResult): string {
  const row = (p: FleetPhase, base?: FleetPhase) =>
    [
      `  ${String(p.hosts).padStart(5)} hosts${base ? '' : ' (baseline)'} in ${p.processes} agent process${p.processes > 1 ? 'es' : ''}: all up in ${(p.allUpMs / 1000).toFixed(1)} s; telemetry ${Math.round(p.telemetryPerSecond)}/s`,
      `    coordinator CPU ${p.coordinatorCores.toFixed(3)} cores${base ? ` (${cpuPerThousand(p, base).toFixed(3)} per 1,000 hosts over the baseline)` : ''}; the simulating agents ${p.fleetCores.toFixed(2)} cores`,
      `    coordinator RSS ${p.rssBeforeMiB.toFixed(0)} → ${p.rssWithFleetMiB.toFixed(0)} MiB (${kibPerHost(p).toFixed(1)} KiB per host)`,
      `    ingest lag ms (every message, n=${p.lagMs.n}; worst ${INGEST_REPORT_MS / 1000}-s report): p50 ${p.lagMs.p50} p99 ${p.lagMs.p99} max ${p.lagMs.max}; hosts not up ${p.hostsNotUp}`,
      `    submit → placed ms (n=${p.placeMs.n}): p50 ${Math.round(p.placeMs.p50)} p99 ${Math.round(p.placeMs.p99)} max ${Math.round(p.placeMs.max)}; → running p50 ${Math.round(p.runningMs.p50)} p99 ${Math.round(p.runningMs.p99)}`,
    ].join('\n');
  return [
    `fleet: one agent process simulating N hosts (fake driver, default intervals: telemetry ${TELEMETRY_MS} ms, heartbeat ${AGENT_DEFAULTS.heartbeat.intervalMs} ms, fencing ${AGENT_DEFAULTS.fencing.timeoutMs} ms), a fresh coordinator and nats-server each; CPU over ${CPU_WINDOW_S} s; ${r.workloads} workloads at ${PLACE_RATE_PER_S}/s`,
    row(r.baseline),
    ...r.phases.map((p) => row(p, r.baseline)),
    ...fleetTargets(r).map((t) => `  ${formatTarget(t)}`),
  ].join('\n');
}
