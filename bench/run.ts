// npm run bench: every benchmark, each against a baseline measured in the same run, each with
// its targets (bench/targets.ts). Exits non-zero when any target is missed or any benchmark
// fails to run; the others still run and report.
//
//   npm run bench                       # all of them
//   npm run bench -- placement failover # only these
//   BENCH_BURST_N=200 npm run bench -- burst  # the create burst, smaller than its 1,000
//   BENCH_FLEET_HOSTS=1000 npm run bench -- fleet  # the simulated fleet, at 1,000 hosts only (default 1000,5000)
//   BENCH_THROUGHPUT_BATCHES=2 BENCH_THROUGHPUT_BATCH=4000 npm run bench -- throughput  # smaller than 10 x 10,000
//   BENCH_REBALANCE_INSTANCES=3 npm run bench -- rebalance  # the first 3 instances of each class, not all 20
//   BENCH_PROFILE=1            # throughput and fleet: the coordinator (and agent) write CPU profiles; the report says where
//   BENCH_FLEET_NO_RECONCILE=1 # fleet: periodic reconciliation off, to see its share of CPU and memory
import { benchBurst, burstTargets, reportBurst } from './burst.bench.js';
import { benchCreatePath, createPathTargets, reportCreatePath } from './create-path.bench.js';
import { benchDispatch, dispatchTargets, reportDispatch } from './dispatch.bench.js';
import { benchFleet, fleetTargets, reportFleet } from './fleet.bench.js';
import { benchFailover, failoverTargets, reportFailover } from './failover.bench.js';
import { benchHostLoss, hostLossTargets, reportHostLoss } from './host-loss.bench.js';
import { benchPlacement, placementTargets, reportPlacement } from './placement.bench.js';
import { benchRebalance, rebalanceTargets, reportRebalance } from './rebalance.bench.js';
import { benchThroughput, reportThroughput, throughputTargets } from './throughput.bench.js';
import { formatTarget, isMet, type Target } from './targets.js';

interface Benchmark {
  name: string;
  run(): Promise<{ report: string; targets: Target[] }>;
}

const n = Number(process.env.BENCH_N ?? 2000);
const BENCHMARKS: Benchmark[] = [
  {
    name: 'dispatch',
    async run() {
      const r = await benchDispatch(n);
      return { report: reportDispatch(r), targets: dispatchTargets(r) };
    },
  },
  {
    name: 'placement',
    async run() {
      const r = benchPlacement();
      return { report: reportPlacement(r), targets: placementTargets(r) };
    },
  },
  {
    // About a minute: 40 bin-packing instances, each consolidated from best-fit (BENCH_REBALANCE_INSTANCES=3 for a quick look).
    name: 'rebalance',
    async run() {
      const r = benchRebalance(process.env.BENCH_REBALANCE_INSTANCES ? Number(process.env.BENCH_REBALANCE_INSTANCES) : undefined);
      return { report: reportRebalance(r), targets: rebalanceTargets(r) };
    },
  },
  {
    name: 'failover',
    async run() {
      const r = await benchFailover(Number(process.env.BENCH_FAILOVER_TRIALS ?? 10));
      return { report: reportFailover(r), targets: failoverTargets(r) };
    },
  },
  {
    name: 'host-loss',
    async run() {
      const r = await benchHostLoss(Number(process.env.BENCH_HOST_LOSS_TRIALS ?? 10), Number(process.env.BENCH_FENCE_FIRST_TRIALS ?? 5));
      return { report: reportHostLoss(r), targets: hostLossTargets(r) };
    },
  },
  {
    name: 'create-path',
    async run() {
      const r = await benchCreatePath(Number(process.env.BENCH_CREATE_TRIALS ?? 15));
      return { report: reportCreatePath(r), targets: createPathTargets(r) };
    },
  },
  {
    name: 'throughput',
    async run() {
      const r = await benchThroughput(Number(process.env.BENCH_THROUGHPUT_BATCHES ?? 10), Number(process.env.BENCH_THROUGHPUT_BATCH ?? 10_000), {
        profile: process.env.BENCH_PROFILE === '1',
      });
      return { report: reportThroughput(r), targets: throughputTargets(r) };
    },
  },
  {
    // About four minutes: a fresh coordinator per fleet size, 10 hosts (baseline), then 1,000 and 5,000.
    name: 'fleet',
    async run() {
      const sizes = (process.env.BENCH_FLEET_HOSTS ?? '1000,5000').split(',').map(Number);
      const r = await benchFleet(sizes, Number(process.env.BENCH_FLEET_WORKLOADS ?? 300));
      return { report: reportFleet(r), targets: fleetTargets(r) };
    },
  },
  {
    // Long: Docker creates about two containers a second on a two-core machine, and it runs twice.
    name: 'burst',
    async run() {
      const r = await benchBurst(Number(process.env.BENCH_BURST_N ?? 1000));
      return { report: reportBurst(r), targets: burstTargets(r) };
    },
  },
];

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !BENCHMARKS.some((b) => b.name === w));
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.join(', ')}; known: ${BENCHMARKS.map((b) => b.name).join(', ')}`);
  process.exit(2);
}

const missed: Target[] = [];
const failed: string[] = [];
let checked = 0;
for (const bench of BENCHMARKS.filter((b) => wanted.length === 0 || wanted.includes(b.name))) {
  try {
    const { report, targets } = await bench.run();
    console.log(report);
    if (targets.length === 0) throw new Error('it checked no target');
    checked += targets.length;
    missed.push(...targets.filter((t) => !isMet(t)));
  } catch (err) {
    failed.push(bench.name);
    console.error(`benchmark ${bench.name} failed to run: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
  console.log('');
}

for (const t of missed) console.log(`MISSED ${t.benchmark}: ${formatTarget(t)}`);
for (const name of failed) console.log(`FAILED ${name}: did not run to the end (see its error above)`);
console.log(`${checked - missed.length} of ${checked} targets met` + (failed.length > 0 ? `; ${failed.length} benchmark(s) failed to run: ${failed.join(', ')}` : ''));
if (missed.length > 0 || failed.length > 0) process.exitCode = 1;
