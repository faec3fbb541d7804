import { join } from 'node:path';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Hypervisor } from '@unraid/libvirt';
import { NotFoundError, createLogger, parseWorkloadSpec, type WorkloadSpec } from '@virtfleet/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backendName, type Driver, type DriverWorkload } from '../../packages/agent/src/drivers/driver.js';
import { parseOwnership } from '../../packages/agent/src/drivers/libvirt/domain-xml.js';
import { createLibvirtDriver, type LibvirtDriverConfig } from '../../packages/agent/src/drivers/libvirt/libvirt-driver.js';
import { waitUntil } from '../support/wait.js';

// Runs against the real libvirtd and QEMU on this machine; see /work/shared/ENVIRONMENT.md for the setup.
// The guests are diskless, so they never boot an OS and ignore ACPI shutdown requests.
const URI = 'qemu:///system';
// Diskless guests get only a console log here; QEMU's user must be able to reach it.
const VM_DIR = mkdtempSync('/var/tmp/vf-libvirt-itest-');
chmodSync(VM_DIR, 0o755);
const CONFIG: LibvirtDriverConfig = { uri: URI, domainType: 'auto', stopTimeoutSeconds: 10, vmDir: VM_DIR };
// Defining or starting a domain can take tens of seconds when libvirtd re-probes QEMU.
const SLOW = 300_000;

const run = randomBytes(4).toString('hex');
const hostA = `itest-a-${run}`;
const hostB = `itest-b-${run}`;
const idA = `vm-a-${run}`;
const idB = `vm-b-${run}`;
const log = createLogger('libvirt-driver-test', 'silent');
const spec = (name: string): WorkloadSpec => parseWorkloadSpec({ name, kind: 'vm', vcpus: 1, memory_mib: 64 });

const VIR_RUNNING = 1;
const VIR_PAUSED = 3;
const VIR_SHUTOFF = 5;

