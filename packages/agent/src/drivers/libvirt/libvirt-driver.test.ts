import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hypervisor } from '@unraid/libvirt';
import {
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  createLogger,
  parseWorkloadSpec,
  type WorkloadSpec,
} from '@virtfleet/shared';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { backendName, type Driver } from '../driver.js';
import { parseOwnership } from './domain-xml.js';
import { LibvirtDriver, chooseDomainType, createLibvirtDriver, mapDomainState, mapLibvirtError, type LibvirtDriverConfig } from './libvirt-driver.js';

// test:///default is libvirt's simulated hypervisor, private to this process and shared by every connection in it.
const TEST_URI = 'test:///default';
const UNREACHABLE_URI = 'qemu+unix:///system?socket=/nonexistent/libvirt-sock';
const log = createLogger('libvirt-driver-test', 'silent');
// Diskless test guests get only a console log there; removed once the file's tests are done.
const VM_DIR = mkdtempSync(join(tmpdir(), 'vf-libvirt-unit-'));
afterAll(() => rmSync(VM_DIR, { recursive: true, force: true }));
const config = (overrides: Partial<LibvirtDriverConfig> = {}): LibvirtDriverConfig => ({ uri: TEST_URI, domainType: 'auto', stopTimeoutSeconds: 10, vmDir: VM_DIR, ...overrides });
const vm = (name: string, overrides: Partial<WorkloadSpec> = {}): WorkloadSpec => ({ ...parseWorkloadSpec({ name, kind: 'vm', vcpus: 1, memory_mib: 64 }), ...overrides });
const HOSTILE_HOST = `host-a'"<>&`;

describe('mapDomainState', () => {
  it.each([
    { libvirt: 0, name: 'nostate', want: 'unknown' },
    { libvirt: 1, name: 'running', want: 'running' },
    { libvirt: 2, name: 'blocked', want: 'running' },
    { libvirt: 3, name: 'paused', want: 'paused' },
    { libvirt: 4, name: 'shutdown (in progress)', want: 'running' },
    { libvirt: 5, name: 'shutoff', want: 'stopped' },
    { libvirt: 6, name: 'crashed', want: 'failed' },
    { libvirt: 7, name: 'pmsuspended', want: 'paused' },
    { libvirt: 8, name: 'a future state', want: 'unknown' },
    { libvirt: -1, name: 'garbage', want: 'unknown' },
  ])('maps $libvirt ($name) to $want', ({ libvirt, want }) => {
    expect(mapDomainState(libvirt).state).toBe(want);
  });

  it.each([2, 4, 6, 7])('explains the less obvious state %i in a message', (state) => {
    expect(mapDomainState(state).message).toBeTruthy();
  });
});

describe('mapLibvirtError', () => {
  it.each([
    { message: 'Domain not found', want: NotFoundError },
    { message: "Domain not found: no domain with matching uuid '21ec116a-a8e0-4c48-906a-2be9c8496050' (virtfleet-x)", want: NotFoundError },
    { message: "Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory", want: UnavailableError },
    { message: 'Cannot recv data: Connection reset by peer', want: UnavailableError },
    { message: 'Cannot write data: Broken pipe', want: UnavailableError },
    { message: 'End of file while reading data: Input/output error', want: UnavailableError },
    { message: 'internal error: client socket is closed', want: UnavailableError },
    { message: 'invalid connection pointer in virConnectListAllDomains', want: UnavailableError },
    { message: 'Requested operation is not valid: domain is not running', want: FailedPreconditionError },
    { message: "internal error: domain 'x' not paused", want: InternalError },
    { message: 'XML error: an os <type> must be specified', want: InternalError },
  ])('maps "$message" to $want.name', ({ message, want }) => {
    const mapped = mapLibvirtError(Object.assign(new Error(message), { code: -1 }), 'web-1');
    expect(mapped).toBeInstanceOf(want);
    expect(mapped.message).toContain(want === NotFoundError ? 'web-1' : message);
    expect(mapped.cause).toBeDefined();
  });

  it('passes virtfleet errors through', () => {
    const err = new FailedPreconditionError('no');
    expect(mapLibvirtError(err)).toBe(err);
  });
});

