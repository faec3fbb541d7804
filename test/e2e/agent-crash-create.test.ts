import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DomainState, Hypervisor } from '@unraid/libvirt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { pb } from '@virtfleet/shared';
import { backendName } from '../../packages/agent/src/drivers/driver.js';
import { REAL_DRIVERS, startCluster, waitForHostsUp, waitForState, type TestAgent, type TestCluster } from '../support/cluster.js';
import { containersOfHost, containersOfWorkload, CopySampler, runningContainerCopies, runningDomainCopies, samplingProblems, virtfleetDomains } from '../support/copies.js';
import { removeContainersOf, removeDomains } from '../support/cleanup.js';
import { coordinatorConfigOf } from '../support/configs.js';
import { startDockerProxy, type DockerProxy } from '../support/docker-proxy.js';
import { LIBVIRT_PROC, startLibvirtProxy, type LibvirtProxy } from '../support/libvirt-proxy.js';
import { waitUntil } from '../support/wait.js';
import { sleeperContainer } from '../support/workloads.js';

/** The create commands the agent completed for `workloadId`, from its command ledger on disk (`<stateDir>/commands.jsonl`). */
function completedCreates(agent: TestAgent, workloadId: string): unknown[] {
  const file = join(agent.stateDir, 'commands.jsonl');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as { method: string; result?: { workload_id?: string } })
    .filter((entry) => entry.method === 'create' && entry.result?.workload_id === workloadId);
}

const SAMPLE_INTERVAL_MS = 100;

