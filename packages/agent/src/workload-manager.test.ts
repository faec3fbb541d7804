import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, FailedPreconditionError, NotFoundError, parseWorkloadSpec, ResourceExhaustedError } from '@virtfleet/shared';
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

  it('refuses a create beyond the most workloads a host may hold, and takes the same one again', async () => {
    manager = new WorkloadManager([driver], new WorkloadRecords(dir), new CommandLedger(join(dir, 'commands.jsonl')), log, 5, () => changes++, 2);
    await manager.create('c1', 'vm1-aaaa', vmSpec);
    await manager.create('c2', 'vm1-bbbb', vmSpec);
    await expect(manager.create('c3', 'vm1-cccc', vmSpec)).rejects.toBeInstanceOf(ResourceExhaustedError);
    expect((await manager.list()).map((w) => w.workload_id).sort()).toEqual(['vm1-aaaa', 'vm1-bbbb']);
    // A repeated create of one it holds is not a new workload.
    expect((await manager.create('c4', 'vm1-aaaa', vmSpec)).state).toBe('running');
    await manager.act('delete', 'c5', 'vm1-bbbb');
    expect((await manager.create('c6', 'vm1-cccc', vmSpec)).state).toBe('running');
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
    expect(await manager.recover()).toEqual({ adopted: 1, forgotten: 1, unlisted: [] });
    expect((await manager.list()).map((s) => s.workload_id).sort()).toEqual(['keep-1', 'orphan-1']);
  });

  it('keeps the records of a driver that cannot list, names it for a later retry, and reconciles it then', async () => {
    await manager.create('c1', 'keep-1', vmSpec);
    await driver.create('orphan-1', { ...vmSpec, name: 'orphan' });
    const realList = driver.list.bind(driver);
    driver.list = () => Promise.reject(new Error('engine not answering'));
    await build(driver);
    expect(await manager.recover()).toEqual({ adopted: 0, forgotten: 0, unlisted: [driver.name] });
    driver.list = realList;
    expect(await manager.recover([driver.name])).toEqual({ adopted: 1, forgotten: 0, unlisted: [] });
    expect(await manager.recover(['some-other-driver'])).toEqual({ adopted: 0, forgotten: 0, unlisted: [] });
  });

  it('forgets a workload removed from its backend behind its back, so it can be created again', async () => {
    await manager.create('c1', 'gone-1', vmSpec);
    await driver.delete('gone-1');
    expect(await manager.list()).toEqual([]);
    await expect(manager.get('gone-1')).rejects.toBeInstanceOf(NotFoundError);
    expect((await manager.create('c2', 'gone-1', vmSpec)).state, 'a new create command makes it again').toBe('running');
  });

  describe('self-fencing', () => {
    const reschedulable = parseWorkloadSpec({ name: 'vm2', kind: 'vm', vcpus: 1, memory_mib: 64, failover: 'reschedule' });

    it('stops fence-first workloads only, reports them failed, and counts and names what it stopped', async () => {
      await manager.create('c1', 'fenced-1', vmSpec);
      await manager.create('c2', 'paused-1', { ...vmSpec, name: 'paused' });
      await manager.act('pause', 'c3', 'paused-1');
      await manager.create('c4', 'stays-1', reschedulable);
      const result = await manager.fence('test');
      expect({ ...result, workloads: [...result.workloads].sort() }, 'the fence record names what was stopped').toEqual({ stopped: 2, failed: 0, workloads: ['fenced-1', 'paused-1'] });
      const states = Object.fromEntries((await manager.list()).map((s) => [s.workload_id, s.state]));
      expect(states).toEqual({ 'fenced-1': 'failed', 'paused-1': 'failed', 'stays-1': 'running' });
      expect((await manager.get('fenced-1')).message).toMatch(/stopped by self-fencing/);
      expect(await manager.fence('again'), 'fencing twice stops nothing more').toEqual({ stopped: 0, failed: 0, workloads: [] });
    });

    it('refuses to create, start or resume fence-first workloads without the lease, and allows them with it', async () => {
      await manager.create('c1', 'fenced-1', vmSpec);
      await manager.fence('test');
      manager.setLeaseHeld(false);
      await expect(manager.act('start', 'c2', 'fenced-1')).rejects.toThrow(/does not hold its lease/);
      await expect(manager.create('c3', 'new-1', { ...vmSpec, name: 'new' })).rejects.toThrow(/does not hold its lease/);
      expect((await manager.create('c4', 'other-1', reschedulable)).state, 'reschedule workloads need no lease').toBe('running');
      manager.setLeaseHeld(true);
      expect((await manager.act('start', 'c5', 'fenced-1')).state).toBe('running');
      await manager.act('stop', 'c6', 'fenced-1');
      expect((await manager.get('fenced-1')).state, 'a later stop is a plain stop again').toBe('stopped');
    });

    it('remembers fenced workloads across a restart', async () => {
      await manager.create('c1', 'fenced-1', vmSpec);
      await manager.fence('test');
      await build(driver);
      expect((await manager.get('fenced-1')).state).toBe('failed');
    });
  });
});