describe('libvirt driver against the real libvirtd', () => {
  let hv: Hypervisor;
  let a: Driver;
  let b: Driver;
  let created: DriverWorkload;
  /** The <domain type> 'auto' settled on. */
  let usedType = '';

  /** libvirt's own view of a workload's domain, not the driver's. */
  const domainName = (workloadId: string) => backendName(workloadId === idB ? hostB : hostA, workloadId);
  const domainState = async (workloadId: string) => (await hv.domainGetInfo(await hv.domainLookupByName(domainName(workloadId)))).state;
  const waitForState = (workloadId: string, want: number) =>
    waitUntil(`libvirt state ${want} for ${domainName(workloadId)}`, async () => (await domainState(workloadId)) === want, { timeoutMs: 30_000 });

  beforeAll(async () => {
    hv = new Hypervisor({ uri: URI });
    await hv.connectOpen();
    // Each host's own directory, as each agent has its own state directory.
    a = await createLibvirtDriver({ ...CONFIG, vmDir: join(VM_DIR, 'a') }, { hostId: hostA, log });
    b = await createLibvirtDriver({ ...CONFIG, vmDir: join(VM_DIR, 'b') }, { hostId: hostB, log });
  });

  afterAll(async () => {
    for (const [host, id] of [[hostA, idA], [hostB, idB]] as const) {
      const dom = await hv.domainLookupByName(backendName(host, id)).catch(() => undefined);
      if (!dom) continue;
      await hv.domainDestroy(dom).catch(() => undefined);
      await hv.domainUndefine(dom).catch(() => undefined);
    }
    await Promise.all([a?.close(), b?.close()]);
    await hv?.connectClose();
    rmSync(VM_DIR, { recursive: true, force: true });
  }, SLOW);

  it(
    'creates a running, networkless VM tagged with its host',
    async () => {
      created = await a.create(idA, spec('vm-a'));
      expect(created).toMatchObject({ workloadId: idA, name: 'vm-a', kind: 'vm', state: 'running' });
      await waitForState(idA, VIR_RUNNING);
      const dom = await hv.domainLookupByName(backendName(hostA, idA));
      expect(await hv.domainGetUUIDString(dom)).toBe(created.ref);
      const xml = await hv.domainGetXMLDesc(dom);
      expect(await parseOwnership(xml)).toEqual({ hostId: hostA, workloadId: idA, name: 'vm-a' });
      usedType = /<domain type='(kvm|qemu)'/.exec(xml)?.[1] ?? '';
      expect(usedType, 'auto picks kvm or qemu').not.toBe('');
      expect(xml).not.toMatch(/<interface/);
      expect((await hv.domainGetInfo(dom)).maxMem, '64 MiB in KiB').toBe(64 * 1024);
    },
    SLOW,
  );

  it('returns the same domain when asked to create it again', async () => {
    const again = await a.create(idA, spec('vm-a'));
    expect(again.ref).toBe(created.ref);
    expect(await hv.domainGetUUIDString(await hv.domainLookupByName(backendName(hostA, idA)))).toBe(created.ref);
  });

  it('pauses and resumes in libvirt', async () => {
    expect(await a.pause(idA)).toMatchObject({ state: 'paused' });
    await waitForState(idA, VIR_PAUSED);
    expect(await a.usage(idA), 'no usage while paused').toBeUndefined();
    expect(await a.resume(idA)).toMatchObject({ state: 'running' });
    await waitForState(idA, VIR_RUNNING);
  });

  it('reports cumulative CPU time and memory while running', async () => {
    const first = await a.usage(idA);
    expect(first?.memoryUsedMiB).toBe(64);
    expect(first?.cpuTimeNs).toBeGreaterThan(0);
    // Even a guest without an OS burns CPU in its firmware, so the counter moves.
    await waitUntil('CPU time to grow', async () => ((await a.usage(idA))?.cpuTimeNs ?? 0) > (first?.cpuTimeNs ?? Infinity), { timeoutMs: 15_000 });
  });

  it(
    'stops a guest that ignores ACPI by destroying it after the timeout',
    async () => {
      const started = Date.now();
      expect(await a.stop(idA, { timeoutSeconds: 1, force: false })).toMatchObject({ state: 'stopped' });
      expect(Date.now() - started, 'the graceful wait ran before the forced stop').toBeGreaterThanOrEqual(1000);
      await waitForState(idA, VIR_SHUTOFF);
      expect(await a.stop(idA, { timeoutSeconds: 1, force: false }), 'stopping a stopped VM succeeds').toMatchObject({ state: 'stopped' });
      expect(await a.usage(idA)).toBeUndefined();
    },
    SLOW,
  );

  it(
    'starts it again',
    async () => {
      expect(await a.start(idA)).toMatchObject({ state: 'running', ref: created.ref });
      await waitForState(idA, VIR_RUNNING);
    },
    SLOW,
  );

  it(
    'keeps two hosts sharing one libvirtd apart',
    async () => {
      const other = await b.create(idB, spec('vm-b'));
      expect(other.ref).not.toBe(created.ref);
      await waitForState(idB, VIR_RUNNING);

      expect((await a.list()).map((w) => w.workloadId)).toEqual([idA]);
      expect((await b.list()).map((w) => w.workloadId)).toEqual([idB]);
      expect(await b.inspect(idA)).toBeUndefined();
      await expect(b.pause(idA)).rejects.toBeInstanceOf(NotFoundError);
      await expect(b.stop(idA, { timeoutSeconds: 1, force: true })).rejects.toBeInstanceOf(NotFoundError);
      await b.delete(idA);
      expect(await domainState(idA), 'b deleting a’s workload left it running').toBe(VIR_RUNNING);

      await b.delete(idB);
      await expect(hv.domainLookupByName(backendName(hostB, idB))).rejects.toThrow(/Domain not found/);
    },
    SLOW,
  );

  it(
    'deletes a running VM, and deleting it again succeeds',
    async () => {
      await a.delete(idA);
      await expect(hv.domainLookupByName(backendName(hostA, idA)), 'the domain is gone from libvirt').rejects.toThrow(/Domain not found/);
      await a.delete(idA);
      expect(await a.inspect(idA)).toBeUndefined();
      expect(await a.list()).toEqual([]);
    },
    SLOW,
  );

  it(
    'fingerprints libvirt’s version, domain types and the host’s capacity',
    async () => {
      const fp = await a.fingerprint();
      expect(fp).toMatchObject({ name: 'libvirt', kinds: ['vm'], healthy: true });
      expect(fp.version, 'from virConnectGetLibVersion via the native addon').toMatch(/^\d+\.\d+\.\d+$/);
      expect(fp.domain_types, 'the type new VMs get is among those reported').toContain(usedType);
      expect(fp.detail).toContain(`new VMs use domain type ${usedType}`);
      expect(fp.detail).toMatch(/hypervisor \d+\.\d+\.\d+/);
      const node = await hv.nodeGetInfo();
      expect(fp.capacity).toEqual({ vcpus: node.cpus, memoryMiB: Math.floor(node.memory / 1024) });
      expect(fp.capacity?.memoryMiB).toBeGreaterThan(256);
    },
    SLOW,
  );
});
