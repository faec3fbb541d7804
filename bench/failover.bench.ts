import { startCluster, waitForHostsUp } from '../test/support/cluster.js';
import { coordinatorConfigOf } from '../test/support/configs.js';
import type { ManagedProcess } from '../test/support/processes.js';
import { waitFor, waitUntil } from '../test/support/wait.js';
import { formatTarget, type Target } from './targets.js';

export interface FailoverResult {
  trials: number;
  /** ha.leaseTtlMs as the cluster's coordinators ran with it (their config files, defaults included). */
  leaseTtlMs: number;
  /** ms from the leader's SIGKILL to the next submitted workload running, per trial. */
  samplesMs: number[];
}

interface Member {
  id: string;
  address: string;
  process: () => ManagedProcess;
  restart: () => Promise<void>;
}

/**
 * Coordinator failover: two coordinators on one NATS, an agent with the fake
 * driver (so the figure is the control plane's, not Docker's). Each trial
 * SIGKILLs whichever coordinator leads and times how long until a workload
 * submitted through the CLI's failover client is running; the killed one is
 * then started again as a follower.
 */
export async function benchFailover(trials = 10): Promise<FailoverResult> {
  const cluster = await startCluster({ agents: [{ drivers: { fake: { enabled: true } } }] });
  const members: Member[] = [
    { id: 'e2e', address: cluster.coordinatorAddress, process: () => cluster.coordinator, restart: () => cluster.restartCoordinator('SIGKILL') },
  ];
  const addStandby = async (n: number) => {
    const s = await cluster.addCoordinator(`standby-${n}`);
    const member: Member = {
      id: `standby-${n}`,
      address: s.address,
      process: () => s.process,
      restart: async () => {
        const replacement = await cluster.addCoordinator(`standby-${n}-r`);
        member.address = replacement.address;
        member.process = () => replacement.process;
      },
    };
    return member;
  };
  members.push(await addStandby(0));
  const samplesMs: number[] = [];
  let leaseTtlMs: number | undefined;
  try {
    await waitForHostsUp(cluster);
    for (let trial = 0; trial < trials; trial++) {
      const leader = await waitFor('a leader', async () => {
        for (const m of members) {
          const api = cluster.client(m.address, 1000);
          try {
            await api.setQueuePolicy('fcfs');
            return m;
          } catch {
            // a follower, or not up yet
          } finally {
            api.close();
          }
        }
        return undefined;
      }, { timeoutMs: 15_000 });
      // The TTL every trial is judged by: the coordinators' own configuration, and one value for all of them.
      const ttls = new Set(members.map((m) => coordinatorConfigOf(m.process()).ha.leaseTtlMs));
      if (ttls.size !== 1) throw new Error(`the coordinators run with different lease TTLs: ${[...ttls].join(', ')} ms`);
      leaseTtlMs ??= [...ttls][0]!;
      if (!ttls.has(leaseTtlMs)) throw new Error(`trial ${trial}: the lease TTL changed from ${leaseTtlMs} to ${[...ttls][0]} ms`);
      const client = cluster.client(members.map((m) => m.address).join(','), 30_000);
      leader.process().signal('SIGKILL');
      const killedAt = Date.now();
      const w = await client.submit({ request_id: `failover-${trial}`, spec: { name: `failover-${trial}`, kind: 'vm', vcpus: 1, memory_mib: 64 } });
      await waitUntil('the workload to run', async () => (await client.get(w.id)).state === 'running', { timeoutMs: 30_000, intervalMs: 20 });
      samplesMs.push(Date.now() - killedAt);
      client.close();
      await leader.process().waitExit();
      await leader.restart();
    }
  } finally {
    await cluster.stop();
  }
  if (leaseTtlMs === undefined) throw new Error('no failover trial ran');
  return { trials, leaseTtlMs, samplesMs };
}

const medianOf = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] ?? 0;

/**
 * A leader's death is covered within about one lease TTL plus one check (the
 * README's claim): the new leader takes the lease at most a TTL and one check
 * (TTL / 3) after the last renewal it saw, then places and creates. Limits:
 * median 1.5 × TTL, every trial 2 × TTL (a TTL and three checks).
 */
export function failoverTargets(r: FailoverResult): Target[] {
  const base = { benchmark: 'failover', bound: 'at most', unit: 'ms' } as const;
  return [
    { ...base, what: 'leader SIGKILL → next placement running, median', measured: medianOf(r.samplesMs), limit: 1.5 * r.leaseTtlMs, basis: `1.5 × ha.leaseTtlMs ${r.leaseTtlMs} ms` },
    { ...base, what: 'leader SIGKILL → next placement running, max', measured: Math.max(0, ...r.samplesMs), limit: 2 * r.leaseTtlMs, basis: `2 × ha.leaseTtlMs ${r.leaseTtlMs} ms` },
  ];
}

export function reportFailover(r: FailoverResult): string {
  const sorted = [...r.samplesMs].sort((a, b) => a - b);
  const median = sorted[Math.floor((sorted.length - 1) / 2)] ?? 0;
  const max = sorted[sorted.length - 1] ?? 0;
  return [
    `coordinator failover (${r.trials} trials, lease TTL ${r.leaseTtlMs} ms): leader SIGKILL → next placement running on the new leader`,
    `  median ${median} ms, max ${max} ms, ratio to the lease TTL: median ${(median / r.leaseTtlMs).toFixed(2)}x, max ${(max / r.leaseTtlMs).toFixed(2)}x`,
    `  samples: ${r.samplesMs.join(', ')} ms`,
    ...failoverTargets(r).map(formatTarget),
  ].join('\n');
}
