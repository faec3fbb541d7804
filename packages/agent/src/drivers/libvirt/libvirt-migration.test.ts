import { describe, expect, it } from 'vitest';
import { AbortedError, createLogger } from '@virtfleet/shared';
import type { IncomingMigration } from '../driver.js';
import { LibvirtLiveMigration, type MigratingDriver } from './libvirt-migration.js';
import type { LibvirtExt } from './native-ext.js';
import type { VmFiles, VmStorage } from './vm-storage.js';

const log = createLogger('test', 'silent');
const files = (id: string): VmFiles => ({ disks: [{ name: 'root', path: `/s/vms/${id}/root.qcow2`, readonly: false }], consoleLog: `/s/vms/${id}/console.log` }) as VmFiles;
const xml = (id: string) =>
  `<domain><name>virtfleet-a.${id}</name><metadata><virtfleet:workload xmlns:virtfleet='https://virtfleet.dev/xmlns/domain/v1'><virtfleet:host-id>a</virtfleet:host-id></virtfleet:workload></metadata><source file='/s/vms/${id}/root.qcow2'/></domain>`;
const target = (id: string): IncomingMigration => ({ hostId: 'b', hypervisorUri: 'qemu+tcp://b/system', transferUri: 'tcp://b', files: { 'disk:root': `/t/vms/${id}/root.qcow2`, 'console-log': `/t/vms/${id}/console.log` }, backendName: `virtfleet-b.${id}` });

/** A source host whose libvirt runs each migration until the test ends it, and whose job stats say "none" for a domain not migrating. */
function source(maxOutgoing: number) {
  const running = new Map<string, () => void>();
  const started: string[] = [];
  const ext = {
    migrateDomain: (_uri: string, name: string) =>
      new Promise<string>((resolve) => {
        started.push(name);
        running.set(name, () => resolve(''));
      }),
    domainJobStats: (_uri: string, name: string) => Promise.resolve(JSON.stringify({ type: running.has(name) ? 'unbounded' : 'none' })),
    abortDomainJob: () => Promise.resolve(),
  } as unknown as LibvirtExt;
  const driver: MigratingDriver = {
    hostId: 'a',
    uri: 'qemu:///system',
    migration: undefined,
    maxOutgoing,
    ext: { ok: true, ext },
    storage: { files: (id: string) => Promise.resolve(files(id)), remove: () => Promise.resolve() } as unknown as VmStorage,
    log,
    domainXml: (id) => Promise.resolve(xml(id)),
    holds: () => Promise.resolve(true),
    stateOf: () => Promise.resolve('running'),
    forget: () => undefined,
  };
  const finish = (id: string) => {
    const end = running.get(`virtfleet-a.${id}`);
    running.delete(`virtfleet-a.${id}`);
    end?.();
  };
  return { migration: new LibvirtLiveMigration(driver), started, finish };
}

const tick = () => new Promise((r) => setTimeout(r, 10));

describe('LibvirtLiveMigration, outgoing', () => {
  it('runs at most maxOutgoing migrations at once; the next starts when one ends', async () => {
    const s = source(2);
    const done = ['w1', 'w2', 'w3'].map((id) => s.migration.migrateOut(id, target(id), {}, () => undefined));
    await tick();
    expect(s.started).toEqual(['virtfleet-a.w1', 'virtfleet-a.w2']);
    s.finish('w1');
    await tick();
    expect(s.started).toEqual(['virtfleet-a.w1', 'virtfleet-a.w2', 'virtfleet-a.w3']);
    s.finish('w2');
    s.finish('w3');
    await Promise.all(done);
  });

  it('aborts a migration still waiting for its turn: it never starts, and its caller hears it was cancelled', async () => {
    const s = source(1);
    const first = s.migration.migrateOut('w1', target('w1'), {}, () => undefined);
    const second = s.migration.migrateOut('w2', target('w2'), {}, () => undefined);
    await tick();
    await s.migration.abortMigration('w2');
    s.finish('w1');
    await first;
    await expect(second).rejects.toBeInstanceOf(AbortedError);
    expect(s.started).toEqual(['virtfleet-a.w1']);
    // Once it has given up, nothing of it remains to abort.
    await expect(s.migration.abortMigration('w2')).rejects.toThrow(/is not migrating/);
  });
});
