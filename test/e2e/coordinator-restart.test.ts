import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, uniqueHostId, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { coordinatorConfigOf } from '../support/configs.js';
import { containersOfWorkload, containersPerWorkloadSampler, type CopySampler, samplingProblems } from '../support/copies.js';
import { waitUntil } from '../support/wait.js';
import { removeContainersOf } from '../support/cleanup.js';

const SAMPLE_INTERVAL_MS = 200;
const container = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  kind: 'container',
  image: 'virtfleet-test/busybox:latest',
  vcpus: 0.1,
  memory_mib: 16,
  command: ['/bin/sleep', '1000'],
  ...extra,
});

describe('coordinator state on JetStream survives SIGKILL', () => {
  let cluster: TestCluster;
  const hostA = uniqueHostId('restart-a');
  const samplers: CopySampler[] = [];

  beforeAll(async () => {
    cluster = await startCluster({ agents: [{ hostId: hostA, drivers: { docker: { enabled: true } }, extra: { trustLevel: 1 } }] });
    await waitForHostsUp(cluster);
  });
  afterAll(async () => {
    await Promise.all(samplers.map((s) => s.stop().catch(() => undefined)));
    const hostIds = cluster?.agents.map((a) => a.hostId) ?? [];
    await cluster?.stop();
    await removeContainersOf(hostIds);
  });

  it('keeps placed workloads, the queue in its order, cordons and decisions; no request is lost or run twice', async () => {
    const running = await cluster.api.submit({ request_id: 'restart-running', spec: container('kept') });
    await waitForState(cluster, running.id, 'running');
    // Three requests no current host can take (trust 5), queued in this order.
    const queued = [];
    for (const name of ['q-first', 'q-second', 'q-third']) queued.push(await cluster.api.submit({ request_id: `restart-${name}`, spec: container(name, { security: { min_trust_level: 5 } }) }));
    await cluster.api.cordon(hostA, true);
    const beforeQueue = (await cluster.api.queue()).entries.map((e) => e.workload_id);
    expect(beforeQueue).toEqual(queued.map((w) => w.id));
    // Every container of every workload, sampled from before the crash to the end: a duplicate that
    // exists for a while and is then cleaned up still shows (polling until there is one would hide it).
    const watched: string[] = [running.id, ...queued.map((w) => w.id)];
    const { sampler, maxPerWorkload: max } = containersPerWorkloadSampler(() => watched, SAMPLE_INTERVAL_MS);
    samplers.push(sampler);
    sampler.start();
    await waitUntil('the sampler to see the running workload', () => sampler.progress().lastCount === 1, { timeoutMs: 30_000 });
    // Accepted just before the crash: it must not be lost.
    const lastMinute = await cluster.api.submit({ request_id: 'restart-last-minute', spec: container('last-minute') });
    watched.push(lastMinute.id);

    await cluster.restartCoordinator('SIGKILL');
    await waitForHostsUp(cluster);

    const after = await cluster.api.list();
    const byName = new Map(after.workloads.map((w) => [w.spec?.name, w]));
    expect(byName.get('kept')).toMatchObject({ id: running.id, host_id: hostA });
    // Running, as before the crash, once the new coordinator has heard from its host (unknown only until then).
    expect(await waitForState(cluster, running.id, 'running')).toMatchObject({ host_id: hostA });
    expect((await cluster.api.queue()).entries.map((e) => e.workload_id)).toEqual([...queued.map((w) => w.id), lastMinute.id]);
    expect((await cluster.api.hosts()).hosts.find((h) => h.id === hostA)?.cordoned).toBe(true);
    const explained = await cluster.cli('explain', running.id);
    expect(explained.stdout).toContain(`placed on ${hostA}`);

    // Same request id after the restart: the same workload, not a second one.
    expect((await cluster.api.submit({ request_id: 'restart-running', spec: container('kept') })).id).toBe(running.id);

    await cluster.api.cordon(hostA, false);
    await waitForState(cluster, lastMinute.id, 'running');
    const trusted = await cluster.addAgent({ drivers: { docker: { enabled: true } }, extra: { trustLevel: 5 } });
    for (const w of queued) expect((await waitForState(cluster, w.id, 'running')).host_id).toBe(trusted.hostId);

    // Counted through Docker, not through virtfleet: one running container per workload now, and never two at any sample.
    const all = [running, lastMinute, ...queued];
    for (const w of all) expect(await containersOfWorkload(w.id), `containers of ${w.id}`).toEqual([expect.objectContaining({ state: 'running' })]);
    const samplesSoFar = sampler.progress().samples;
    await waitUntil('a sample taken after every workload ran', () => sampler.progress().samples > samplesSoFar, { timeoutMs: 30_000 });
    const report = await sampler.stop();
    // A second container would stay until a reconciliation pass removed it: the sampler may never be blind that long.
    const { intervalMs } = coordinatorConfigOf(cluster.coordinator).reconcile;
    expect(samplingProblems(report, SAMPLE_INTERVAL_MS, { maxBlindMs: intervalMs }), 'the sampler watched throughout').toEqual([]);
    expect(Object.fromEntries(all.map((w) => [w.id, max.get(w.id)])), `most containers seen per workload; timeline of the largest: ${JSON.stringify(report.timeline)}`).toEqual(
      Object.fromEntries(all.map((w) => [w.id, 1])),
    );
    expect(report.maxCount).toBe(1);
    console.log(`after SIGKILL: ${all.length} workloads accounted for, each with exactly one container; ${report.samples} samples over ${Math.round(report.durationMs)} ms, never two`);
  });
});