describe('an agent SIGKILLed in the middle of a create', () => {
  let cluster: TestCluster;
  let agent: TestAgent;
  let proxy: DockerProxy;
  let libvirtProxy: LibvirtProxy;
  const hypervisor = new Hypervisor({ uri: 'qemu:///system' });
  const domains: string[] = [];
  const samplers: CopySampler[] = [];

  beforeAll(async () => {
    await hypervisor.connectOpen();
    // The agent reaches Docker and libvirtd through proxies, so that the test can hold its call to start what it just created.
    proxy = await startDockerProxy();
    libvirtProxy = await startLibvirtProxy();
    cluster = await startCluster({
      agents: [{ drivers: { docker: { enabled: true, socketPath: proxy.socketPath }, libvirt: { ...REAL_DRIVERS.libvirt, uri: libvirtProxy.uri } } }],
    });
    agent = cluster.agents[0]!;
    await waitForHostsUp(cluster);
  });
  afterAll(async () => {
    await Promise.all(samplers.map((s) => s.stop().catch(() => undefined)));
    const hostId = cluster?.agents[0]?.hostId;
    await cluster?.stop();
    await proxy?.close();
    await libvirtProxy?.close();
    if (hostId) await removeContainersOf([hostId]);
    await removeDomains(hypervisor, domains);
    await hypervisor.connectClose();
  });

  /**
   * Submits `spec` while the only host is cordoned, so nothing is created yet,
   * and returns `uncordon`, which lets it be placed: the create starts only
   * once the test is ready to catch it.
   */
  async function submitHeld(spec: pb.WorkloadSpec): Promise<{ id: string; uncordon: () => Promise<void> }> {
    await cluster.api.cordon(agent.hostId, true);
    const w = await cluster.api.submit({ request_id: `crash-${spec.name}`, spec });
    expect((await cluster.api.get(w.id)).state, 'nothing is placed on a cordoned host').toBe('pending');
    return { id: w.id, uncordon: () => cluster.api.cordon(agent.hostId, false).then(() => undefined) };
  }

  /**
   * Restarts the agent and samples the live copies until the workload runs
   * again. Returns the workload, the highest count seen, and why the sampler
   * cannot vouch for that count (empty if it can): a second copy would live
   * until a reconciliation pass removed it, so the sampler must never have
   * been blind for a whole reconcile interval.
   */
  async function recover(id: string, countCopies: () => Promise<number>) {
    const sampler = new CopySampler(countCopies, SAMPLE_INTERVAL_MS);
    samplers.push(sampler);
    sampler.start();
    await agent.restart();
    const running = await waitForState(cluster, id, 'running', 60_000);
    // The sampler must have seen the copy the workload now runs, or it could not have seen two.
    await waitUntil('the sampler to count the running copy', () => sampler.progress().lastCount === 1, { timeoutMs: 30_000 });
    const report = await sampler.stop();
    const maxBlindMs = coordinatorConfigOf(cluster.coordinator).reconcile.intervalMs;
    return { running, maxCount: report.maxCount, timeline: JSON.stringify(report.timeline), problems: samplingProblems(report, SAMPLE_INTERVAL_MS, { maxBlindMs }) };
  }

  it('ends with exactly one running container, no duplicate and no orphan, when the agent dies after creating it and before starting it', async () => {
    const { id, uncordon } = await submitHeld(sleeperContainer('crash-container'));
    const heldStart = proxy.holdNext('POST /containers/{id}/start', (method, path) => method === 'POST' && /\/containers\/[^/]+\/start(\?|$)/.test(path), 60_000);
    await uncordon();
    const start = await heldStart;

    // The create is half done: Docker holds the container, created and never started, and the agent has not finished the command.
    const atKill = await containersOfWorkload(id);
    agent.process.signal('SIGKILL');
    await agent.process.waitExit();
    start.drop();
    expect(atKill.map((c) => c.state), `Docker's view while the start was held (${start.method} ${start.path})`).toEqual(['created']);
    expect(completedCreates(agent, id), 'the killed agent never completed the create').toEqual([]);

    const { running, maxCount, timeline, problems } = await recover(id, () => runningContainerCopies(id));
    expect(running.host_id).toBe(agent.hostId);
    // Counted through Docker, not virtfleet: one container of any state, and no other container on the host.
    // The very container created before the kill, started: the create did not run a second time at the engine.
    expect(await containersOfWorkload(id)).toEqual([{ ...atKill[0], state: 'running' }]);
    expect((await containersOfHost(agent.hostId)).map((c) => c.workloadId), 'containers owned by the host').toEqual([id]);
    expect(problems, `sampler: ${timeline}`).toEqual([]);
    expect(maxCount, `live copies while the agent recovered: ${timeline}`).toBe(1);
    // Reconciliation may start the stopped copy before the create is sent again, so the create may complete once or not at all.
    expect(completedCreates(agent, id).length, 'the create completed at most once').toBeLessThanOrEqual(1);
    await cluster.api.act('DeleteWorkload', { id });
  });

  it('ends with exactly one running VM, no duplicate and no orphan, when the agent dies after defining its domain and before starting it', async () => {
    const { id, uncordon } = await submitHeld({ name: 'crash-vm', kind: 'vm', vcpus: 1, memory_mib: 64 });
    const name = backendName(agent.hostId, id);
    domains.push(name);
    const heldStart = libvirtProxy.holdNext([LIBVIRT_PROC.DOMAIN_CREATE, LIBVIRT_PROC.DOMAIN_CREATE_WITH_FLAGS], 60_000);
    await uncordon();
    const start = await heldStart;

    // The create is half done: libvirt has the domain defined and shut off, and the agent has not finished the command.
    const atKill = (await virtfleetDomains(hypervisor)).filter((d) => d.workloadId === id);
    agent.process.signal('SIGKILL');
    await agent.process.waitExit();
    start.drop();
    expect(
      atKill.map((d) => ({ name: d.name, state: DomainState[d.state] })),
      `libvirt's view while the start (procedure ${start.procedure}) was held`,
    ).toEqual([{ name, state: 'SHUTOFF' }]);
    expect(completedCreates(agent, id), 'the killed agent never completed the create').toEqual([]);

    const { running, maxCount, timeline, problems } = await recover(id, () => runningDomainCopies(hypervisor, id));
    expect(running.host_id).toBe(agent.hostId);
    // Every domain of any name whose metadata names the workload or the host, defined or running.
    const all = await virtfleetDomains(hypervisor);
    // The very domain defined before the kill, now running: the create did not run a second time at the engine.
    expect(all.filter((d) => d.workloadId === id), 'domains of the workload').toEqual([{ ...atKill[0], state: DomainState.RUNNING, active: true }]);
    expect(all.filter((d) => d.hostId === agent.hostId).map((d) => d.workloadId), 'domains owned by the host').toEqual([id]);
    expect(await runningDomainCopies(hypervisor, id)).toBe(1);
    expect(problems, `sampler: ${timeline}`).toEqual([]);
    expect(maxCount, `live copies while the agent recovered: ${timeline}`).toBe(1);
    // Reconciliation may start the stopped copy before the create is sent again, so the create may complete once or not at all.
    expect(completedCreates(agent, id).length, 'the create completed at most once').toBeLessThanOrEqual(1);
    await cluster.api.act('DeleteWorkload', { id });
  });
});
