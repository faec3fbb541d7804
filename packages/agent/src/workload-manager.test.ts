import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, FailedPreconditionError, NotFoundError, parseWorkloadSpec } from '@virtfleet/shared';
import { CommandLedger } from './command-ledger.js';
import type { Driver } from './drivers/driver.js';
import { createFakeDriver } from './drivers/fake/fake-driver.js';
import { WorkloadManager } from './workload-manager.js';
import { WorkloadRecords } from './workload-records.js';

const log = createLogger('test', 'silent');
const vmSpec = parseWorkloadSpec({ name: 'vm1', kind: 'vm', vcpus: 1, memory_mib: 64 });

describe('WorkloadManager with the fake driver', () => {
  let dir: string;
  let driver: Driver;
  let manager: WorkloadManager;
  let changes: number;

  const build = async (existingDriver?: Driver) => {
    driver = existingDriver ?? (await createFakeDriver({ kinds: ['vm'], vcpus: 8, memoryMiB: 8192 }, { hostId: 'h1', log }));
    manager = new WorkloadManager([driver], new WorkloadRecords(dir), new CommandLedger(join(dir, 'commands.jsonl')), log, 5, () => changes++);
  };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'manager-'));
    changes = 0;
    await build();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('walks the lifecycle and reports each state', async () => {
    expect((await manager.create('c1', 'vm1-aaaa', vmSpec)).state).toBe('running');
    expect((await manager.act('pause', 'c2', 'vm1-aaaa')).state).toBe('paused');
    expect((await manager.act('resume', 'c3', 'vm1-aaaa')).state).toBe('running');
    expect((await manager.act('stop', 'c4', 'vm1-aaaa')).state).toBe('stopped');
    await expect(manager.act('pause', 'c5', 'vm1-aaaa')).rejects.toBeInstanceOf(FailedPreconditionError);
    expect((await manager.act('start', 'c6', 'vm1-aaaa')).state).toBe('running');
    expect((await manager.act('delete', 'c7', 'vm1-aaaa')).state).toBe('deleted');
    await expect(manager.get('vm1-aaaa')).rejects.toBeInstanceOf(NotFoundError);
    expect(changes).toBe(6);
  });

  it('answers NOT_FOUND for workloads it does not own, and deleting them is a no-op', async () => {
    await expect(manager.act('stop', 'c1', 'other-1')).rejects.toBeInstanceOf(NotFoundError);
    expect((await manager.act('delete', 'c2', 'other-1')).state).toBe('deleted');
  });

  it('refuses a kind it has no driver for', async () => {
    const spec = parseWorkloadSpec({ name: 'c', kind: 'container', image: 'busybox', vcpus: 1, memory_mib: 64 });
    await expect(manager.create('c1', 'c-1', spec)).rejects.toThrow(/no driver for kind container/);
    expect(await manager.list()).toEqual([]);
  });

  it('refuses a second, different workload under an id already in use', async () => {
    await manager.create('c1', 'vm1-aaaa', vmSpec);
    await expect(manager.create('c2', 'vm1-aaaa', { ...vmSpec, name: 'other' })).rejects.toBeInstanceOf(FailedPreconditionError);
  });

  it('adopts backend workloads without records and forgets records without workloads', async () => {
    await manager.create('c1', 'keep-1', vmSpec);
    await manager.create('c2', 'gone-1', { ...vmSpec, name: 'gone' });
    await driver.delete('gone-1');
    await driver.create('orphan-1', { ...vmSpec, name: 'orphan' });
    await build(driver);
    expect(await manager.recover()).toEqual({ adopted: 1, forgotten: 1 });
    expect((await manager.list()).map((s) => s.workload_id).sort()).toEqual(['keep-1', 'orphan-1']);
  });
});