describe('chooseDomainType', () => {
  it.each([
    { name: 'explicit kvm wins', configured: 'kvm', uri: 'qemu:///system', offered: ['qemu'], kvmDevice: false, want: 'kvm' },
    { name: 'explicit qemu wins', configured: 'qemu', uri: 'qemu:///system', offered: ['qemu', 'kvm'], kvmDevice: true, want: 'qemu' },
    { name: 'test URI', configured: 'auto', uri: 'test:///default', offered: undefined, kvmDevice: true, want: 'test' },
    { name: 'test URI over a transport', configured: 'auto', uri: 'test+unix:///default', offered: [], kvmDevice: true, want: 'test' },
    { name: 'capabilities win over the URI scheme', configured: 'auto', uri: 'test:///default', offered: ['qemu', 'kvm'], kvmDevice: false, want: 'kvm' },
    { name: 'capabilities offering only test', configured: 'auto', uri: 'qemu:///system', offered: ['test'], kvmDevice: true, want: 'test' },
    { name: 'capabilities offer kvm', configured: 'auto', uri: 'qemu:///system', offered: ['qemu', 'kvm'], kvmDevice: false, want: 'kvm' },
    { name: 'capabilities offer only qemu', configured: 'auto', uri: 'qemu:///system', offered: ['qemu'], kvmDevice: true, want: 'qemu' },
    { name: 'no capabilities, /dev/kvm usable', configured: 'auto', uri: 'qemu:///system', offered: undefined, kvmDevice: true, want: 'kvm' },
    { name: 'no capabilities, no /dev/kvm', configured: 'auto', uri: 'qemu:///system', offered: undefined, kvmDevice: false, want: 'qemu' },
    { name: 'empty capabilities fall back to /dev/kvm', configured: 'auto', uri: 'qemu+ssh://h/system', offered: [], kvmDevice: false, want: 'qemu' },
  ] as const)('$name → $want', ({ configured, uri, offered, kvmDevice, want }) => {
    expect(chooseDomainType(configured, uri, offered, kvmDevice)).toBe(want);
  });
});

