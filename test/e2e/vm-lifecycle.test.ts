import { Hypervisor } from '@unraid/libvirt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { waitUntil } from '../support/wait.js';
import { removeDomains } from '../support/cleanup.js';
import { backendName } from '../../packages/agent/src/drivers/driver.js';

// virDomainState values
const RUNNING = 1;
const PAUSED = 3;
const SHUTOFF = 5;

describe('VM lifecycle on qemu:///system through the coordinator API, checked against libvirt', () => {
  let cluster: TestCluster;
  const hypervisor = new Hypervisor({ uri: 'qemu:///system' });
  const created: string[] = [];

  beforeAll(async () => {
    await hypervisor.connectOpen();
    cluster = await startCluster({ agents: [{}] });
    await waitForHostsUp(cluster);
  });

  afterAll(async () => {
    await cluster?.stop();
    await removeDomains(hypervisor, created);
    await hypervisor.connectClose();
  });

  const domainState = async (name: string): Promise<number | undefined> => {
    const domain = await hypervisor.domainLookupByName(name).catch(() => undefined);
    return domain ? (await hypervisor.domainGetInfo(domain)).state : undefined;
  };

  it('creates a 64 MiB diskless guest, pauses, resumes, stops, starts and deletes it', async () => {
    const submitted = await cluster.api.submit({ request_id: 'vm-lifecycle-1', spec: { name: 'tiny-vm', kind: 'vm', vcpus: 1, memory_mib: 64 } });
    const domainName = backendName(cluster.agents[0]!.hostId, submitted.id);
    created.push(domainName);
    const running = await waitForState(cluster, submitted.id, 'running', 60_000);
    expect(running.driver_ref, cluster.logs()).toMatch(/^[0-9a-f-]{36}$/);
    expect(await domainState(domainName)).toBe(RUNNING);

    const domain = await hypervisor.domainLookupByName(domainName);
    const xml = await hypervisor.domainGetXMLDesc(domain);
    expect(xml).toMatch(/<memory unit=['"]KiB['"]>65536<\/memory>/);
    expect(xml).not.toContain('<interface');
    expect(xml).toContain(cluster.agents[0]!.hostId);

    expect((await cluster.api.act('PauseWorkload', { id: submitted.id })).state).toBe('paused');
    expect(await domainState(domainName)).toBe(PAUSED);

    expect((await cluster.api.act('ResumeWorkload', { id: submitted.id })).state).toBe('running');
    expect(await domainState(domainName)).toBe(RUNNING);

    // The guest has no OS to answer ACPI, so this exercises the forced path after the timeout.
    expect((await cluster.api.act('StopWorkload', { id: submitted.id, timeout_seconds: 1 })).state).toBe('stopped');
    expect(await domainState(domainName)).toBe(SHUTOFF);

    expect((await cluster.api.act('StartWorkload', { id: submitted.id })).state).toBe('running');
    expect(await domainState(domainName)).toBe(RUNNING);

    expect((await cluster.api.act('DeleteWorkload', { id: submitted.id })).state).toBe('deleted');
    await waitUntil('the domain to be undefined', async () => (await domainState(domainName)) === undefined, { timeoutMs: 10_000 });
  });
});
