import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { freePort } from '../support/processes.js';
import { simulatedHostScript, startSimulatedHost, type SimulatedHost } from '../support/simulated-host.js';
import { waitFor, waitUntil } from '../support/wait.js';
import { sleeperContainer } from '../support/workloads.js';

const run = promisify(execFile);
/** This machine's own interfaces, addresses and routes: the playground must add none. */
const machineNetwork = async () => {
  const [links, addrs, routes] = await Promise.all([run('ip', ['-o', 'link']), run('ip', ['-o', 'addr']), run('ip', ['route'])]);
  return { links: links.stdout.split('\n').map((l) => l.split(':')[1]?.trim()).sort(), addrs: addrs.stdout, routes: routes.stdout };
};

describe('the multi-host playground (scripts/simulated-host.sh) with real daemons', () => {
  let cluster: TestCluster;
  let host: SimulatedHost;
  let before: Awaited<ReturnType<typeof machineNetwork>>;
  const name = `t${process.pid % 100_000}`;

  beforeAll(async () => {
    before = await machineNetwork();
    cluster = await startCluster({ agents: [] });
    host = await startSimulatedHost(name, cluster.nats, await freePort(), cluster.pki.dir);
  }, 420_000);
  afterAll(async () => {
    await host?.down();
    await cluster?.stop();
  }, 120_000);

  it('joins the cluster as a host of its own and runs a container in its own dockerd and namespace', async () => {
    await waitUntil('the simulated host to be up', async () => (await cluster.api.hosts()).hosts.some((h) => h.id === name && h.status === 'up'), { timeoutMs: 60_000 });
    const submitted = await cluster.api.submit({ request_id: `${name}-c`, spec: sleeperContainer(`${name}-c`) });
    const w = await waitFor('the container to run', async () => {
      const got = await cluster.api.get(submitted.id);
      return got.state === 'running' ? got : undefined;
    }, { timeoutMs: 60_000 });
    expect(w.host_id).toBe(name);
    const inspected = await host.docker.getContainer(w.driver_ref).inspect();
    expect(inspected.State.Running).toBe(true);
    // On the host's docker0, inside its namespace: reachable from there.
    const ip = inspected.NetworkSettings.Networks.bridge?.IPAddress ?? '';
    expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    await host.inNetns(['busybox', 'ping', '-c', '1', '-W', '5', ip]);
    // Not in the machine's own dockerd.
    const { stdout } = await run('docker', ['ps', '-aq', '--no-trunc']);
    expect(stdout.split('\n')).not.toContain(w.driver_ref);
  }, 120_000);

  it('runs a VM in its own libvirtd, which the machine\'s libvirtd does not see', async () => {
    const submitted = await cluster.api.submit({ request_id: `${name}-v`, spec: { name: `${name}-v`, kind: 'vm', vcpus: 1, memory_mib: 64 } });
    const w = await waitFor('the VM to run', async () => {
      const got = await cluster.api.get(submitted.id);
      return got.state === 'running' ? got : undefined;
    }, { timeoutMs: 120_000 });
    const own = await run('virsh', ['-c', host.libvirtUri, 'list', '--uuid']);
    expect(own.stdout.split('\n')).toContain(w.driver_ref);
    const machine = await run('virsh', ['-c', 'qemu:///system', 'list', '--all', '--uuid']);
    expect(machine.stdout.split('\n')).not.toContain(w.driver_ref);
    // Its libvirtd listens on its fabric address, inside the namespace.
    const listening = await host.inNetns(['ss', '-ltn']);
    expect(listening.stdout).toContain(`${host.address}:16509`);
  }, 180_000);

  it('adds nothing to the machine\'s own network, and "up" again changes nothing', async () => {
    await simulatedHostScript(['up', name, '--nats', cluster.nats.url, '--agent-port', host.agentAddress.split(':')[1]!]);
    const { stdout } = await simulatedHostScript(['status', name]);
    expect(stdout.trim()).toBe(`${name} ${host.address} agent=up docker=up libvirt=up`);
    expect(await machineNetwork()).toEqual(before);
  }, 120_000);

  it.each([
    { args: ['up', '../etc'], why: /NAME must be/ },
    { args: ['up', 'Upper'], why: /NAME must be/ },
    { args: ['up', 'okname', '--nats', 'nats://10.0.0.1:4222'], why: /--nats must be nats:\/\/127/ },
    { args: ['up', 'okname', '--agent-port', '99999'], why: /--agent-port must be a port/ },
  ])('refuses $args with a reason and creates nothing', async ({ args, why }) => {
    await expect(simulatedHostScript(args)).rejects.toThrow(why);
    expect(existsSync('/var/lib/virtfleet/sim/okname')).toBe(false);
    expect((await run('ip', ['netns', 'list'])).stdout).not.toMatch(/vfh-okname/);
  });

  it('down removes its namespace, daemons and state', async () => {
    await host.down();
    expect((await run('ip', ['netns', 'list'])).stdout).not.toContain(`vfh-${name}`);
    expect(existsSync(`/var/lib/virtfleet/sim/${name}`)).toBe(false);
    const { stdout } = await run('ps', ['-eo', 'args']);
    expect(stdout).not.toContain(`/var/lib/virtfleet/sim/${name}/`);
  }, 120_000);
});