describe('LibvirtDriver on test:///default', () => {
  let hv: Hypervisor;
  let a: Driver;
  let b: Driver;
  const drivers: Driver[] = [];
  const open = async (hostId: string, overrides: Partial<LibvirtDriverConfig> = {}) => {
    // Each driver its own directory, as each agent has its own state directory.
    const driver = await createLibvirtDriver(config({ vmDir: join(VM_DIR, `host-${drivers.length}`), ...overrides }), { hostId, log });
    drivers.push(driver);
    return driver;
  };
  const libvirtState = async (workloadId: string) => (await hv.domainGetInfo(await hv.domainLookupByName(backendName(HOSTILE_HOST, workloadId)))).state;

  beforeAll(async () => {
    hv = new Hypervisor({ uri: TEST_URI });
    await hv.connectOpen();
    a = await open(HOSTILE_HOST);
    b = await open('host-b');
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });
  afterAll(async () => {
    await Promise.all(drivers.map((d) => d.close()));
    await hv.connectClose();
  });

  it('runs a workload through its whole lifecycle, idempotently at every step', async () => {
    const id = 'life-0a1b2c3d';
    const created = await a.create(id, vm('life', { labels: { note: `a'"<>&` } }));
    expect(created).toMatchObject({ workloadId: id, name: 'life', kind: 'vm', state: 'running' });
    expect(await libvirtState(id), 'libvirt itself says running').toBe(1);
    expect(await a.create(id, vm('life')), 'create again returns the same domain').toEqual(created);

    expect(await a.pause(id)).toMatchObject({ state: 'paused', ref: created.ref });
    expect(await libvirtState(id)).toBe(3);
    expect(await a.pause(id)).toMatchObject({ state: 'paused' });
    expect(await a.resume(id)).toMatchObject({ state: 'running' });
    expect(await libvirtState(id)).toBe(1);
    expect(await a.resume(id)).toMatchObject({ state: 'running' });
    expect(await a.start(id), 'starting a running workload changes nothing').toMatchObject({ state: 'running' });

    const usage = await a.usage(id);
    expect(usage?.memoryUsedMiB).toBe(64);
    expect(usage?.cpuTimeNs).toBeGreaterThan(0);

    expect(await a.stop(id, { timeoutSeconds: 5, force: false })).toMatchObject({ state: 'stopped' });
    expect(await libvirtState(id)).toBe(5);
    expect(await a.stop(id, { timeoutSeconds: 5, force: false }), 'stopping a stopped workload succeeds').toMatchObject({ state: 'stopped' });
    expect(await a.usage(id), 'no usage while stopped').toBeUndefined();
    await expect(a.pause(id)).rejects.toBeInstanceOf(FailedPreconditionError);
    await expect(a.resume(id)).rejects.toBeInstanceOf(FailedPreconditionError);

    expect(await a.start(id)).toMatchObject({ state: 'running', ref: created.ref });
    expect(await a.stop(id, { timeoutSeconds: 5, force: true })).toMatchObject({ state: 'stopped' });
    expect(await a.start(id)).toMatchObject({ state: 'running' });
    await a.pause(id);
    expect(await a.stop(id, { timeoutSeconds: 5, force: false }), 'a paused workload can be stopped').toMatchObject({ state: 'stopped' });

    await a.delete(id);
    await expect(hv.domainLookupByName(backendName(HOSTILE_HOST, id)), 'the domain is gone from libvirt').rejects.toThrow(/Domain not found/);
    await a.delete(id);
    expect(await a.inspect(id)).toBeUndefined();
    expect(await a.usage(id)).toBeUndefined();
    await expect(a.start(id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(a.stop(id, { timeoutSeconds: 1, force: false })).rejects.toBeInstanceOf(NotFoundError);
  });

  it('reports a paused domain that libvirt holds transient (a live migration arriving) as creating, and a paused persistent one as paused', async () => {
    const id = 'arriving-0a1b2c3d';
    await a.create(id, vm('arriving'));
    expect(await a.pause(id)).toMatchObject({ state: 'paused' });
    expect(await a.inspect(id), 'paused, and persistent: a paused VM').toMatchObject({ state: 'paused' });
    // Undefining a domain that runs leaves it transient, as libvirt keeps an incoming migration until it completes.
    await hv.domainUndefine(await hv.domainLookupByName(backendName(HOSTILE_HOST, id)));
    expect(await a.inspect(id)).toMatchObject({ state: 'creating', message: 'receiving a live migration' });
    expect((await a.list()).find((w) => w.workloadId === id)).toMatchObject({ state: 'creating' });
    await a.delete(id);
    expect(await a.inspect(id)).toBeUndefined();
  });

  it('writes its metadata so that hostile host ids and labels survive libvirt', async () => {
    const id = 'meta-0a1b2c3d';
    await a.create(id, vm('meta', { labels: { team: `</virtfleet:workload><devices>`, quote: `"'` } }));
    const xml = await hv.domainGetXMLDesc(await hv.domainLookupByName(backendName(HOSTILE_HOST, id)));
    expect(await parseOwnership(xml)).toEqual({ hostId: HOSTILE_HOST, workloadId: id, name: 'meta' });
    expect(xml).not.toMatch(/<interface/);
    await a.delete(id);
  });

  it('keeps two hosts apart on one libvirt', async () => {
    const idA = 'own-a-0a1b2c3d';
    const idB = 'own-b-0a1b2c3d';
    const wa = await a.create(idA, vm('own-a'));
    const wb = await b.create(idB, vm('own-b'));

    expect((await a.list()).map((w) => w.workloadId)).toEqual([idA]);
    expect((await b.list()).map((w) => w.workloadId)).toEqual([idB]);
    expect(await b.inspect(idA)).toBeUndefined();
    expect(await b.usage(idA)).toBeUndefined();
    for (const touch of [() => b.pause(idA), () => b.resume(idA), () => b.start(idA), () => b.stop(idA, { timeoutSeconds: 1, force: true })]) {
      await expect(touch(), 'another host’s workload does not exist for b').rejects.toBeInstanceOf(NotFoundError);
    }
    // A rescheduled workload: b gets its own copy of the same workload id, in its own domain.
    const copy = await b.create(idA, vm('own-a'));
    expect(copy.ref, 'b’s copy is a separate domain').not.toBe(wa.ref);
    await b.delete(idA);
    expect(await a.inspect(idA), 'b deleting its copy leaves a’s alone').toMatchObject({ state: 'running', ref: wa.ref });

    await a.delete(idA);
    await b.delete(idB);
    expect(wb.ref).not.toBe(wa.ref);
    expect(await b.list()).toEqual([]);
  });

  it('ignores domains virtfleet did not make, even with a virtfleet name', async () => {
    const id = 'foreign-0a1b2c3d';
    const dom = await hv.domainDefineXML(
      `<domain type='test'><name>${backendName('host-b', id)}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>`,
    );
    try {
      expect(await b.inspect(id)).toBeUndefined();
      expect((await b.list()).map((w) => w.workloadId)).not.toContain(id);
      await expect(b.create(id, vm('foreign'))).rejects.toThrow(/belongs to something other than virtfleet/);
      await b.delete(id);
      expect(await hv.domainGetName(await hv.domainLookupByName(backendName('host-b', id))), 'delete left it alone').toBe(backendName('host-b', id));
    } finally {
      await hv.domainUndefine(dom);
    }
  });

  it.each([
    { name: 'markup in the name', id: 'x-0a1b2c3d', spec: { ...vm('x'), name: 'x</name><devices>' }, field: 'spec.name' },
    { name: 'markup in the id', id: 'x</name><devices>', spec: vm('x'), field: 'workload_id' },
    { name: 'a container spec', id: 'c-0a1b2c3d', spec: { ...vm('c'), kind: 'container' as const, image: 'busybox' }, field: 'spec.kind' },
  ])('rejects $name before touching libvirt', async ({ id, spec, field }) => {
    const define = vi.spyOn(Hypervisor.prototype, 'domainDefineXML');
    await expect(a.create(id, spec)).rejects.toMatchObject({ constructor: InvalidArgumentError, field });
    expect(define).not.toHaveBeenCalled();
  });

  it.each(['Bad_Id', '', '../x', 'x'.repeat(81)])('treats the invalid id %j as absent', async (id) => {
    expect(await a.inspect(id)).toBeUndefined();
    expect(await a.usage(id)).toBeUndefined();
    await a.delete(id);
    await expect(a.start(id)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('reads each domain’s XML once, not on every list', async () => {
    const id = 'cache-0a1b2c3d';
    const driver = await open('host-cache');
    await driver.create(id, vm('cache'));
    const getXml = vi.spyOn(Hypervisor.prototype, 'domainGetXMLDesc');
    await driver.list();
    const afterFirst = getXml.mock.calls.length;
    for (let i = 0; i < 3; i++) await driver.list();
    await driver.inspect(id);
    await driver.usage(id);
    expect(getXml.mock.calls.length, 'later lists use the ownership cache').toBe(afterFirst);
    await driver.delete(id);
  });

  it('reconnects when the connection is lost, and retries the operation once', async () => {
    const id = 'reconnect-0a1b2c3d';
    const driver = await open('host-reconnect');
    await driver.create(id, vm('reconnect'));
    const connectOpen = vi.spyOn(Hypervisor.prototype, 'connectOpen');
    const getInfo = vi.spyOn(Hypervisor.prototype, 'domainGetInfo').mockRejectedValueOnce(new Error('Cannot recv data: Connection reset by peer'));
    expect(await driver.inspect(id)).toMatchObject({ state: 'running' });
    expect(connectOpen, 'a new connection was opened').toHaveBeenCalledTimes(1);
    expect(getInfo.mock.calls.length).toBeGreaterThanOrEqual(2);

    getInfo.mockRejectedValue(new Error('End of file while reading data: Input/output error'));
    await expect(driver.inspect(id), 'gives up after one retry').rejects.toBeInstanceOf(UnavailableError);
    getInfo.mockRestore();
    await driver.delete(id);
  });

  it('fingerprints the simulated host through the native addon', async () => {
    const fp = await a.fingerprint();
    expect(fp).toMatchObject({ name: 'libvirt', kinds: ['vm'], healthy: true, domain_types: ['test'] });
    expect(fp.version, 'the addon reports libvirt’s version').toMatch(/^\d+\.\d+\.\d+$/);
    expect(fp.capacity?.vcpus).toBeGreaterThan(0);
    expect(fp.capacity?.memoryMiB).toBeGreaterThan(0);
    expect(fp.detail).toContain(TEST_URI);
  });

  it('still fingerprints without the addon, and says why the version is unknown', async () => {
    const driver = new LibvirtDriver(config(), { hostId: 'host-noext', log }, { ok: false, reason: 'not built' });
    drivers.push(driver);
    const fp = await driver.fingerprint();
    expect(fp).toMatchObject({ healthy: true, version: 'unknown', domain_types: ['test'] });
    expect(fp.detail).toMatch(/addon unavailable.*not built/);
  });

  it('falls back to qemu for good when libvirt offers kvm but a kvm guest cannot start', async () => {
    const caps = `<capabilities><guest><os_type>hvm</os_type><arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch></guest></capabilities>`;
    const ext = {
      getLibVersion: () => Promise.resolve('9.0.0'),
      getHypervisorVersion: () => Promise.resolve('7.2.0'),
      getCapabilities: () => Promise.resolve(caps),
      ensureNetwork: () => Promise.resolve('existing'),
      domainAddresses: () => Promise.resolve('[]'),
      migrateDomain: () => Promise.reject(new Error('not used here')),
      domainJobStats: () => Promise.reject(new Error('not used here')),
      abortDomainJob: () => Promise.reject(new Error('not used here')),
      completedJobStats: () => Promise.reject(new Error('not used here')),
      backupBegin: () => Promise.reject(new Error('not used here')),
    };
    const driver = new LibvirtDriver(config(), { hostId: 'host-kvm', log }, { ok: true, ext });
    drivers.push(driver);
    await driver.connect();
    expect((await driver.fingerprint()).domain_types).toEqual(['qemu', 'kvm']);

    // What QEMU says when its user cannot open /dev/kvm, although libvirt (as root) lists kvm.
    const kvmDenied = new Error("internal error: qemu unexpectedly closed the monitor: Could not access KVM kernel module: Permission denied\nqemu-system-x86_64: -accel kvm: failed to initialize kvm: Permission denied");
    const realCreate = Hypervisor.prototype.domainCreate;
    const domainCreate = vi.spyOn(Hypervisor.prototype, 'domainCreate').mockImplementation(async function (this: Hypervisor, dom) {
      if ((await this.domainGetXMLDesc(dom)).startsWith("<domain type='kvm'")) throw kvmDenied;
      return realCreate.call(this, dom);
    });
    const first = await driver.create('kvm-1-0a1b2c3d', vm('kvm-1'));
    expect(first).toMatchObject({ state: 'running' });
    const xml = await hv.domainGetXMLDesc(await hv.domainLookupByName(backendName('host-kvm', 'kvm-1-0a1b2c3d')));
    expect(xml).toMatch(/^<domain type='qemu'/);
    expect(domainCreate).toHaveBeenCalledTimes(2);

    expect((await driver.create('kvm-2-0a1b2c3d', vm('kvm-2'))).state).toBe('running');
    expect(domainCreate, 'the second VM goes straight to qemu').toHaveBeenCalledTimes(3);
    const fp = await driver.fingerprint();
    expect(fp.domain_types).toEqual(['qemu']);
    expect(fp.detail).toMatch(/new VMs use domain type qemu.*kvm guest failed to start/);
    domainCreate.mockRestore();

    const explicit = new LibvirtDriver(config({ domainType: 'kvm' }), { hostId: 'host-kvm-explicit', log }, { ok: true, ext });
    drivers.push(explicit);
    vi.spyOn(Hypervisor.prototype, 'domainCreate').mockRejectedValue(kvmDenied);
    await expect(explicit.create('kvm-3-0a1b2c3d', vm('kvm-3')), 'an explicit kvm does not fall back').rejects.toThrow(/Could not access KVM/);
    expect(await explicit.inspect('kvm-3-0a1b2c3d'), 'the failed domain was not left behind').toBeUndefined();
    await expect(hv.domainLookupByName(backendName('host-kvm-explicit', 'kvm-3-0a1b2c3d'))).rejects.toThrow(/Domain not found/);

    await driver.delete('kvm-1-0a1b2c3d');
    await driver.delete('kvm-2-0a1b2c3d');
  });

  it('reports an unreachable libvirtd without throwing, and fails calls as Unavailable', async () => {
    const driver = await open('host-down', { uri: UNREACHABLE_URI });
    const fp = await driver.fingerprint();
    expect(fp).toMatchObject({ healthy: false, version: 'unknown', domain_types: [] });
    expect(fp.detail).toMatch(/Failed to connect socket/);
    await expect(driver.create('down-0a1b2c3d', vm('down'))).rejects.toBeInstanceOf(UnavailableError);
    await expect(driver.list()).rejects.toBeInstanceOf(UnavailableError);
  });

  it('refuses calls after close', async () => {
    const driver = await open('host-closed');
    await driver.close();
    await expect(driver.list()).rejects.toBeInstanceOf(UnavailableError);
  });
});
