import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startCluster, waitForHostsUp, type TestCluster } from '../test/support/cluster.js';
import { formatTarget, type Target } from './targets.js';

/** Submits accepted durably per second, at least. */
const SUBMIT_TARGET = 1500;
/** Workloads reaching running per second, at least (and deletes carried out per second). */
const RUNNING_TARGET = 1000;
/** The last batch's submit rate over the first's, at least: per-submit cost must not grow with history. */
const FLATNESS_TARGET = 0.8;
const CLIENTS = Number(process.env.BENCH_THROUGHPUT_CLIENTS ?? 16);

export interface BatchRate {
  /** Workloads ever submitted when the batch began. */
  before: number;
  submitsPerSecond: number;
  runningPerSecond: number;
}

export interface ThroughputResult {
  clients: number;
  /** Raw JetStream KV puts on the same nats-server, one at a time and `clients` in flight. */
  rawSequentialPerSecond: number;
  rawConcurrentPerSecond: number;
  batches: BatchRate[];
  deleteRequestsPerSecond: number;
  deletedPerSecond: number;
  /** Set when the coordinator ran with --cpu-prof: where the profile went. */
  profileDir?: string;
}

/** Runs `count` calls of `op`, `clients` at a time; returns calls per second. */
async function rate(count: number, clients: number, op: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const startedAt = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < count) await op(next++);
    }),
  );
  return (count * 1000) / (performance.now() - startedAt);
}

async function rawKvPuts(nc: NatsConnection, count: number, clients: number): Promise<{ sequential: number; concurrent: number }> {
  const kv = await new Kvm(nc).create(`bench_raw_${process.pid}`, { history: 1 });
  const value = JSON.stringify({ id: 'x'.repeat(40), spec: { name: 'bench', kind: 'vm', vcpus: 0.01, memory_mib: 8 }, state: 'pending', message: 'waiting for placement' });
  try {
    const sequential = await rate(count, 1, (i) => kv.put(`seq.${i}`, value));
    const concurrent = await rate(count, clients, (i) => kv.put(`par.${i}`, value));
    return { sequential, concurrent };
  } finally {
    await kv.destroy();
  }
}

/** Counts workload events seen on plain NATS: how many reached running, and how many were deleted. */
function watchOutcomes(nc: NatsConnection): { running: () => number; deleted: () => number; stop: () => void } {
  let running = 0;
  let deleted = 0;
  const sub = nc.subscribe('virtfleet.events.workload.>', {
    callback: (err, msg) => {
      if (err) return;
      const e = msg.json<{ type: string; data: { to?: string } }>();
      if (e.type === 'io.virtfleet.workload.state_changed' && e.data.to === 'running') running++;
      else if (e.type === 'io.virtfleet.workload.deleted') deleted++;
    },
  });
  return { running: () => running, deleted: () => deleted, stop: () => sub.unsubscribe() };
}

