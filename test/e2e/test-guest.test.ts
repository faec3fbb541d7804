import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Hypervisor } from '@unraid/libvirt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDomains } from '../support/cleanup.js';
import { testGuest, waitForConsole, type TestGuest } from '../support/test-guest.js';

const run = promisify(execFile);
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** The guest itself, booted straight on the machine's libvirtd: the tool the workload tests stand on. */
describe('the bootable test guest (scripts/test-guest.sh) under real QEMU (TCG)', () => {
  const hypervisor = new Hypervisor({ uri: 'qemu:///system' });
  const name = `vf-guest-${process.pid}`;
  let guest: TestGuest;
  let dir: string;

  beforeAll(async () => {
    guest = await testGuest();
    await hypervisor.connectOpen();
    dir = mkdtempSync('/var/tmp/vf-guest-');
    chmodSync(dir, 0o755);
  }, 600_000);
  afterAll(async () => {
    await removeDomains(hypervisor, [name]);
    await hypervisor.connectClose().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('boots to its ready marker, prints its cloud-init user-data, ticks, and counts boots on its disk across a restart', async () => {
    const baseDigest = sha256(guest.disk);
    const overlay = join(dir, 'root.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', guest.disk, overlay]);
    writeFileSync(join(dir, 'user-data'), '#cloud-config\nmessage: hello from user-data\n');
    writeFileSync(join(dir, 'meta-data'), `instance-id: ${name}\n`);
    const seed = join(dir, 'seed.iso');
    await run('genisoimage', ['-quiet', '-output', seed, '-volid', 'cidata', '-joliet', '-rock', join(dir, 'user-data'), join(dir, 'meta-data')]);
    const log = join(dir, 'console.log');
    const xml = `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><kernel>${guest.kernel}</kernel><initrd>${guest.initrd}</initrd><cmdline>console=ttyS0 quiet</cmdline></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${overlay}'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='${seed}'/><target dev='sda' bus='scsi'/><readonly/></disk>
    <controller type='scsi' model='virtio-scsi' index='0'/>
    <serial type='file'><source path='${log}' append='on'/><target port='0'/></serial>
  </devices>
</domain>`;
    const domain = await hypervisor.domainDefineXML(xml);
    await hypervisor.domainCreate(domain);
    const first = await waitForConsole(log, 'VIRTFLEET-TICK 3', { timeoutMs: 120_000 });
    expect(first).toContain('VIRTFLEET-BOOTS 1');
    expect(first).toMatch(/VIRTFLEET-USER-DATA-BEGIN\s+#cloud-config\s+message: hello from user-data\s+VIRTFLEET-USER-DATA-END/);
    expect(first.indexOf('VIRTFLEET-GUEST-READY')).toBeLessThan(first.indexOf('VIRTFLEET-TICK 1'));

    await hypervisor.domainDestroy(domain);
    await hypervisor.domainCreate(domain);
    const second = await waitForConsole(log, 'VIRTFLEET-GUEST-READY', { count: 2, timeoutMs: 120_000 });
    expect(second).toContain('VIRTFLEET-BOOTS 2');
    // The boots went to the overlay; the cached base disk is as it was.
    await hypervisor.domainDestroy(domain);
    expect(sha256(guest.disk)).toBe(baseDigest);
  }, 300_000);
});
