import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { CLI_ENTRY, runCli } from '../support/processes.js';
import { waitFor } from '../support/wait.js';
import { removeContainersOf } from '../support/cleanup.js';


interface EventJson {
  id: string;
  type: string;
  subject: string;
  time: string;
  sequence: string;
  data: Record<string, unknown>;
}

describe('durable, replayable events on JetStream', () => {
  let cluster: TestCluster;
  const cli = (...args: string[]) => runCli(['--coordinator', cluster.coordinatorAddress, ...args]);
  const events = async (...args: string[]): Promise<EventJson[]> => {
    const r = await cli('events', '-o', 'json', ...args);
    if (r.code !== 0) throw new Error(`events ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as EventJson);
  };

  beforeAll(async () => {
    cluster = await startCluster({ agents: [{ drivers: { docker: { enabled: true } } }] });
    await waitForHostsUp(cluster);
  });
  afterAll(async () => {
    const hostId = cluster?.agents[0]?.hostId;
    await cluster?.stop();
    if (hostId) await removeContainersOf([hostId]);
  });

  it('numbers events without gaps, and replays them after a coordinator SIGKILL and a NATS restart', async () => {
    const w = await cluster.api.submit({ request_id: 'events-1', spec: { name: 'evented', kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.1, memory_mib: 16, command: ['/bin/sleep', '1000'] } });
    await waitForState(cluster, w.id, 'running');
    await cluster.api.act('PauseWorkload', { id: w.id });

    const all = await waitFor('the pause to be logged', async () => {
      const list = await events();
      return list.some((e) => e.subject === w.id && e.data.to === 'paused') ? list : undefined;
    });
    const sequences = all.map((e) => Number(e.sequence));
    expect(sequences).toEqual(sequences.map((_, i) => i + 1));
    expect(all[0]?.type).toBe('io.virtfleet.host.up');
    const mine = all.filter((e) => e.subject === w.id).map((e) => e.type);
    expect(mine.slice(0, 2)).toEqual(['io.virtfleet.workload.submitted', 'io.virtfleet.workload.placed']);
    const lastSeq = sequences[sequences.length - 1]!;

    await cluster.restartCoordinator('SIGKILL');
    await cluster.nats.restart();
    await waitForHostsUp(cluster, 15_000);

    const replayed = await events();
    expect(replayed.slice(0, all.length).map((e) => e.id)).toEqual(all.map((e) => e.id));
    // The restarted coordinator's first events (host.up) reach the stream once its outbox has NATS again.
    const resumed = await waitFor('events after the restart', async () => {
      const list = await events('--since', String(lastSeq + 1));
      return list.length > 0 ? list : undefined;
    });
    expect(Number(resumed[0]!.sequence)).toBe(lastSeq + 1);
    expect(resumed.map((e) => e.id)).not.toContain(all[all.length - 1]!.id);

    const byTime = await events('--since', all[all.length - 1]!.time);
    expect(byTime[0]?.id).toBe(all.find((e) => e.time === all[all.length - 1]!.time)?.id);

    const hostOnly = await events('--type', 'io.virtfleet.host');
    expect(hostOnly.length).toBeGreaterThan(0);
    expect(hostOnly.every((e) => e.type.startsWith('io.virtfleet.host'))).toBe(true);
  });

  it('follows new events as they happen, from a sequence', async () => {
    const last = await events();
    const from = Number(last[last.length - 1]!.sequence) + 1;
    const child = spawn(process.execPath, [CLI_ENTRY, '--coordinator', cluster.coordinatorAddress, 'events', '--follow', '--since', String(from), '-o', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const w = await cluster.api.submit({ request_id: 'events-2', spec: { name: 'followed', kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.1, memory_mib: 16, command: ['/bin/sleep', '1000'] } });
      const lines = await waitFor('the new workload to stream', () => {
        const parsed = out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as EventJson);
        return parsed.some((e) => e.subject === w.id && e.type === 'io.virtfleet.workload.placed') ? parsed : undefined;
      });
      expect(Number(lines[0]!.sequence)).toBe(from);
      const seqs = lines.map((e) => Number(e.sequence));
      expect(seqs).toEqual(seqs.map((_, i) => from + i));
    } finally {
      child.kill('SIGINT');
    }
  });

  it('rejects a malformed --since', async () => {
    const r = await cli('events', '--since', 'yesterday-ish');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--since: must be a sequence number or an RFC 3339 time');
  });
});
