import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { removeContainersOf } from '../support/cleanup.js';
import { CLI_ENTRY, spawnProcess, type ManagedProcess } from '../support/processes.js';
import { waitUntil } from '../support/wait.js';
import { TEST_IMAGE } from '../support/workloads.js';

/** `virtfleet workload logs` through the coordinator and a real agent, from containers in the machine's Docker Engine. */
describe('workload logs: container output, streamed agent → coordinator → CLI', () => {
  let cluster: TestCluster;
  let id: string;
  const followers: ManagedProcess[] = [];
  const cli = (...args: string[]) => cluster.cli(...args);

  beforeAll(async () => {
    cluster = await startCluster();
    await cluster.addAgent();
    await waitForHostsUp(cluster);
    // Ten numbered lines on stdout, one on stderr, then a line every 200 ms.
    const script = 'for i in 1 2 3 4 5 6 7 8 9 10; do echo "line $i"; done; echo "trouble" >&2; n=0; while true; do n=$((n+1)); echo "tick $n"; sleep 0.2; done';
    const w = await cluster.api.submit({ request_id: 'logs-talker', spec: { name: 'talker', kind: 'container', image: TEST_IMAGE, vcpus: 0.2, memory_mib: 32, command: ['/bin/sh', '-c', script] } });
    id = w.id;
    await waitForState(cluster, id, 'running');
    await waitUntil('its first ticks', async () => (await cli('workload', 'logs', 'talker')).stdout.includes('tick 2'), { timeoutMs: 30_000 });
  }, 120_000);
  afterAll(async () => {
    for (const f of followers) await f.stop('SIGKILL');
    const hostId = cluster?.agents[0]?.hostId;
    await cluster?.stop();
    if (hostId) await removeContainersOf([hostId]);
  });

  it('prints stdout to stdout and stderr to stderr, in order, by name or id', async () => {
    for (const ref of ['talker', id]) {
      const { code, stdout, stderr } = await cli('workload', 'logs', ref);
      expect(code, stderr).toBe(0);
      expect(stdout.startsWith(Array.from({ length: 10 }, (_, i) => `line ${i + 1}\n`).join(''))).toBe(true);
      expect(stdout).toMatch(/tick 1\n/);
      expect(stderr).toBe('trouble\n');
    }
  });

  it('--tail starts that many lines before the end', async () => {
    const { stdout } = await cli('workload', 'logs', 'talker', '--tail', '2');
    expect(stdout.trim().split('\n')).toEqual([expect.stringMatching(/^tick \d+$/), expect.stringMatching(/^tick \d+$/)]);
    expect(stdout).not.toContain('line 1\n');
    const none = await cli('workload', 'logs', 'talker', '--tail', '0');
    expect(none.stdout + none.stderr).toBe('');
  });

  it('--since leaves out what was written before', async () => {
    const future = new Date(Date.now() + 3_600_000).toISOString();
    const { code, stdout } = await cli('workload', 'logs', 'talker', '--since', future);
    expect(code).toBe(0);
    expect(stdout).toBe('');
  });

  it('--follow streams new lines until interrupted', async () => {
    const follower = spawnProcess('logs-follow', process.execPath, [CLI_ENTRY, '--coordinator', cluster.coordinatorAddress, 'workload', 'logs', 'talker', '--follow', '--tail', '1'], cluster.cliEnv);
    followers.push(follower);
    const tickOf = (text: string) => Math.max(0, ...[...text.matchAll(/tick (\d+)/g)].map((m) => Number(m[1])));
    await waitUntil('a first tick', () => tickOf(follower.tail(5)) > 0, { timeoutMs: 20_000 });
    const first = tickOf(follower.tail(5));
    await waitUntil('five more ticks', () => tickOf(follower.tail(5)) >= first + 5, { timeoutMs: 20_000 });
    follower.signal('SIGINT');
    expect(await follower.waitExit()).toBe(0);
  }, 60_000);

  it('still shows the log of a stopped workload', async () => {
    await cluster.api.act('StopWorkload', { id, request_id: 'logs-stop', force: true });
    await waitForState(cluster, id, 'stopped');
    const { code, stdout } = await cli('workload', 'logs', 'talker', '--tail', '3');
    expect(code).toBe(0);
    expect(stdout).toMatch(/tick \d+\n$/);
  });

  it.each([
    { args: ['nope'], code: 3, why: /not found/ },
    { args: ['talker', '--tail', '-1'], code: 2, why: /--tail/ },
    { args: ['talker', '--since', 'yesterday'], code: 2, why: /--since: must be an RFC 3339 time/ },
  ])('refuses $args with exit $code', async ({ args, code, why }) => {
    const r = await cli('workload', 'logs', ...args);
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(why);
  });

  it('says a pending workload has no log yet', async () => {
    const w = await cluster.api.submit({ request_id: 'logs-huge', spec: { name: 'huge', kind: 'container', image: TEST_IMAGE, vcpus: 1000, memory_mib: 32 } });
    const r = await cli('workload', 'logs', w.id);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/on no host yet \(pending\)/);
  });
});
