import { status } from '@grpc/grpc-js';
import { Hypervisor } from '@unraid/libvirt';
import Docker from 'dockerode';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, uniqueHostId, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/wait.js';
import { removeContainersOf, removeDomains } from '../support/cleanup.js';
import { backendName } from '../../packages/agent/src/drivers/driver.js';
import { FILTERS } from '../../packages/coordinator/src/scheduler/catalog.js';
import { sleeperContainer } from '../support/workloads.js';

const docker = new Docker({ socketPath: '/var/run/docker.sock' });

describe('placement by security and performance demands across two real agents', () => {
  let cluster: TestCluster;
  let dir: string;
  const hypervisor = new Hypervisor({ uri: 'qemu:///system' });
  const hostA = uniqueHostId('sched-a');
  const hostB = uniqueHostId('sched-b');
  const domains: string[] = [];
  const cli = (...args: string[]) => cluster.cli(...args);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'virtfleet-sched-'));
    await hypervisor.connectOpen();
    cluster = await startCluster({
      agents: [
        { hostId: hostA, labels: { zone: 'a' }, extra: { trustLevel: 1, features: ['secure-boot'] } },
        { hostId: hostB, labels: { zone: 'b' }, extra: { trustLevel: 3, features: ['encrypted-storage'] } },
      ],
    });
    await waitForHostsUp(cluster);
  });

  afterAll(async () => {
    await cluster?.stop();
    await removeContainersOf([hostA, hostB]);
    await removeDomains(hypervisor, domains);
    await hypervisor.connectClose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('places a container needing trust 2 and encrypted storage on the host that has them, and explains why', async () => {
    const w = await cluster.api.submit({
      request_id: 'sched-container',
      spec: {
        name: 'vault',
        kind: 'container',
        image: 'virtfleet-test/busybox:latest',
        vcpus: 0.2,
        memory_mib: 32,
        command: ['/bin/sleep', '1000'],
        tenant: 'acme',
        security: { isolation: 'tenant', min_trust_level: 2, required_features: ['encrypted-storage'] },
        performance: { memory_headroom_mib: 256, max_host_cpu_utilisation: 1 },
      },
    });
    const running = await waitForState(cluster, w.id, 'running');
    expect(running.host_id, cluster.logs()).toBe(hostB);
    const info = await docker.getContainer(running.driver_ref).inspect();
    expect(info.Config.Labels['io.virtfleet.host']).toBe(hostB);

    const explained = await cli('explain', w.id);
    expect(explained.code, explained.stderr).toBe(0);
    expect(explained.stdout).toContain(`placed on ${hostB}`);
    expect(explained.stdout).toMatch(new RegExp(`${hostA}\\s+rejected.*trust-level: trust level below 2 \\(unresolvable\\)`));
    expect(explained.stdout).toMatch(new RegExp(`${hostB}\\s+chosen\\s+[\\d.]+\\s+binpack`));

    const decision = await cluster.api.explain(w.id);
    expect(decision.hosts_total).toBe(2);
    // Every registered filter passed the chosen host, in the order they run.
    expect(decision.candidates.find((c) => c.host_id === hostB)?.filters.map((f) => ({ plugin: f.plugin, status: f.status }))).toEqual(
      FILTERS.names().map((plugin) => ({ plugin, status: 'ok' })),
    );
    expect(decision.queue_policy).toBe('fcfs');
  });

  it('places a VM needing secure boot on the other host, checked through libvirt', async () => {
    const w = await cluster.api.submit({
      request_id: 'sched-vm',
      spec: { name: 'bootguard', kind: 'vm', vcpus: 1, memory_mib: 64, security: { required_features: ['secure-boot'] }, performance: { latency_class: 'batch', memory_headroom_mib: 256 } },
    });
    domains.push(backendName(hostA, w.id));
    const running = await waitForState(cluster, w.id, 'running', 60_000);
    expect(running.host_id, cluster.logs()).toBe(hostA);
    const domain = await hypervisor.domainLookupByName(backendName(hostA, w.id));
    expect(await hypervisor.domainGetXMLDesc(domain)).toContain(hostA);
    const decision = await cluster.api.explain('bootguard');
    expect(decision.summary).toMatch(new RegExp(`^placed on ${hostA}: score [\\d.]+, the only feasible host$`));
    expect(decision.rejections).toEqual({ 'missing feature secure-boot': 1 });
    await cluster.api.act('DeleteWorkload', { id: w.id });
  });

  it('keeps an impossible request waiting with its reason, and plan says the same without changing anything', async () => {
    const spec = { name: 'too-trusting', kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.1, memory_mib: 16, command: ['/bin/sleep', '10'], security: { min_trust_level: 9 } };
    const w = await cluster.api.submit({ request_id: 'sched-impossible', spec });
    const waiting = await waitFor('the reason to show', async () => {
      const current = await cluster.api.get(w.id);
      return current.message.startsWith('2 hosts') ? current : undefined;
    });
    expect(waiting.state).toBe('pending');
    expect(waiting.message).toBe('2 hosts: 2 trust level below 9');

    const queue = await cli('queue', 'ls');
    expect(queue.stdout).toContain('policy fcfs');
    expect(queue.stdout).toContain(w.id);

    const specFile = join(dir, 'impossible.yaml');
    writeFileSync(specFile, JSON.stringify({ ...spec, name: 'plan-only' }));
    const before = (await cluster.api.list()).workloads.length;
    const plan = await cli('plan', '-f', specFile);
    expect(plan.code).toBe(5);
    expect(plan.stdout).toContain('plan for plan-only: 2 hosts: 2 trust level below 9');
    expect(plan.stdout).toContain('no host can ever run it');
    expect((await cluster.api.list()).workloads.length).toBe(before);

    const possible = join(dir, 'possible.yaml');
    const otherTenant = join(dir, 'other-tenant.yaml');
    writeFileSync(otherTenant, JSON.stringify({ ...spec, name: 'plan-other', security: { min_trust_level: 3 } }));
    const refused = await cli('plan', '-f', otherTenant);
    expect(refused.code).toBe(5);
    expect(refused.stdout).toContain('2 hosts: 1 isolated for another tenant, 1 trust level below 3');

    // Host B is isolated for tenant acme by the first test's workload, so only acme may join it.
    writeFileSync(possible, JSON.stringify({ ...spec, name: 'plan-ok', tenant: 'acme', security: { min_trust_level: 3 } }));
    const ok = await cli('plan', '-f', possible, '-o', 'json');
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ host_id: hostB, hosts_total: 2 });
    expect((await cluster.api.list()).workloads.length).toBe(before);

    await cluster.api.act('DeleteWorkload', { id: w.id });
  });

  it('places nothing new on a cordoned host until it is uncordoned', async () => {
    // Only B can take this one: trust 3 (A has 1), and tenant acme, for which B is isolated by the first test's workload.
    const onlyB = sleeperContainer('needs-b', { tenant: 'acme', security: { min_trust_level: 3 } });
    // Either host could take this one.
    const either = sleeperContainer('either', { tenant: 'acme' });
    const specFile = join(dir, 'trusted.yaml');
    writeFileSync(specFile, JSON.stringify(onlyB));
    const cordoned = await cli('host', 'cordon', hostB);
    expect(cordoned.code, cordoned.stderr).toBe(0);
    expect(cordoned.stdout.trim()).toBe(`${hostB} cordoned`);
    expect((await cli('host', 'ls')).stdout).toMatch(new RegExp(`${hostB}\\s+up,cordoned`));
    const refused = await cli('plan', '-f', specFile);
    expect(refused.code).toBe(5);
    expect(refused.stdout).toContain('2 hosts: 1 cordoned, 1 trust level below 3');

    // Submitted while B is cordoned: the one only B can take waits, naming the cordon; the other goes to A.
    const waiting = await cluster.api.submit({ request_id: 'sched-needs-b', spec: onlyB });
    await waitFor('the cordon to be the reason needs-b waits', async () => {
      const w = await cluster.api.get(waiting.id);
      return w.message.startsWith('2 hosts') ? w : undefined;
    });
    const placed = await cluster.api.submit({ request_id: 'sched-either', spec: either });
    const eitherRunning = await waitForState(cluster, placed.id, 'running');
    expect(eitherRunning.host_id, cluster.logs()).toBe(hostA);
    expect((await cluster.api.explain(placed.id)).candidates.find((c) => c.host_id === hostB)?.filters.find((f) => f.status !== 'ok')).toMatchObject({ plugin: 'schedulable', status: 'unschedulable', reason: 'cordoned' });
    // The pass that placed the later request also tried the earlier one (first in the queue): it still waits, on nothing but the cordon.
    const stillWaiting = await cluster.api.get(waiting.id);
    expect(stillWaiting).toMatchObject({ state: 'pending', host_id: '', message: '2 hosts: 1 cordoned, 1 trust level below 3' });
    expect((await docker.listContainers({ all: true, filters: { label: [`io.virtfleet.host=${hostB}`, `io.virtfleet.workload=${waiting.id}`] } })).length, 'containers of needs-b on B').toBe(0);

    expect((await cli('host', 'uncordon', hostB)).stdout.trim()).toBe(`${hostB} schedulable`);
    expect((await cli('plan', '-f', specFile)).code).toBe(0);
    const runningOnB = await waitForState(cluster, waiting.id, 'running');
    expect(runningOnB.host_id, cluster.logs()).toBe(hostB);
    expect((await docker.getContainer(runningOnB.driver_ref).inspect()).Config.Labels['io.virtfleet.host']).toBe(hostB);

    const unknown = await cli('host', 'cordon', 'no-such-host');
    expect(unknown.code).toBe(3);
    for (const w of [waiting, placed]) await cluster.api.act('DeleteWorkload', { id: w.id });
  });

  it('switches the queue policy at runtime and rejects an unknown one', async () => {
    const switched = await cli('queue', 'policy', 'sjf', '--strict');
    expect(switched.code, switched.stderr).toBe(0);
    expect(switched.stdout).toContain('policy sjf, strict order');
    expect((await cluster.api.queue()).policy).toBe('sjf');

    const bad = await cli('queue', 'policy', 'lottery');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('policy: must be one of fcfs, sjf, priority');
    await expect(cluster.api.setQueuePolicy('lottery')).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, message: expect.stringContaining('policy') });
    expect((await cluster.api.queue()).policy).toBe('sjf');
  });

  it('rejects impossible demands in the spec with INVALID_ARGUMENT naming the field', async () => {
    const base = { name: 'bad', kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.1, memory_mib: 16 };
    for (const [spec, field] of [
      [{ ...base, security: { min_trust_level: 11 } }, 'spec.security.min_trust_level'],
      [{ ...base, security: { isolation: 'private' } }, 'spec.security.isolation'],
      [{ ...base, performance: { max_host_cpu_utilisation: 2 } }, 'spec.performance.max_host_cpu_utilisation'],
      [{ ...base, priority: 500 }, 'spec.priority'],
    ] as const) {
      await expect(cluster.api.submit({ request_id: '', spec })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, message: expect.stringContaining(field) });
    }
  });
});
