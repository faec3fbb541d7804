import { performance } from 'node:perf_hooks';
import Docker from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { pb } from '@virtfleet/shared';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { runningContainerCopies } from '../support/copies.js';
import { removeContainersOf } from '../support/cleanup.js';
import { waitFor, waitUntil } from '../support/wait.js';
import { retainedEvents, sleeperContainer, TEST_IMAGE } from '../support/workloads.js';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const RECONCILE_MS = 1000;

describe('reconciliation: drift between what the host runs and what it should run is found and repaired', () => {
  let cluster: TestCluster;
  let hostId: string;

  beforeAll(async () => {
    // A TTL well above the agent's restart time, so the restart in the last case does not take the host down.
    cluster = await startCluster({ hostTtlMs: 6000, agents: [{ drivers: { docker: { enabled: true } } }], coordinatorExtra: { reconcile: { intervalMs: RECONCILE_MS } } });
    await waitForHostsUp(cluster);
    hostId = cluster.agents[0]!.hostId;
  });

  /** Workloads of the current case; deleted after it, passed or failed, so none goes on drifting into the next. */
  const submitted: string[] = [];
  const submit = async (requestId: string, spec: pb.WorkloadSpec) => {
    const w = await cluster.api.submit({ request_id: requestId, spec });
    submitted.push(w.id);
    return w;
  };
  afterEach(async () => {
    // A repair in flight refuses the delete for a moment ("command in progress"): try again.
    for (const id of submitted.splice(0)) await waitUntil(`${id} to be deleted`, async () => (await cluster.api.act('DeleteWorkload', { id })).state === 'deleted', { timeoutMs: 15_000, intervalMs: 200 });
  });

  afterAll(async () => {
    await cluster?.stop();
    if (hostId) await removeContainersOf([hostId]);
  });

  /** Drift events about one workload. */
  const driftOf = async (workloadId: string) => (await retainedEvents(cluster.api)).filter((e) => e.type === 'io.virtfleet.workload.drift' && e.subject === workloadId);

  const waitForDrift = (workloadId: string, kind: string, timeoutMs = 15_000) =>
    waitFor(
      `a ${kind} drift event for ${workloadId}`,
      async () => (await driftOf(workloadId)).find((e) => e.data.drift === kind),
      { timeoutMs, intervalMs: 250 },
    ).catch(async (err: Error) => {
      const seen = new Map<string, number>();
      for (const e of await driftOf(workloadId)) {
        const key = JSON.stringify(e.data);
        seen.set(key, (seen.get(key) ?? 0) + 1);
      }
      throw new Error(`${err.message}\ndrift events seen (count × data): ${[...seen].map(([d, n]) => `${n} × ${d}`).join('; ') || 'none'}\n${cluster.logs()}`);
    });

  /**
   * Reconciliation passes over the host that asked its agent for the workload
   * list after `sinceMs` (wall clock; one machine), as the coordinator logs
   * them at debug level ("host reconciled").
   */
  const passesSince = (sinceMs: number) =>
    cluster.coordinator.output
      .join('')
      .split('\n')
      .filter((line) => line.includes('"msg":"host reconciled"'))
      .map((line) => JSON.parse(line) as { host: string; pass: number; listed_at: number })
      .filter((p) => p.host === hostId && p.listed_at > sinceMs);
  /** Waits for `count` such passes: proof the loop looked at the host after `sinceMs`, however slow the machine. */
  const waitForPasses = (count: number, sinceMs: number, after: string) =>
    waitFor(
      `${count} reconciliation passes over ${hostId} listed after ${after}`,
      () => {
        const passes = passesSince(sinceMs);
        return passes.length >= count ? passes : undefined;
      },
      { timeoutMs: 15_000 + 3 * count * RECONCILE_MS },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${cluster.logs()}`);
    });

  /** The one container labelled as the workload. */
  const containerOf = async (workloadId: string) => {
    const found = await docker.listContainers({ all: true, filters: { label: [`io.virtfleet.workload=${workloadId}`] } });
    expect(found, `containers of ${workloadId}`).toHaveLength(1);
    return docker.getContainer(found[0]!.Id);
  };

  it('creates a container again after it is removed behind virtfleet\'s back', async () => {
    const w = await submit('drift-missing', sleeperContainer('drift-missing'));
    await waitForState(cluster, w.id, 'running');
    const before = await containerOf(w.id);
    expect(await runningContainerCopies(w.id)).toBe(1);

    const removedAt = performance.now();
    await before.remove({ force: true });
    expect(await runningContainerCopies(w.id)).toBe(0);

    const drift = await waitForDrift(w.id, 'missing');
    expect(drift.data.repair).toBe('create');
    const { copies } = await waitFor(
      `a running copy of ${w.id} again`,
      async () => {
        const copies = await runningContainerCopies(w.id);
        return copies > 0 ? { copies } : undefined;
      },
      { timeoutMs: 15_000 },
    );
    const repairedMs = Math.round(performance.now() - removedAt);
    expect(copies).toBe(1);
    const after = await containerOf(w.id);
    expect(after.id).not.toBe(before.id);
    await waitForState(cluster, w.id, 'running', 10_000);
    console.log(`missing: drift events ${JSON.stringify((await driftOf(w.id)).map((e) => `${String(e.data.drift)}/${String(e.data.repair)}`))}; running copies ${copies} after ${repairedMs} ms`);
    expect(repairedMs).toBeLessThan(15_000);
  });

  it('starts a restart_policy always container again after it is killed behind virtfleet\'s back', async () => {
    const w = await submit('drift-killed', sleeperContainer('drift-killed', { restart_policy: 'always' }));
    await waitForState(cluster, w.id, 'running');
    const container = await containerOf(w.id);
    const startedBefore = (await container.inspect()).State.StartedAt;

    const killedAt = performance.now();
    await container.kill();
    const drift = await waitForDrift(w.id, 'state');
    expect(drift.data).toMatchObject({ desired: 'running', repair: 'start' });
    expect(['stopped', 'failed']).toContain(drift.data.observed);
    const info = await waitFor(`${w.id} to run again`, async () => {
      const i = await container.inspect();
      return i.State.Running && i.State.StartedAt !== startedBefore ? i : undefined;
    }, { timeoutMs: 15_000 });
    const restartedMs = Math.round(performance.now() - killedAt);
    // Started again, not replaced.
    expect(info.Id).toBe(container.id);
    expect(await runningContainerCopies(w.id)).toBe(1);
    await waitForState(cluster, w.id, 'running', 10_000);
    console.log(`killed: drift ${String(drift.data.drift)} observed ${String(drift.data.observed)} repair ${String(drift.data.repair)}; running again after ${restartedMs} ms; copies ${await runningContainerCopies(w.id)}`);
  });

  it('applies restart policies on-failure and never to containers that exit by themselves', async () => {
    const exitSpec = (name: string, policy: string, code: number) => sleeperContainer(name, { restart_policy: policy, command: ['/bin/sh', '-c', `sleep 2; exit ${code}`] });
    const [clean, failing, never] = await Promise.all([
      submit('onfailure-0', exitSpec('onfailure-exit0', 'on-failure', 0)),
      submit('onfailure-3', exitSpec('onfailure-exit3', 'on-failure', 3)),
      submit('never-3', exitSpec('never-exit3', 'never', 3)),
    ]);
    const runningContainer = async (w: pb.Workload__Output) => {
      await waitForState(cluster, w.id, 'running');
      return containerOf(w.id);
    };
    const [cleanC, failingC, neverC] = await Promise.all([runningContainer(clean), runningContainer(failing), runningContainer(never)]);
    const failingFirstStart = (await failingC.inspect()).State.StartedAt;

    // Exit 0 under on-failure and exit 3 under never: the coordinator accepts the stop.
    const cleanStopped = await waitFor(`${clean.id} to be stopped`, async () => {
      const now = await cluster.api.get(clean.id);
      return now.state === 'stopped' ? now : undefined;
    }, { timeoutMs: 20_000 });
    const neverStopped = await waitFor(`${never.id} to be stopped or failed, citing its restart policy`, async () => {
      const now = await cluster.api.get(never.id);
      return (now.state === 'stopped' || now.state === 'failed') && now.message.includes('restart policy') ? now : undefined;
    }, { timeoutMs: 20_000 });
    const cleanInfo = await cleanC.inspect();
    const neverInfo = await neverC.inspect();
    expect(cleanInfo.State.ExitCode).toBe(0);
    expect(neverInfo.State.ExitCode).toBe(3);

    // Exit 3 under on-failure: started again, in the same container.
    const failingRestarted = await waitFor(`${failing.id} to be started again`, async () => {
      const i = await failingC.inspect();
      return i.State.StartedAt !== failingFirstStart ? i : undefined;
    }, { timeoutMs: 20_000 });
    expect(failingRestarted.Id).toBe(failingC.id);

    // Several reconcile passes later, the accepted stops still hold.
    const settledAt = Date.now();
    const passes = await waitForPasses(3, settledAt, 'the stops were accepted and the failing one restarted');
    const cleanLater = await cleanC.inspect();
    const neverLater = await neverC.inspect();
    expect(cleanLater.State.Running).toBe(false);
    expect(cleanLater.State.StartedAt).toBe(cleanInfo.State.StartedAt);
    expect(neverLater.State.Running).toBe(false);
    expect(neverLater.State.StartedAt).toBe(neverInfo.State.StartedAt);
    expect((await cluster.api.get(clean.id)).state).toBe('stopped');
    expect(['stopped', 'failed']).toContain((await cluster.api.get(never.id)).state);

    const [cleanDrift, failingDrift, neverDrift] = await Promise.all([driftOf(clean.id), driftOf(failing.id), driftOf(never.id)]);
    expect(cleanDrift).toEqual([]);
    expect(neverDrift).toEqual([]);
    expect(failingDrift.length).toBeGreaterThanOrEqual(1);
    expect(failingDrift.every((e) => e.data.drift === 'state' && e.data.repair === 'start')).toBe(true);
    const failingStarts = new Set([failingFirstStart, failingRestarted.State.StartedAt, (await failingC.inspect()).State.StartedAt]).size;

    console.log(
      `exit 0/on-failure: ${cleanStopped.state} "${cleanStopped.message}", StartedAt unchanged, ${cleanDrift.length} drift events; ` +
        `exit 3/never: ${neverStopped.state} "${neverStopped.message}", StartedAt unchanged, ${neverDrift.length} drift events; ` +
        `exit 3/on-failure: ${failingDrift.length} start repairs, ${failingStarts} distinct StartedAt seen; checked after passes ${passes.map((p) => p.pass).join(', ')}`,
    );
  });

  it('removes a container carrying the agent\'s labels that the coordinator does not know, once the agent adopts it', async () => {
    const agent = cluster.agents[0]!;
    const strangerId = 'stranger-0001';
    const stranger = await docker.createContainer({
      name: `virtfleet-${hostId}.${strangerId}`,
      Image: TEST_IMAGE,
      Cmd: ['/bin/sleep', '1000'],
      Labels: { 'io.virtfleet.host': hostId, 'io.virtfleet.workload': strangerId, 'io.virtfleet.name': 'stranger', 'io.virtfleet.kind': 'container' },
      HostConfig: { NetworkMode: 'none', Memory: 16 * 1024 * 1024 },
    });
    await stranger.start();
    const startedAt = Date.now();

    // The agent reports only the workloads in its records, so a running agent does not report it: passes come and go, the stranger stays...
    const passes = await waitForPasses(2, startedAt, 'the stranger started');
    expect(await driftOf(strangerId), 'no drift reported for the stranger before the agent restarts').toEqual([]);
    expect(await runningContainerCopies(strangerId), 'the stranger still runs').toBe(1);

    // ...until a restart, when it adopts every container labelled as its own.
    const restartedAt = performance.now();
    await agent.restart();
    const drift = await waitForDrift(strangerId, 'extra', 20_000);
    expect(drift.data).toMatchObject({ host_id: hostId, repair: 'delete', detail: 'unknown to the coordinator' });
    await waitUntil(`${strangerId} to be removed from Docker`, async () => (await docker.listContainers({ all: true, filters: { label: [`io.virtfleet.workload=${strangerId}`] } })).length === 0, { timeoutMs: 15_000 });
    const removedMs = Math.round(performance.now() - restartedAt);
    await expect(stranger.inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect((await cluster.api.hosts()).hosts.find((h) => h.id === hostId)?.status).toBe('up');
    console.log(
      `stranger: left alone by passes ${passes.map((p) => p.pass).join(', ')} before the agent restart; ` +
        `after it, drift ${String(drift.data.drift)} (${String(drift.data.detail)}) and removed from Docker ${removedMs} ms after the restart began`,
    );
  });
});
