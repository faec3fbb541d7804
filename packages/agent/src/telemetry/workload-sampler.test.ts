import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger, parseWorkloadSpec } from '@virtfleet/shared';
import { CommandLedger } from '../command-ledger.js';
import type { Driver, DriverWorkload, WorkloadUsage } from '../drivers/driver.js';
import { createFakeDriver } from '../drivers/fake/fake-driver.js';
import { GuardedDriver } from '../drivers/guarded-driver.js';
import { WorkloadManager } from '../workload-manager.js';
import { WorkloadRecords } from '../workload-records.js';
import { WorkloadSampler } from './workload-sampler.js';

const log = createLogger('test', 'silent');

describe('WorkloadSampler', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('never waits for slow usage readings: a sample carries the latest one read so far', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sampler-'));
    dirs.push(dir);
    const fake = await createFakeDriver({ kinds: ['vm'], vcpus: 8, memoryMiB: 8192 }, { hostId: 'h1', log });
    // Usage readings wait until the test lets them through, like a Docker stats call that takes a second.
    const gates: (() => void)[] = [];
    const slow: Driver = Object.assign(Object.create(fake) as Driver, {
      usage: async (id: string): Promise<WorkloadUsage | undefined> => {
        await new Promise<void>((release) => gates.push(release));
        return { ...(await fake.usage(id))!, memoryUsedMiB: 42 };
      },
    });
    const manager = new WorkloadManager([slow], new WorkloadRecords(dir), new CommandLedger(join(dir, 'ledger.jsonl')), log, 5);
    await manager.create('c1', 'vm-1', parseWorkloadSpec({ name: 'vm', kind: 'vm', vcpus: 1, memory_mib: 64 }));
    const sampler = new WorkloadSampler(manager);

    const first = await sampler.sample();
    expect(first).toMatchObject([{ workload_id: 'vm-1', state: 'running', memory_used_mib: 0 }]);
    expect(gates, 'one reading in flight').toHaveLength(1);
    await sampler.sample();
    expect(gates, 'readings never overlap').toHaveLength(1);

    gates.shift()!();
    await sampler.settled();
    expect(await sampler.sample()).toMatchObject([{ workload_id: 'vm-1', memory_used_mib: 42 }]);
  });

  it.each([
    { readsPerSecond: 10, workloads: 50, stepMs: 1000, perRefresh: 10 },
    { readsPerSecond: 20, workloads: 50, stepMs: 500, perRefresh: 10 },
    { readsPerSecond: 1, workloads: 5, stepMs: 100, perRefresh: 1 },
    { readsPerSecond: 100, workloads: 5, stepMs: 1000, perRefresh: 5 },
  ])('reads usage within its budget ($readsPerSecond/s, $workloads workloads, a refresh every $stepMs ms: $perRefresh each), longest unread first', async ({ readsPerSecond, workloads, stepMs, perRefresh }) => {
    const dir = mkdtempSync(join(tmpdir(), 'sampler-'));
    dirs.push(dir);
    const fake = await createFakeDriver({ kinds: ['vm'], vcpus: 1000, memoryMiB: 1_000_000 }, { hostId: 'h1', log });
    const reads: string[] = [];
    const counting: Driver = Object.assign(Object.create(fake) as Driver, {
      usage: (id: string): Promise<WorkloadUsage | undefined> => {
        reads.push(id);
        return fake.usage(id);
      },
    });
    const manager = new WorkloadManager([counting], new WorkloadRecords(dir), new CommandLedger(join(dir, 'ledger.jsonl')), log, 5);
    for (let i = 0; i < workloads; i++) await manager.create(`c${i}`, `vm-${i}`, parseWorkloadSpec({ name: `vm${i}`, kind: 'vm', vcpus: 1, memory_mib: 64 }));
    let now = 1_000_000;
    const sampler = new WorkloadSampler(manager, readsPerSecond, () => now);
    // The first refresh counts as a second since the last one.
    await sampler.sample();
    await sampler.settled();
    reads.length = 0;
    const rounds = Math.ceil(workloads / perRefresh);
    const perRound: number[] = [];
    for (let r = 0; r < rounds; r++) {
      now += stepMs;
      const before = reads.length;
      await sampler.sample();
      await sampler.settled();
      perRound.push(reads.length - before);
    }
    expect(perRound).toEqual(Array.from({ length: rounds }, () => perRefresh));
    // Round robin by age: within `rounds` refreshes every workload was read, none twice before all once.
    expect(new Set(reads).size).toBe(Math.min(workloads, reads.length));
  });

  it('waits at most its budget for a pass, keeps the last complete observation while the engine misses its deadline, and never reports a workload unknown for it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sampler-'));
    dirs.push(dir);
    const fake = await createFakeDriver({ kinds: ['vm'], vcpus: 8, memoryMiB: 8192 }, { hostId: 'h1', log });
    // Inspections hang while `stalled` is set, like a frozen engine.
    let stalled: Promise<void> | undefined;
    let release = (): void => undefined;
    const stalling: Driver = Object.assign(Object.create(fake) as Driver, {
      inspect: async (id: string): Promise<DriverWorkload | undefined> => {
        await stalled;
        return fake.inspect(id);
      },
    });
    const guarded = new GuardedDriver(stalling, { concurrency: 2, readTimeoutMs: 100, changeTimeoutMs: 1000 });
    const manager = new WorkloadManager([guarded], new WorkloadRecords(dir), new CommandLedger(join(dir, 'ledger.jsonl')), log, 5);
    await manager.create('c1', 'vm-1', parseWorkloadSpec({ name: 'vm', kind: 'vm', vcpus: 1, memory_mib: 64 }));
    const sampler = new WorkloadSampler(manager);

    const first = await sampler.snapshot(1000);
    expect(first?.workloads).toMatchObject([{ workload_id: 'vm-1', state: 'running' }]);

    stalled = new Promise<void>((r) => (release = r));
    const asked = performance.now();
    const during = await sampler.snapshot(20);
    expect(performance.now() - asked, 'returns within its budget').toBeLessThan(500);
    expect(during, 'the last complete observation, with its own time').toEqual(first);
    // Past the read deadline the pass fails; it is discarded, not reported as unknown.
    await new Promise((r) => setTimeout(r, 200));
    expect(guarded.status().healthy).toBe(false);
    expect(await sampler.snapshot(20), 'still the last complete observation').toEqual(first);

    release();
    stalled = undefined;
    // Reads are held back until the overdue call answers; its late answer makes the engine healthy again.
    await vi.waitFor(() => expect(guarded.status().healthy).toBe(true));
    const after = await sampler.snapshot(1000);
    expect(after?.workloads).toMatchObject([{ workload_id: 'vm-1', state: 'running' }]);
    expect(after!.startedAtMs, 'a fresh observation').toBeGreaterThan(first!.startedAtMs);
    expect(guarded.status().healthy).toBe(true);
  });
});
