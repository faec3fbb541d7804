import { spawn } from 'node:child_process';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { Msg } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, type pb } from '@virtfleet/shared';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { CLI_ENTRY } from '../support/processes.js';
import { waitFor, waitUntil } from '../support/wait.js';
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
  const cli = (...args: string[]) => cluster.cli(...args);
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

    // The first event in stream order whose own time is at or after it: times need not rise with the sequence
    // (an audit event made after a state change may be stored before it).
    const since = all[all.length - 1]!.time;
    const byTime = await events('--since', since);
    expect(byTime[0]?.id).toBe(all.find((e) => Date.parse(e.time) >= Date.parse(since))?.id);

    const hostOnly = await events('--type', 'io.virtfleet.host');
    expect(hostOnly.length).toBeGreaterThan(0);
    expect(hostOnly.every((e) => e.type.startsWith('io.virtfleet.host'))).toBe(true);
  });

  it('follows new events as they happen, from a sequence', async () => {
    const last = await events();
    const from = Number(last[last.length - 1]!.sequence) + 1;
    const child = spawn(process.execPath, [CLI_ENTRY, '--coordinator', cluster.coordinatorAddress, 'events', '--follow', '--since', String(from), '-o', 'json'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...cluster.cliEnv } });
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

  it('reads --since 0 as from the start, like --since 1', async () => {
    const all = await events();
    expect(all.length).toBeGreaterThan(0);
    const ids = all.map((e) => e.id);
    expect((await events('--since', '0')).map((e) => e.id).slice(0, ids.length)).toEqual(ids);
    expect((await events('--since', '1')).map((e) => e.id).slice(0, ids.length)).toEqual(ids);
  });

  it.each([
    ['a number that is not a sequence', '85140.5'],
    ['a time without a zone', '2025-01-02T15:04:05'],
    ['a negative sequence', '-3'],
  ])('exits 2 naming --since for %s, without asking the coordinator', async (_name, since) => {
    const r = await cli('events', '--since', since);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toBe(`error: --since: must be a sequence number or an RFC 3339 time such as 2025-01-02T15:04:05Z, not "${since}"\n`);
  });

  it('answers INVALID_ARGUMENT naming since_time or since_seq for a bad start', async () => {
    const watch = (req: { since_seq?: string; since_time?: string }) => cluster.api.streamEvents({ ...req }, () => undefined, new AbortController().signal);
    for (const since_time of ['85140.5', '+085140-01-01T00:00:00.000Z', '2025-01-02T15:04:05', 'yesterday']) {
      await expect(watch({ since_time }), since_time).rejects.toMatchObject({ constructor: InvalidArgumentError, field: 'since_time' });
    }
    await expect(watch({ since_seq: '18446744073709551615' })).rejects.toMatchObject({ constructor: InvalidArgumentError, field: 'since_seq' });
    await expect(watch({ since_seq: '3', since_time: '2025-01-02T15:04:05Z' })).rejects.toMatchObject({ constructor: InvalidArgumentError, field: 'since_time' });
  });

  it('takes the short type the table prints, host.cordoned, in the CLI and in WatchEvents', async () => {
    const hostId = cluster.agents[0]!.hostId;
    await cluster.api.cordon(hostId, true);
    await cluster.api.cordon(hostId, false);
    const cordons = await waitFor('the cordon to be logged', async () => {
      const list = await events('--type', 'host.cordoned');
      return list.length > 0 ? list : undefined;
    });
    expect(cordons.every((e) => e.type === 'io.virtfleet.host.cordoned' && e.subject === hostId)).toBe(true);
    expect((await events('--type', 'io.virtfleet.host.cordoned')).map((e) => e.id)).toEqual(cordons.map((e) => e.id));

    const viaApi: pb.Event__Output[] = [];
    await cluster.api.streamEvents({ type_prefix: 'host.cordoned', from_start: true }, (e) => viaApi.push(e), new AbortController().signal);
    expect(viaApi.map((e) => e.id)).toEqual(cordons.map((e) => e.id));

    const typo = await cli('events', '--type', 'host.cordonned');
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/^error: --type: "host.cordonned" matches no event type; types are .*host\.cordoned/);
  });

  it('stops quietly with exit 0, cancelling its stream, when the reader of its output goes away (virtfleet events --follow | head -3)', async () => {
    const hostId = cluster.agents[0]!.hostId;
    for (const cordon of [true, false, true, false]) await cluster.api.cordon(hostId, cordon);
    const child = spawn(process.execPath, [CLI_ENTRY, '--coordinator', cluster.coordinatorAddress, 'events', '--follow', '--since', '1'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...cluster.cliEnv } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let lines = 0;
    child.stdout.on('data', (d: Buffer) => (lines += d.toString().split('\n').length - 1));
    await waitUntil('three events read', () => lines >= 3);
    child.stdout.destroy();
    // Something new to write into the closed pipe.
    await cluster.api.cordon(hostId, true);
    await cluster.api.cordon(hostId, false);
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running after 10 s'), 10_000))]);
    child.kill('SIGKILL');
    expect(code, stderr).toBe(0);
    expect(stderr).toBe('');
  });

  it('gives plain NATS subscribers each stored event once, with the sequence WatchEvents gives it', async () => {
    const nc = await cluster.nats.connect();
    const plain: Msg[] = [];
    try {
      nc.subscribe('virtfleet.events.>', {
        callback: (_err, msg) => {
          plain.push(msg);
        },
      });
      await nc.flush();
      const hostId = cluster.agents[0]!.hostId;
      await cluster.api.cordon(hostId, true);
      await cluster.api.cordon(hostId, false);
      const seen = await waitFor('both cordon events on plain NATS', () => {
        const list = plain.map((m) => ({ subject: m.subject, event: m.json<EventJson & { sequence?: number }>() }));
        return list.filter((p) => p.event.type.startsWith('io.virtfleet.host.') && p.event.subject === hostId && /cordoned/.test(p.event.type)).length >= 2 ? list : undefined;
      });
      const stored = new Map((await events()).map((e) => [e.id, Number(e.sequence)]));
      for (const { subject, event } of seen) {
        expect(stored.get(event.id), `${event.type} on ${subject} is in the stream`).toBeDefined();
        expect(event.sequence, `${event.type} on ${subject} carries the stream's sequence`).toBe(stored.get(event.id));
        expect(subject).toBe(`virtfleet.events.${event.type.split('.')[2]}.${event.subject}`);
      }
      expect(new Set(seen.map((p) => p.event.id)).size, 'each event once').toBe(seen.length);
      const sequences = seen.map((p) => p.event.sequence!);
      expect(sequences).toEqual([...sequences].sort((a, b) => a - b));
    } finally {
      await nc.close();
    }
  });

  it('--since TIME starts at the first event whose own time is at or after it, whenever the stream stored it', async () => {
    // Two events written straight into the stream, as a coordinator would: one stored a minute after its time
    // (its outbox waited out a NATS outage), one stored 20 s before its time (a coordinator clock running ahead).
    const nc = await cluster.nats.connect();
    const now = Date.now();
    const late = { id: 'late-1', time: new Date(now - 60_000).toISOString() };
    const early = { id: 'early-1', time: new Date(now + 20_000).toISOString() };
    try {
      const jsm = await jetstreamManager(nc);
      const subject = (await jsm.streams.info('VIRTFLEET_EVENTS')).config.subjects[0]!.replace('>', 'workload.clock-test');
      const js = jetstream(nc);
      for (const e of [late, early])
        await js.publish(subject, JSON.stringify({ specversion: '1.0', source: 'e2e', type: 'io.virtfleet.workload.drift', subject: 'clock-test', datacontenttype: 'application/json', data: {}, ...e }));
    } finally {
      await nc.close();
    }
    const ids = (list: EventJson[]) => list.filter((e) => e.subject === 'clock-test').map((e) => e.id);
    expect(ids(await events('--since', new Date(now - 30_000).toISOString()))).toEqual(['early-1']);
    expect(ids(await events('--since', new Date(now + 10_000).toISOString()))).toEqual(['early-1']);
    expect(ids(await events('--since', late.time))).toEqual(['late-1', 'early-1']);
    // Sub-millisecond precision counts: a microsecond after its time excludes it.
    expect(ids(await events('--since', late.time.replace('Z', '001Z')))).toEqual(['early-1']);

    // For every event, exactly those at or after its time.
    const all = await events();
    for (const pick of [all[1]!, all[Math.floor(all.length / 2)]!, all[all.length - 3]!]) {
      const want = all.filter((e) => Date.parse(e.time) >= Date.parse(pick.time)).map((e) => e.id);
      expect((await events('--since', pick.time)).map((e) => e.id), `--since ${pick.time}`).toEqual(want);
    }
  });
});