async function until(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Throughput of the operator API on one simulated host (fake driver) with a
 * real nats-server: `batches` batches of `batchSize` submits from CLIENTS
 * concurrent clients, each timed to accepted and to running, then every
 * workload deleted. Raw JetStream KV puts on the same server are the baseline.
 */
export async function benchThroughput(batches: number, batchSize: number, options: { profile?: boolean } = {}): Promise<ThroughputResult> {
  const profileDir = options.profile ? mkdtempSync(join(tmpdir(), 'virtfleet-cpuprof-')) : undefined;
  const cluster: TestCluster = await startCluster({
    agents: [
      {
        drivers: { fake: { enabled: true, vcpus: 1_000_000, memoryMiB: 1_000_000_000, concurrency: 256 } },
        telemetryIntervalMs: 1000,
        logLevel: 'info',
        nodeArgs: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}/agent`] : [],
      },
    ],
    coordinatorLogLevel: 'info',
    coordinatorNodeArgs: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
  });
  const nc = await connect({ servers: cluster.nats.url });
  try {
    await waitForHostsUp(cluster);
    const raw = await rawKvPuts(nc, Math.min(batchSize, 5000), CLIENTS);
    const outcomes = watchOutcomes(nc);
    const ids: string[] = [];
    const rates: BatchRate[] = [];
    for (let b = 0; b < batches; b++) {
      const before = ids.length;
      const startedAt = performance.now();
      const submitsPerSecond = await rate(batchSize, CLIENTS, async (i) => {
        const name = `tp-${before + i}`;
        const w = await cluster.api.submit({ request_id: name, spec: { name, kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.01, memory_mib: 8, failover: 'reschedule' } });
        ids.push(w.id);
      });
      await until(`batch ${b} running`, () => outcomes.running() >= before + batchSize, 600_000);
      rates.push({ before, submitsPerSecond, runningPerSecond: (batchSize * 1000) / (performance.now() - startedAt) });
    }
    const deleteStartedAt = performance.now();
    const deleteRequestsPerSecond = await rate(ids.length, CLIENTS, (i) => cluster.api.act('DeleteWorkload', { id: ids[i]!, request_id: `del-${i}` }));
    await until('every workload deleted', () => outcomes.deleted() >= ids.length, 600_000);
    const deletedPerSecond = (ids.length * 1000) / (performance.now() - deleteStartedAt);
    outcomes.stop();
    return { clients: CLIENTS, rawSequentialPerSecond: raw.sequential, rawConcurrentPerSecond: raw.concurrent, batches: rates, deleteRequestsPerSecond, deletedPerSecond, profileDir };
  } finally {
    await nc.close();
    // SIGTERM lets a profiling coordinator write its profile.
    await cluster.stop();
  }
}

export function throughputTargets(r: ThroughputResult): Target[] {
  const benchmark = 'throughput';
  const first = r.batches[0]!;
  const last = r.batches.at(-1)!;
  const minOf = (f: (b: BatchRate) => number) => Math.min(...r.batches.map(f));
  return [
    { benchmark, what: 'submits accepted durably per second (slowest batch)', measured: Math.round(minOf((b) => b.submitsPerSecond)), bound: 'at least', limit: SUBMIT_TARGET, unit: '/s', basis: `issue 9, ${r.clients} clients` },
    { benchmark, what: 'workloads reaching running per second (slowest batch)', measured: Math.round(minOf((b) => b.runningPerSecond)), bound: 'at least', limit: RUNNING_TARGET, unit: '/s', basis: 'issue 9, fake-driver host' },
    { benchmark, what: 'deletes carried out per second', measured: Math.round(r.deletedPerSecond), bound: 'at least', limit: RUNNING_TARGET, unit: '/s', basis: 'issue 9: deletes at the rate of creates' },
    {
      benchmark,
      what: `submit rate after ${last.before.toLocaleString('en-US')} workloads / after ${first.before}`,
      measured: last.submitsPerSecond / first.submitsPerSecond,
      bound: 'at least',
      limit: FLATNESS_TARGET,
      unit: '×',
      basis: 'issue 9: flat within 20% as history grows',
    },
  ];
}

export function reportThroughput(r: ThroughputResult): string {
  const f = (n: number) => Math.round(n).toLocaleString('en-US');
  return [
    `throughput: one fake-driver host, real nats-server, ${r.clients} clients`,
    `  raw JetStream KV puts: ${f(r.rawSequentialPerSecond)}/s one at a time, ${f(r.rawConcurrentPerSecond)}/s with ${r.clients} in flight`,
    ...r.batches.map(
      (b) =>
        `  after ${f(b.before)} workloads: ${f(b.submitsPerSecond)} submits/s (${(b.submitsPerSecond / r.rawConcurrentPerSecond).toFixed(2)}× raw KV puts in flight), ${f(b.runningPerSecond)} running/s`,
    ),
    `  deletes: ${f(r.deleteRequestsPerSecond)} requests/s, ${f(r.deletedPerSecond)} carried out/s`,
    ...(r.profileDir ? [`  coordinator CPU profile in ${r.profileDir}`] : []),
    ...throughputTargets(r).map((t) => `  ${formatTarget(t)}`),
  ].join('\n');
}
