import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ConnectListAllDomainsFlags, DomainState, Hypervisor } from '@unraid/libvirt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadLibvirtExt, MIGRATE_FLAGS, parseDomainJobStats, type DomainJobStats, type LibvirtExt } from '../../packages/agent/src/drivers/libvirt/native-ext.js';
import { removeDomains } from '../support/cleanup.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';
import { createTestPki } from '../support/pki.js';
import { freePort } from '../support/processes.js';
import { startSimulatedHost, type SimulatedHost } from '../support/simulated-host.js';
import { testGuest } from '../support/test-guest.js';
import { waitFor } from '../support/wait.js';

/** The rejection of `promise`, or the string "resolved", so that both outcomes can be asserted on. */
const outcomeOf = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => 'resolved',
    (e: unknown) => e,
  );

/**
 * Live migration through our libvirt-ext addon (no virsh) between two simulated
 * hosts of the playground (scripts/simulated-host.sh): each its own libvirtd in
 * its own network and mount namespaces, listening on the fabric. The test talks
 * to each libvirtd through its unix socket; the source libvirtd reaches the
 * destination over the fabric (peer to peer).
 */
describe('live migration between two simulated hosts (libvirt-ext, real QEMU)', () => {
  const tag = `m${process.pid % 100_000}`;
  let nats: NatsServer;
  let a: SimulatedHost;
  let b: SimulatedHost;
  let hvA: Hypervisor;
  let hvB: Hypervisor;
  let ext: LibvirtExt;
  let bootDir: string;
  /** Every domain name the tests create, on either host, for afterAll. */
  const domains: string[] = [];

  /** Defines and starts a TCG domain on A without disks; `boot` adds a kernel and initrd. */
  const startOnA = async (name: string, memoryMiB: number, boot = '') => {
    domains.push(name);
    const xml = `<domain type='qemu'><name>${name}</name><memory unit='MiB'>${memoryMiB}</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type>${boot}</os></domain>`;
    await hvA.domainCreate(await hvA.domainDefineXML(xml));
  };
  const namesOn = async (hv: Hypervisor, flags?: ConnectListAllDomainsFlags) => Promise.all((await hv.connectListAllDomains(flags)).map((d) => hv.domainGetName(d)));
  const stateOn = async (hv: Hypervisor, name: string) => (await hv.domainGetInfo(await hv.domainLookupByName(name))).state;
  const jobStats = async (name: string) => parseDomainJobStats(await ext.domainJobStats(a.libvirtUri, name));
  /**
   * Where A's libvirtd sends a migration to B. migrateUri is needed: without it B offers QEMU's
   * stream at its hostname, which is this machine's (every simulated host shares it) and does not
   * lead to B from inside A's network namespace ("unable to connect to server at 'HOSTNAME:49152'").
   */
  const toB = () => ({ destUri: b.libvirtTcpUri, migrateUri: `tcp://${b.address}` });

  beforeAll(async () => {
    const load = loadLibvirtExt();
    if (!load.ok) throw new Error(`the libvirt-ext addon did not load (${load.reason}); build it with npm run build:native -w @virtfleet/agent`);
    ext = load.ext;
    const [guest, server] = await Promise.all([testGuest(), startNatsServer()]);
    nats = server;
    // A private copy of the test guest's kernel and initrd: both libvirtds relabel what their guests use.
    bootDir = mkdtempSync('/var/tmp/vf-migration-');
    chmodSync(bootDir, 0o755);
    copyFileSync(guest.kernel, join(bootDir, 'vmlinuz'));
    copyFileSync(guest.initrd, join(bootDir, 'initrd.img'));
    // Their agents need certificates, though nothing here calls them.
    const pki = await createTestPki(join(bootDir, 'pki'));
    // One after the other: the first creates the playground's fabric.
    a = await startSimulatedHost(`${tag}a`, nats, await freePort(), pki.dir);
    b = await startSimulatedHost(`${tag}b`, nats, await freePort(), pki.dir);
    hvA = new Hypervisor({ uri: a.libvirtUri });
    hvB = new Hypervisor({ uri: b.libvirtUri });
    await hvA.connectOpen();
    await hvB.connectOpen();
  }, 600_000);

  afterAll(async () => {
    for (const hv of [hvA, hvB]) {
      if (!hv) continue;
      await removeDomains(hv, domains);
      await hv.connectClose().catch(() => undefined);
    }
    for (const host of [a, b]) await host?.down();
    await nats?.stop();
    if (bootDir) rmSync(bootDir, { recursive: true, force: true });
  }, 300_000);

  it('answers job type "none" for a running domain without a job, and rejects aborting it with libvirt’s reason', async () => {
    const name = `${tag}-idle`;
    await startOnA(name, 64);
    expect(await jobStats(name)).toStrictEqual({ type: 'none' });
    const err = await outcomeOf(ext.abortDomainJob(a.libvirtUri, name));
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe('Requested operation is not valid: no job is active on the domain');
    expect(err, 'VIR_ERR_OPERATION_INVALID from the QEMU driver').toMatchObject({ code: 55, libvirtDomain: 10 });
  });

  it('moves a running diskless domain live, peer to peer, under a new name: it runs on B, persistent, and is gone from A', async () => {
    const name = `${tag}-small`;
    const destName = `${tag}-moved`;
    await startOnA(name, 64);
    domains.push(destName);
    const { destUri, migrateUri } = toB();
    const started = Date.now();
    const result = await ext.migrateDomain(a.libvirtUri, name, destUri, {
      flags: MIGRATE_FLAGS.LIVE | MIGRATE_FLAGS.PEER2PEER | MIGRATE_FLAGS.PERSIST_DEST | MIGRATE_FLAGS.UNDEFINE_SOURCE,
      migrateUri,
      destName,
      maxDowntimeMs: 500,
    });
    expect(result).toBe('');
    expect(Date.now() - started, 'a 64 MiB idle guest moves within seconds').toBeLessThan(30_000);
    expect(await stateOn(hvB, destName)).toBe(DomainState.RUNNING);
    expect(await namesOn(hvB, ConnectListAllDomainsFlags.PERSISTENT)).toContain(destName);
    expect(await namesOn(hvB)).not.toContain(name);
    expect(await namesOn(hvA), 'UNDEFINE_SOURCE: neither running nor defined on A').not.toContain(name);
  });

  it('reports a slow migration’s progress in domainJobStats, and abortDomainJob stops it: the domain keeps running on A and B has none of it', async () => {
    const name = `${tag}-slow`;
    const destName = `${tag}-slowmoved`;
    // A booting Linux fills its memory with data that is not zero pages (QEMU sends those almost free),
    // so at 1 MiB/s the copy of 256 MiB takes over a minute; booting nothing, it would take a second.
    await startOnA(name, 256, `<kernel>${join(bootDir, 'vmlinuz')}</kernel><initrd>${join(bootDir, 'initrd.img')}</initrd><cmdline>console=ttyS0 quiet</cmdline>`);
    domains.push(destName);
    const { destUri, migrateUri } = toB();
    const migration = outcomeOf(
      ext.migrateDomain(a.libvirtUri, name, destUri, {
        flags: MIGRATE_FLAGS.LIVE | MIGRATE_FLAGS.PEER2PEER | MIGRATE_FLAGS.PERSIST_DEST | MIGRATE_FLAGS.UNDEFINE_SOURCE,
        migrateUri,
        destName,
        bandwidthMiBs: 1,
      }),
    );
    const copying = (s: DomainJobStats) => s.type === 'unbounded' && (s.data_total ?? 0) > 0 && (s.data_processed ?? 0) > 0;
    const first = await waitFor('the migration to copy memory', async () => {
      const s = await jobStats(name);
      return copying(s) ? s : undefined;
    }, { timeoutMs: 30_000, intervalMs: 200 });
    const later = await waitFor('the migration to copy more', async () => {
      const s = await jobStats(name);
      return copying(s) && (s.data_processed ?? 0) > (first.data_processed ?? 0) ? s : undefined;
    }, { timeoutMs: 10_000, intervalMs: 200 });
    expect(later.data_total, 'the guest’s memory, at least').toBeGreaterThanOrEqual(256 * 2 ** 20);
    expect(later.memory_total).toBe(later.data_total);
    expect(later.data_remaining, 'far from done at 1 MiB/s').toBeGreaterThan(later.data_total! / 2);
    expect(later.memory_bps, 'the 1 MiB/s limit').toBeLessThan(2 * 2 ** 20);
    expect(later.time_elapsed).toBeGreaterThan(first.time_elapsed!);

    expect(await ext.abortDomainJob(a.libvirtUri, name)).toBe('');
    const err = await migration;
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^operation aborted: job 'migration out' canceled by client$/);
    expect(err, 'VIR_ERR_OPERATION_ABORTED from the QEMU driver').toMatchObject({ code: 78, libvirtDomain: 10 });
    expect(await stateOn(hvA, name)).toBe(DomainState.RUNNING);
    expect(await namesOn(hvA, ConnectListAllDomainsFlags.PERSISTENT), 'still defined on A').toContain(name);
    const onB = await namesOn(hvB);
    expect(onB).not.toContain(name);
    expect(onB).not.toContain(destName);
    // Once migrateDomain has answered, the job is over (its "cancelled" shows only while libvirt unwinds it).
    expect(await jobStats(name)).toStrictEqual({ type: 'none' });
  }, 60_000);
});
