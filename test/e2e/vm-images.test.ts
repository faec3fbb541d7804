import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { pb } from '@virtfleet/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { testGuestSpec } from '../support/playground.js';
import { freePort } from '../support/processes.js';
import { startSimulatedHost, type SimulatedHost } from '../support/simulated-host.js';
import { testGuest, waitForConsole, type TestGuest } from '../support/test-guest.js';
import { GiveUp, waitFor, waitUntil } from '../support/wait.js';
import { TEST_IMAGE } from '../support/workloads.js';

const run = promisify(execFile);
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const GUEST_BOOT_MS = 180_000;

/**
 * Real workloads from catalog images, all through virtfleet, on two simulated
 * hosts (own libvirtd, dockerd and agent each): the test guest boots from a
 * qcow2 overlay with direct kernel boot and a cloud-init seed, under TCG.
 */
describe('VMs and containers from catalog images on simulated hosts', () => {
  let cluster: TestCluster;
  let hosts: SimulatedHost[];
  let guest: TestGuest;
  let dir: string;
  const tag = `i${process.pid % 100_000}`;
  const cli = (...args: string[]) => cluster.cli(...args);
  const vmsOf = (host: SimulatedHost) => join(host.agentStateDir, 'vms');
  const filesOf = (host: SimulatedHost) => (existsSync(vmsOf(host)) ? readdirSync(vmsOf(host)) : []);
  const fetchesLogged = (host: SimulatedHost, digest: string) =>
    readFileSync(host.agentLog, 'utf8')
      .split('\n')
      .filter((line) => line.includes('"image fetched"') && line.includes(digest)).length;
  const domainsOf = async (host: SimulatedHost) => (await run('virsh', ['-c', host.libvirtUri, 'list', '--all', '--name'])).stdout.split('\n').filter((l) => l.trim() !== '');
  const runningOn = (id: string) =>
    waitFor(
      `workload ${id} running`,
      async () => {
        const w = await cluster.api.get(id);
        if (w.state === 'failed') throw new GiveUp(`workload ${id} failed: ${w.message}`);
        return w.state === 'running' ? w : undefined;
      },
      { timeoutMs: GUEST_BOOT_MS },
    );
  const guestSpec = (name: string, extra: Partial<pb.WorkloadSpec> = {}): pb.WorkloadSpec => testGuestSpec(tag, name, extra);

  beforeAll(async () => {
    guest = await testGuest();
    cluster = await startCluster({ agents: [] });
    hosts = [];
    for (const n of ['a', 'b']) hosts.push(await startSimulatedHost(`${tag}${n}`, cluster.nats, await freePort(), cluster.pki.dir));
    dir = mkdtempSync(join(tmpdir(), 'vf-vm-images-'));
    for (const [file, name, format] of [
      [guest.kernel, 'kernel', 'kernel'],
      [guest.initrd, 'initrd', 'initrd'],
      [guest.disk, 'disk', 'qcow2'],
    ] as const) {
      const imported = await cli('image', 'import', file, '--name', `${tag}-${name}`, '-o', 'json');
      expect(imported.code, imported.stderr).toBe(0);
      expect(JSON.parse(imported.stdout)).toMatchObject({ format, digest: `sha256:${sha256(file)}` });
    }
    await waitUntil('both simulated hosts up', async () => (await cluster.api.hosts()).hosts.filter((h) => h.status === 'up').length === 2, { timeoutMs: 60_000 });
  }, 600_000);
  afterAll(async () => {
    for (const h of hosts ?? []) await h.down().catch(() => undefined);
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 300_000);

  it('boots a VM from catalog images with cloud-init, keeps its disk across a stop and start, and deletes its files but not the image', async () => {
    const [a, b] = hosts as [SimulatedHost, SimulatedHost];
    await cluster.api.cordon(b.name, true);
    const submitted = await cluster.api.submit({
      request_id: `${tag}-vm1`,
      spec: guestSpec(`${tag}-vm1`, { disks: [{ name: 'data', size_gib: 2 }], cloud_init: { user_data: '#cloud-config\nmessage: hello from virtfleet\n', meta_data: '', network_config: '', ssh_authorized_keys: [], hostname: '' } }),
    });
    // Pinned at submit: the names became the digests the catalog held.
    expect(submitted.spec?.image).toBe(`${tag}-disk@sha256:${sha256(guest.disk)}`);
    expect(submitted.spec?.boot?.kernel).toBe(`${tag}-kernel@sha256:${sha256(guest.kernel)}`);
    const w = await runningOn(submitted.id);
    expect(w.host_id).toBe(a.name);

    const files = join(vmsOf(a), w.id);
    const consoleLog = join(files, 'console.log');
    const first = await waitForConsole(consoleLog, 'VIRTFLEET-TICK 2', { timeoutMs: GUEST_BOOT_MS });
    expect(first).toContain('VIRTFLEET-BOOTS 1');
    expect(first).toMatch(/VIRTFLEET-USER-DATA-BEGIN\s+#cloud-config\s+message: hello from virtfleet\s+VIRTFLEET-USER-DATA-END/);
    // The same console through virtfleet: agent → coordinator → CLI.
    const logs = await cli('workload', 'logs', w.id);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toContain('VIRTFLEET-BOOTS 1');
    expect(logs.stdout).toContain('VIRTFLEET-GUEST-READY');
    expect((await cli('workload', 'logs', w.id, '--tail', '1')).stdout).toMatch(/^[^\n]*VIRTFLEET-TICK \d+\s*$/);
    const since = await cli('workload', 'logs', w.id, '--since', new Date().toISOString());
    expect(since.code).toBe(2);
    expect(since.stderr).toMatch(/options\.since: .*a VM's console log carries no timestamps/);
    // The root overlay grown to disk_gib over the cached image, and the data disk.
    const root = JSON.parse((await run('qemu-img', ['info', '--output=json', '-U', join(files, 'root.qcow2')])).stdout) as { 'virtual-size': number; 'backing-filename': string };
    expect(root['virtual-size']).toBe(2 ** 30);
    expect(root['backing-filename']).toBe(join(a.agentStateDir, 'images', sha256(guest.disk)));
    const data = JSON.parse((await run('qemu-img', ['info', '--output=json', '-U', join(files, 'disk-data.qcow2')])).stdout) as { 'virtual-size': number };
    expect(data['virtual-size']).toBe(2 * 2 ** 30);

    // Its images cannot leave the catalog while it exists.
    const rm = await cli('image', 'rm', `${tag}-kernel`);
    expect(rm.code).toBe(5);
    expect(rm.stderr).toContain(`image ${tag}-kernel is used by 1 workload (${tag}-vm1)`);

    await cluster.api.act('StopWorkload', { id: w.id, request_id: `${tag}-vm1-stop`, force: true });
    await waitUntil('stopped', async () => (await cluster.api.get(w.id)).state === 'stopped', { timeoutMs: 60_000 });
    await cluster.api.act('StartWorkload', { id: w.id, request_id: `${tag}-vm1-start` });
    const second = await waitForConsole(consoleLog, 'VIRTFLEET-GUEST-READY', { count: 2, timeoutMs: GUEST_BOOT_MS });
    expect(second).toContain('VIRTFLEET-BOOTS 2');

    await cluster.api.act('DeleteWorkload', { id: w.id, request_id: `${tag}-vm1-delete` });
    await waitUntil('deleted', async () => (await cluster.api.get(w.id).catch(() => undefined))?.state !== 'running' && !existsSync(files), { timeoutMs: 60_000 });
    expect(await domainsOf(a)).toEqual([]);
    // The base image stays cached, unchanged, for the next VM.
    expect(sha256(join(a.agentStateDir, 'images', sha256(guest.disk)))).toBe(sha256(guest.disk));
    await cluster.api.cordon(b.name, false);
  }, 600_000);

  it('fetches an image once per host: the host holding it wins on image locality, another host fetches it once', async () => {
    const [a, b] = hosts as [SimulatedHost, SimulatedHost];
    const digest = sha256(guest.disk);
    const plan = await cluster.api.plan(guestSpec(`${tag}-plan`));
    const locality = (hostId: string) => plan.candidates.find((c) => c.host_id === hostId)?.scores.find((s) => s.plugin === 'image-locality')?.score;
    expect(locality(a.name)).toBe(100);
    expect(locality(b.name)).toBe(0);

    await cluster.api.cordon(a.name, true);
    const ids: string[] = [];
    for (const n of [1, 2]) ids.push((await cluster.api.submit({ request_id: `${tag}-b${n}`, spec: guestSpec(`${tag}-b${n}`) })).id);
    for (const id of ids) expect((await runningOn(id)).host_id).toBe(b.name);
    expect(fetchesLogged(a, digest)).toBe(1);
    expect(fetchesLogged(b, digest)).toBe(1);
    for (const id of ids) await waitForConsole(join(vmsOf(b), id, 'console.log'), 'VIRTFLEET-GUEST-READY', { timeoutMs: GUEST_BOOT_MS });
    for (const id of ids) await cluster.api.act('DeleteWorkload', { id, request_id: `${id}-delete` });
    await waitUntil('their files gone', () => filesOf(b).length === 0, { timeoutMs: 60_000 });
    await cluster.api.cordon(a.name, false);
  }, 600_000);

  it('runs a container from a docker save archive in the catalog, loaded once into the host\'s engine', async () => {
    const archive = join(dir, 'busybox.tar');
    await run('docker', ['save', '-o', archive, TEST_IMAGE]);
    const imported = await cli('image', 'import', archive, '--name', `${tag}-box`);
    expect(imported.code, imported.stderr).toBe(0);
    const submitted = await cluster.api.submit({ request_id: `${tag}-c`, spec: { name: `${tag}-c`, kind: 'container', image: `${tag}-box`, vcpus: 0.1, memory_mib: 32, command: ['sleep', '3600'] } });
    expect(submitted.spec?.image).toBe(`${tag}-box@sha256:${sha256(archive)}`);
    const w = await runningOn(submitted.id);
    const host = hosts.find((h) => h.name === w.host_id)!;
    const inspected = await host.docker.getContainer(w.driver_ref).inspect();
    expect(inspected.Config.Image).toBe(`virtfleet-catalog:${sha256(archive)}`);
    await cluster.api.act('DeleteWorkload', { id: w.id, request_id: `${tag}-c-delete` });
  }, 300_000);

  it('puts a VM and a container on the host network: each gets an address, and the container reaches the VM', async () => {
    const [a, b] = hosts as [SimulatedHost, SimulatedHost];
    await waitUntil('both hosts to offer the network', async () => {
      const plan = await cluster.api.plan(guestSpec(`${tag}-netplan`, { network: 'default' }));
      return plan.candidates.filter((c) => c.feasible).length === 2;
    }, { timeoutMs: 30_000 });
    await cluster.api.cordon(b.name, true);
    const vmId = (await cluster.api.submit({ request_id: `${tag}-netvm`, spec: guestSpec(`${tag}-netvm`, { network: 'default' }) })).id;
    const containerId = (await cluster.api.submit({ request_id: `${tag}-netc`, spec: { name: `${tag}-netc`, kind: 'container', image: TEST_IMAGE, vcpus: 0.1, memory_mib: 32, command: ['sleep', '3600'], network: 'default' } })).id;
    const c = await runningOn(containerId);
    await runningOn(vmId);
    const console = await waitForConsole(join(vmsOf(a), vmId, 'console.log'), 'VIRTFLEET-GUEST-READY', { timeoutMs: GUEST_BOOT_MS });
    const vmIp = /VIRTFLEET-IP (\d+\.\d+\.\d+\.\d+)/.exec(console)?.[1];
    // The VM's address is one libvirt's DHCP gave from the lower half of the host's 10.253.0.0/24.
    expect(vmIp).toMatch(/^10\.253\.0\.(\d+)$/);
    expect(Number(vmIp!.split('.')[3])).toBeLessThan(128);
    const inspected = await a.docker.getContainer(c.driver_ref).inspect();
    const containerIp = inspected.NetworkSettings.Networks['virtfleet-default']?.IPAddress ?? '';
    expect(Number(containerIp.split('.')[3])).toBeGreaterThanOrEqual(128);
    // Inside host a's namespace: the container pings the VM over the shared bridge.
    const ping = await run('docker', ['-H', a.dockerHost, 'exec', c.driver_ref, 'busybox', 'ping', '-c', '2', '-W', '5', vmIp!]);
    expect(ping.stdout).toMatch(/2 packets received/);
    // Both addresses reach the coordinator through telemetry: workload get shows them.
    await waitUntil('the addresses in workload get', async () => (await cluster.api.get(vmId)).addresses.includes(vmIp!) && (await cluster.api.get(containerId)).addresses.includes(containerIp), { timeoutMs: 30_000 });
    const shown = await cli('workload', 'get', vmId);
    expect(shown.stdout).toMatch(new RegExp(`addresses:\\s+${vmIp!.replaceAll('.', '\\.')}\\n`));
    expect(shown.stdout).toMatch(/network:\s+default\n/);
    for (const id of [vmId, containerId]) await cluster.api.act('DeleteWorkload', { id, request_id: `${id}-delete` });
    await waitUntil('the VM\'s files gone', () => filesOf(a).length === 0, { timeoutMs: 60_000 });
    await cluster.api.cordon(b.name, false);
  }, 300_000);

  it('publishes a VM\'s port on its host\'s address (DNAT in the host\'s namespace), and takes the rules away with it', async () => {
    const [a, b] = hosts as [SimulatedHost, SimulatedHost];
    await cluster.api.cordon(b.name, true);
    const vmId = (await cluster.api.submit({ request_id: `${tag}-webvm`, spec: guestSpec(`${tag}-webvm`, { network: 'default', ports: [{ host_port: 18081, port: 80, protocol: 'tcp' }] }) })).id;
    await runningOn(vmId);
    await waitForConsole(join(vmsOf(a), vmId, 'console.log'), 'VIRTFLEET-GUEST-READY', { timeoutMs: GUEST_BOOT_MS });
    const { page } = await waitFor('the VM\'s published port to answer', async () => {
      const got = await a.inNetns(['busybox', 'wget', '-q', '-O', '-', `http://${a.address}:18081/`]).catch(() => undefined);
      return got?.stdout.includes('VIRTFLEET-HTTP') ? { page: got.stdout } : undefined;
    }, { timeoutMs: 60_000 });
    expect(page).toContain('VIRTFLEET-HTTP');
    const rules = async () => (await a.inNetns(['iptables-save'])).stdout.split('\n').filter((l) => l.includes(`virtfleet:${vmId}`));
    expect(await rules()).toHaveLength(3);
    await cluster.api.act('DeleteWorkload', { id: vmId, request_id: `${vmId}-delete` });
    await waitUntil('its rules gone', async () => (await rules()).length === 0, { timeoutMs: 30_000 });
    await cluster.api.cordon(b.name, false);
  }, 300_000);

  it('publishes a container\'s port on its host\'s address, and books the host port so a second one waits', async () => {
    const [a, b] = hosts as [SimulatedHost, SimulatedHost];
    await cluster.api.cordon(b.name, true);
    const server = 'mkdir -p /www && echo VIRTFLEET-PORT-OK > /www/index.html && exec busybox httpd -f -p 8080 -h /www';
    const web = (name: string) => ({ name, kind: 'container', image: TEST_IMAGE, vcpus: 0.1, memory_mib: 32, command: ['/bin/sh', '-c', server], network: 'default', ports: [{ host_port: 18080, port: 8080, protocol: 'tcp' }] });
    const first = await runningOn((await cluster.api.submit({ request_id: `${tag}-web1`, spec: web(`${tag}-web1`) })).id);
    expect(first.host_id).toBe(a.name);
    // From inside host a's namespace, to its fabric address.
    // (busybox wget's -T crashes the static build; inNetns has its own 30 s limit.)
    const { page } = await waitFor('the published port to answer', async () => {
      const got = await a.inNetns(['busybox', 'wget', '-q', '-O', '-', `http://${a.address}:18080/`]).catch(() => undefined);
      return got?.stdout.includes('VIRTFLEET-PORT-OK') ? { page: got.stdout } : undefined;
    }, { timeoutMs: 30_000 });
    expect(page).toContain('VIRTFLEET-PORT-OK');
    const second = await cluster.api.submit({ request_id: `${tag}-web2`, spec: web(`${tag}-web2`) });
    await waitUntil('the second to wait for the port', async () => (await cluster.api.get(second.id)).message.includes('tcp port 18080 taken'), { timeoutMs: 30_000 });
    expect((await cluster.api.get(second.id)).state).toBe('pending');
    // The port frees with the first; the second then runs there.
    await cluster.api.act('DeleteWorkload', { id: first.id, request_id: `${tag}-web1-delete` });
    expect((await runningOn(second.id)).host_id).toBe(a.name);
    await cluster.api.act('DeleteWorkload', { id: second.id, request_id: `${tag}-web2-delete` });
    await cluster.api.cordon(b.name, false);
  }, 180_000);

  it('keeps a workload that names a network no host offers pending with the reason', async () => {
    const w = await cluster.api.submit({ request_id: `${tag}-nonet`, spec: { name: `${tag}-nonet`, kind: 'container', image: TEST_IMAGE, vcpus: 0.1, memory_mib: 32, network: 'backend' } });
    await waitUntil('the scheduler to have judged it', async () => (await cluster.api.get(w.id)).message.includes('no network backend'), { timeoutMs: 30_000 });
    expect((await cluster.api.get(w.id)).state).toBe('pending');
    await cluster.api.act('DeleteWorkload', { id: w.id, request_id: `${tag}-nonet-delete` });
  });

  it.each([
    { what: 'an unknown image', spec: { image: `${tag}-nope` }, field: /spec\.image: no image named/ },
    { what: 'a name with ../', spec: { image: '../etc/passwd' }, field: /spec\.image: must name a catalog image/ },
    { what: 'XML metacharacters in an image name', spec: { image: "a'/><x" }, field: /spec\.image: must name a catalog image/ },
    { what: 'a kernel image as root disk', spec: { image: `${tag}-kernel` }, field: /spec\.image: image \S+ is kernel/ },
    { what: 'malformed cloud-init', spec: { cloud_init: { user_data: '#cloud-config\nruncmd: [unclosed\n', meta_data: '', network_config: '', ssh_authorized_keys: [], hostname: '' } }, field: /spec\.cloud_init\.user_data: #cloud-config is not valid YAML/ },
    { what: 'a data disk named ../x', spec: { disks: [{ name: '../x', size_gib: 1 }] }, field: /spec\.disks\.0\.name/ },
  ])('refuses $what at submit with INVALID_ARGUMENT and leaves nothing on any host', async ({ spec, field }) => {
    const before = await cluster.api.list();
    const err = await cluster.api.submit({ request_id: `${tag}-bad-${Math.random().toString(36).slice(2, 8)}`, spec: guestSpec(`${tag}-bad`, spec as Partial<pb.WorkloadSpec>) }).catch((e: unknown) => e);
    expect((err as { code?: number }).code).toBe(3);
    expect((err as Error).message).toMatch(field);
    expect((await cluster.api.list()).workloads.length).toBe(before.workloads.length);
    for (const h of hosts) {
      expect(filesOf(h)).toEqual([]);
      expect(await domainsOf(h)).toEqual([]);
    }
  });

  it('keeps a VM whose disks no host can hold pending with the reason, and makes nothing anywhere', async () => {
    const submitted = await cluster.api.submit({ request_id: `${tag}-huge`, spec: guestSpec(`${tag}-huge`, { disks: [{ name: 'huge', size_gib: 1_000_000 }] }) });
    await waitUntil('the scheduler to have judged it', async () => (await cluster.api.get(submitted.id)).message.includes('insufficient disk'), { timeoutMs: 30_000 });
    expect((await cluster.api.get(submitted.id)).state).toBe('pending');
    for (const h of hosts) expect(filesOf(h)).toEqual([]);
    await cluster.api.act('DeleteWorkload', { id: submitted.id, request_id: `${tag}-huge-delete` });
  }, 120_000);
});
