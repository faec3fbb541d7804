import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { coordinatorConfigOf } from '../support/configs.js';
import { waitFor, waitUntil } from '../support/wait.js';
import { retainedEvents, sleeperContainer } from '../support/workloads.js';

/** The fake driver's simulated host: nothing of it outlives the agent process. */
const FAKE = { fake: { enabled: true, vcpus: 8, memoryMiB: 4096 } };
/** Short enough to watch a host being forgotten, long enough that `host rm` comes first for the hosts it removes. */
const FORGET_DOWN_AFTER_MS = 15_000;

describe('host drain, undrain and rm, and forgetting down hosts (fake-driver hosts)', () => {
  let cluster: TestCluster;
  /** The host drained: only it matches the workloads' host_selector, so no other host can take them. */
  let drained: string;
  let spare: string;
  const workloadIds: string[] = [];
  const cli = (...args: string[]) => cluster.cli(...args);
  const hostView = async (id: string) => (await cluster.api.hosts()).hosts.find((h) => h.id === id);

  beforeAll(async () => {
    cluster = await startCluster({
      agents: [
        { drivers: FAKE, labels: { role: 'drain-me' }, extra: { reserved: { vcpus: 0, memoryMiB: 0, diskGiB: 0 } } },
        { drivers: FAKE, extra: { reserved: { vcpus: 0, memoryMiB: 0, diskGiB: 0 } } },
      ],
      coordinatorExtra: { hosts: { ttlMs: 3000, forgetDownAfterMs: FORGET_DOWN_AFTER_MS } },
    });
    [drained, spare] = cluster.agents.map((a) => a.hostId) as [string, string];
    await waitForHostsUp(cluster);
    for (const [name, extra] of [
      ['drain-pinned', {}],
      ['drain-never', { restart_policy: 'never' }],
    ] as const) {
      const w = await cluster.api.submit({ request_id: name, spec: sleeperContainer(name, { host_selector: { role: 'drain-me' }, ...extra }) });
      await waitForState(cluster, w.id, 'running');
      workloadIds.push(w.id);
    }
  }, 120_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('reports every workload that cannot move as left (restart_policy never among them), exits 5 listing them, and leaves the host cordoned', async () => {
    const r = await cli('host', 'drain', drained, '--parallel', '2', '--deadline', '5m');
    expect(r.code, `${r.stdout}\n${r.stderr}\n${cluster.logs()}`).toBe(5);
    // No other host matches their selector (no host fits), or the migrator refuses them.
    expect(r.stdout).toMatch(/drain-pinned \(container, drain-pinned-[0-9a-f]+\): left: (cannot move|no host fits): /);
    expect(r.stdout).toMatch(/drain-never \(container, drain-never-[0-9a-f]+\): left: restart_policy never/);
    expect(r.stdout).toMatch(new RegExp(`${drained}: incomplete: 2 workload\\(s\\) left on host ${drained}, which stays cordoned`));
    expect(r.stderr).toMatch(new RegExp(`^error: drain of ${drained} left 2 workload\\(s\\) on it`));

    const drain = await cluster.api.hostDrain(drained);
    expect(drain).toMatchObject({ host_id: drained, state: 'incomplete', mode: 'auto', parallel: 2, moved: 0, left: 2, moving: 0, waiting: 0 });
    expect(drain.deadline).not.toBe('');
    expect(Object.fromEntries(drain.workloads.map((w) => [w.name, w.outcome]))).toEqual({ 'drain-pinned': expect.stringMatching(/^(refused|no_host)$/), 'drain-never': 'never' });
    expect((await hostView(drained))?.cordoned).toBe(true);
    for (const id of workloadIds) expect(await cluster.api.get(id)).toMatchObject({ host_id: drained, state: 'running' });

    const events = (await retainedEvents(cluster.api)).filter((e) => e.subject === drained && e.type.startsWith('io.virtfleet.host.drain'));
    expect(events.map((e) => e.type)).toEqual(['io.virtfleet.host.drain_started', 'io.virtfleet.host.drain_progress', 'io.virtfleet.host.drain_progress', 'io.virtfleet.host.drain_ended']);
    expect(events.at(-1)?.data).toMatchObject({ drain_id: drain.id, state: 'incomplete', total: 2, moved: 0 });
  }, 120_000);

  it('keeps the drain record across a change of leader: after the coordinator is killed and restarted, drain-status reports it and the host is still cordoned', async () => {
    const before = await cluster.api.hostDrain(drained);
    await cluster.restartCoordinator('SIGKILL');
    const status = await waitFor('drain-status from the restarted coordinator', async () => {
      const r = await cli('host', 'drain-status', drained, '-o', 'json');
      return r.code === 0 ? r : undefined;
    }, { timeoutMs: 30_000 });
    expect(JSON.parse(status.stdout)).toEqual(before);
    await waitUntil(`host ${drained} to be listed again, cordoned`, async () => (await hostView(drained))?.cordoned === true, { timeoutMs: 20_000 });
  }, 60_000);

  it('undrain makes the host schedulable again; a host with no workloads drains at once and exits 0', async () => {
    const undrain = await cli('host', 'undrain', drained);
    expect(undrain.code, undrain.stderr).toBe(0);
    expect(undrain.stdout).toMatch(new RegExp(`^${drained} schedulable; drain drain-[0-9a-f]+ incomplete: `));
    expect((await hostView(drained))?.cordoned).toBe(false);

    const empty = await cli('host', 'drain', spare, '-o', 'json');
    expect(empty.code, empty.stderr).toBe(0);
    expect(JSON.parse(empty.stdout)).toMatchObject({ host_id: spare, state: 'drained', workloads: [] });
    expect((await hostView(spare))?.cordoned).toBe(true);
    expect((await cli('host', 'undrain', spare)).code).toBe(0);
    expect((await hostView(spare))?.cordoned).toBe(false);
    const types = (await retainedEvents(cluster.api)).filter((e) => e.type === 'io.virtfleet.host.undrained').map((e) => e.subject);
    expect(types).toEqual([drained, spare]);
  }, 60_000);

  it('host rm refuses a host that is up, and a down one that holds workloads, naming them; it forgets a down, empty one', async () => {
    const up = await cli('host', 'rm', drained);
    expect([up.code, up.stderr]).toEqual([5, expect.stringMatching(new RegExp(`host ${drained} is up: .*only a host that is down can be removed`))]);

    await cluster.agents[0]!.process.stop('SIGTERM');
    await waitUntil(`host ${drained} to be down`, async () => (await hostView(drained))?.status === 'down', { timeoutMs: 20_000 });
    const busy = await cli('host', 'rm', drained);
    expect(busy.code, busy.stderr).toBe(5);
    expect(busy.stderr).toMatch(new RegExp(`host ${drained} holds 2 workload\\(s\\): drain-pinned \\(drain-pinned-[0-9a-f]+, unknown\\), drain-never \\(drain-never-[0-9a-f]+, unknown\\); move or delete them first`));
    expect((await hostView(drained))?.status, 'a refused rm changes nothing').toBe('down');

    // A delete of a workload on a down host is recorded at once.
    for (const id of workloadIds) await cluster.api.act('DeleteWorkload', { id });
    const removed = await cli('host', 'rm', drained);
    expect([removed.code, removed.stdout.trim()], removed.stderr).toEqual([0, `${drained} forgotten`]);
    expect(await hostView(drained)).toBeUndefined();
    const forgotten = (await retainedEvents(cluster.api)).filter((e) => e.type === 'io.virtfleet.host.forgotten');
    expect(forgotten.map((e) => [e.subject, e.data.by])).toEqual([[drained, 'operator']]);
    expect((await cli('host', 'rm', drained)).code, 'a host nothing knows any more is not found').toBe(3);
  }, 60_000);

  it('forgets a host down and empty for hosts.forgetDownAfterMs; it registers again once it reports', async () => {
    const config = coordinatorConfigOf(cluster.coordinator);
    expect(config.hosts.forgetDownAfterMs).toBe(FORGET_DOWN_AFTER_MS);
    const agent = cluster.agents[1]!;
    await agent.process.stop('SIGTERM');
    await waitUntil(`host ${spare} to be down`, async () => (await hostView(spare))?.status === 'down', { timeoutMs: 20_000 });
    const downAt = Date.now();
    await waitUntil(`host ${spare} to be forgotten`, async () => (await hostView(spare)) === undefined, { timeoutMs: config.hosts.ttlMs + FORGET_DOWN_AFTER_MS + 30_000, intervalMs: 250 });
    expect(Date.now() - downAt, 'not forgotten before it had been down forgetDownAfterMs').toBeGreaterThanOrEqual(FORGET_DOWN_AFTER_MS - config.hosts.ttlMs);
    const event = await waitFor('the forgotten event', async () => (await retainedEvents(cluster.api)).find((e) => e.type === 'io.virtfleet.host.forgotten' && e.subject === spare));
    expect(event.data).toMatchObject({ by: 'leader', reason: expect.stringMatching(/down for 15 s with no workloads/) });

    await agent.restart();
    await waitUntil(`host ${spare} to be up again`, async () => (await hostView(spare))?.status === 'up', { timeoutMs: 30_000 });
  }, 120_000);
});
