import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentClient, coordinatorConfigSchema } from '@virtfleet/coordinator';
import { parseWorkloadSpec } from '@virtfleet/shared';
import { startNatsServer } from '../test/support/nats-server.js';
import { CLI_ENTRY, freePort, spawnProcess, waitForPort } from '../test/support/processes.js';
import { startEchoBaseline } from './echo.js';
import { fmt, measure, summarise, type Summary } from './stats.js';
import { DEFAULTS_ONLY, formatTarget, type Target } from './targets.js';

/** The dispatch settings a coordinator runs with when its config sets none: its config schema's defaults. */
const DISPATCH_DEFAULT = coordinatorConfigSchema.parse(DEFAULTS_ONLY).dispatch;

export interface DispatchResult {
  baseline: Summary;
  ping: Summary;
  noopCommand: Summary;
}

/**
 * Coordinator → agent round trip against a bare grpc-js echo, both servers in
 * their own processes on loopback, measured in the same run.
 *  - ping: AgentClient.ping, the coordinator's dispatch path (deadline, retry policy, error mapping).
 *  - noop command: StartWorkload on a running workload with a fresh command id each time,
 *    so it passes validation, the ledger (an fsync'd append) and the per-workload lock.
 */
export async function benchDispatch(n: number): Promise<DispatchResult> {
  const echo = await startEchoBaseline();
  const payload = Buffer.alloc(16, 1);

  const nats = await startNatsServer();
  const dir = mkdtempSync(join(tmpdir(), 'virtfleet-bench-'));
  const port = await freePort();
  const config = join(dir, 'agent.json');
  writeFileSync(
    config,
    JSON.stringify({ hostId: 'bench', stateDir: join(dir, 'state'), grpc: { listen: `127.0.0.1:${port}`, insecure: true }, http: { listen: '127.0.0.1:0' }, nats: await nats.daemonConfig('agent', 'bench'), drivers: { fake: { enabled: true } } }),
  );
  const agent = spawnProcess('agent', process.execPath, [CLI_ENTRY, 'agent', '--config', config], { VIRTFLEET_LOG_LEVEL: 'warn' });
  try {
    await waitForPort(port);
    const client = new AgentClient('bench', `127.0.0.1:${port}`, { deadlineMs: DISPATCH_DEFAULT.deadlineMs, maxAttempts: DISPATCH_DEFAULT.maxAttempts });
    // No coordinator runs here to create the host lease bucket, which fence-first VMs need.
    const spec = parseWorkloadSpec({ name: 'bench', kind: 'vm', vcpus: 1, memory_mib: 64, failover: 'reschedule' });
    await client.create('bench-create', 'bench-0001', spec);

    // Interleave rounds so machine noise hits all three alike.
    const rounds = 5;
    const per = Math.ceil(n / rounds);
    const baseline: bigint[] = [];
    const ping: bigint[] = [];
    const noop: bigint[] = [];
    let command = 0;
    for (let r = 0; r < rounds; r++) {
      baseline.push(...(await measure(per, r === 0 ? 200 : 20, echo.call)));
      ping.push(...(await measure(per, r === 0 ? 200 : 20, () => client.ping(payload))));
      noop.push(...(await measure(per, r === 0 ? 50 : 5, () => client.act('start', `bench-start-${command++}`, 'bench-0001'))));
    }
    client.close();
    return { baseline: summarise(baseline), ping: summarise(ping), noopCommand: summarise(noop) };
  } finally {
    echo.stop();
    await agent.stop();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Medians against the bare echo measured in the same run (p99s on a shared
 * machine are reported, not judged):
 * - Ping at most 1.5 ×: the dispatch path's deadline, retry policy and error
 *   mapping must cost little beside the round trip itself.
 * - no-op Start at most 8 ×: it adds validation, the per-workload lock and an
 *   fsync'd ledger append, which dominates (about 5 × here).
 */
export function dispatchTargets(r: DispatchResult): Target[] {
  const base = { benchmark: 'dispatch', bound: 'at most', unit: '× echo p50' } as const;
  const ratio = (s: Summary) => Number((s.p50 / r.baseline.p50).toFixed(2));
  return [
    { ...base, what: 'coordinator→agent Ping p50', measured: ratio(r.ping), limit: 1.5, basis: `echo p50 ${fmt(r.baseline.p50)}` },
    { ...base, what: 'coordinator→agent no-op Start p50', measured: ratio(r.noopCommand), limit: 8, basis: `echo p50 ${fmt(r.baseline.p50)}; fsync-bound` },
  ];
}

export function reportDispatch(r: DispatchResult): string {
  const row = (name: string, s: Summary) =>
    `${name.padEnd(34)} p50 ${fmt(s.p50).padStart(9)}  p99 ${fmt(s.p99).padStart(9)}  ratio p50 ${(s.p50 / r.baseline.p50).toFixed(2)}x  p99 ${(s.p99 / r.baseline.p99).toFixed(2)}x`;
  return [
    `dispatch round trip (n=${r.baseline.n} each, loopback, separate processes)`,
    row('raw grpc-js echo (baseline)', r.baseline),
    row('coordinator→agent Ping', r.ping),
    row('coordinator→agent no-op Start', r.noopCommand),
    ...dispatchTargets(r).map(formatTarget),
  ].join('\n');
}
