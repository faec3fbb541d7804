import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger, FailedPreconditionError } from '@virtfleet/shared';
import type { Workload } from '../workloads/workload.js';
import { testWorkload } from '../workloads/workload.test-support.js';
import type { BackupManifest, BackupSummary } from './backup-repository.js';
import { BackupScheduler, type ScheduledBackups } from './backup-scheduler.js';

const log = createLogger('test', 'silent');
const NOW = Date.parse('2026-03-10T12:00:00Z');
const HOUR = 3_600_000;

const summary = (name: string, createdMs: number, id = `bk-${name}-${createdMs}`): BackupSummary => ({
  id,
  workload_id: name,
  workload_name: name,
  kind: 'container',
  spec: {},
  created_at: new Date(createdMs).toISOString(),
  memory: false,
  files: [],
  size_bytes: 0,
  stored_bytes: 0,
});

/** A fake BackupService over an in-memory list: counts its calls, fails creates of the workloads in `failing`. */
function fakeBackups(initial: BackupSummary[], clock: () => number) {
  const stored = [...initial];
  const calls: string[] = [];
  const failing = new Set<string>();
  let release: (() => void) | undefined;
  const backups: ScheduledBackups = {
    list: (name?: string) => Promise.resolve(stored.filter((b) => name === undefined || b.workload_name === name).sort((a, b) => b.created_at.localeCompare(a.created_at))),
    create: async (ref: string) => {
      calls.push(`create ${ref}`);
      if (release) await new Promise<void>((resolve) => (release = resolve));
      if (failing.has(ref)) throw new FailedPreconditionError(`workload ${ref}'s host is down`);
      const made = { ...summary(ref, clock(), `bk-${ref}-new-${calls.length}`), files: [] } as BackupManifest;
      stored.push(made);
      return made;
    },
    remove: (id: string) => {
      calls.push(`remove ${id}`);
      stored.splice(
        stored.findIndex((b) => b.id === id),
        1,
      );
      return Promise.resolve({ id });
    },
  };
  /** Holds every create until the returned function is called. */
  const hold = () => {
    release = () => undefined;
    return () => release?.();
  };
  return { backups, calls, failing, stored, hold };
}

const withPolicy = (name: string, policy: Record<string, unknown>, overrides: Partial<Omit<Workload, 'spec'>> = {}) => testWorkload(name, overrides, { backup: policy });

function scheduler(workloads: Workload[], backups: ScheduledBackups, options: { leader?: () => boolean; now?: () => number } = {}) {
  return new BackupScheduler(backups, () => workloads, options.leader ?? (() => true), { checkIntervalMs: 100 }, log, options.now ?? (() => NOW));
}

afterEach(() => {
  vi.useRealTimers();
});

describe('BackupScheduler.check', () => {
  const dueCases: { name: string; every: string; newestAgoMs: number | undefined; due: boolean }[] = [
    { name: 'no backup yet', every: '1h', newestAgoMs: undefined, due: true },
    { name: 'the newest older than every', every: '1h', newestAgoMs: HOUR + 1, due: true },
    { name: 'the newest exactly every ago', every: '1h', newestAgoMs: HOUR, due: true },
    { name: 'the newest younger than every', every: '1h', newestAgoMs: HOUR - 1000, due: false },
    { name: 'a daily policy, backed up 23h ago', every: '1d', newestAgoMs: 23 * HOUR, due: false },
  ];
  it.each(dueCases)('backs up when due: $name -> $due', async ({ every, newestAgoMs, due }) => {
    const f = fakeBackups(newestAgoMs === undefined ? [] : [summary('web', NOW - newestAgoMs)], () => NOW);
    const result = await scheduler([withPolicy('web', { every, keep_last: 10 })], f.backups).check();
    expect(f.calls.filter((c) => c.startsWith('create'))).toEqual(due ? ['create web'] : []);
    expect(result.created).toEqual(due ? ['web'] : []);
  });

  it('skips workloads without a policy, being deleted, or with no copy to back up', async () => {
    const f = fakeBackups([], () => NOW);
    const workloads = [
      testWorkload('plain'),
      withPolicy('gone', { every: '1h', keep_last: 1 }, { state: 'deleting', desiredState: 'deleted' }),
      withPolicy('waiting', { every: '1h', keep_last: 1 }, { state: 'pending', hostId: '' }),
      withPolicy('web', { every: '1h', keep_last: 1 }),
    ];
    await scheduler(workloads, f.backups).check();
    expect(f.calls).toEqual(['create web']);
  });

  it("applies each workload's own retention, only to its own backups", async () => {
    const old = (name: string, hoursAgo: number) => summary(name, NOW - hoursAgo * HOUR);
    const f = fakeBackups([old('web', 2), old('web', 3), old('web', 4), old('db', 2), old('db', 3), old('other', 5), old('other', 6)], () => NOW);
    const workloads = [withPolicy('web', { every: '1h', keep_last: 2 }), withPolicy('db', { every: '1d', keep_last: 1 })];
    const result = await scheduler(workloads, f.backups).check();
    // web: due, backed up, then keeps the new one and the 2h-old one; db: not due, keeps its newest.
    expect(result.created).toEqual(['web']);
    expect([...result.removed].sort()).toEqual([old('db', 3).id, old('web', 3).id, old('web', 4).id].sort());
    expect(f.stored.map((b) => b.id).sort()).toEqual([old('db', 2).id, old('other', 5).id, old('other', 6).id, old('web', 2).id, 'bk-web-new-1'].sort());
  });

  it('retries a failed backup at the next check, and keeps going with the other workloads', async () => {
    const f = fakeBackups([], () => NOW);
    f.failing.add('web');
    const s = scheduler([withPolicy('web', { every: '1h', keep_last: 1 }), withPolicy('db', { every: '1h', keep_last: 1 })], f.backups);
    const first = await s.check();
    expect(first).toEqual({ created: ['db'], removed: [], failed: ['web'] });
    f.failing.delete('web');
    const second = await s.check();
    expect(second, 'web is tried again; db is not due').toEqual({ created: ['web'], removed: [], failed: [] });
  });

  it('runs one job per workload at a time', async () => {
    const f = fakeBackups([], () => NOW);
    const release = f.hold();
    const s = scheduler([withPolicy('web', { every: '1h', keep_last: 1 })], f.backups);
    const first = s.check();
    await vi.waitFor(() => expect(f.calls).toEqual(['create web']));
    const second = await s.check();
    expect(second.created, 'the second check leaves web alone while its backup is under way').toEqual([]);
    release();
    expect((await first).created).toEqual(['web']);
    expect(f.calls).toEqual(['create web']);
  });

  it('does nothing when not leading', async () => {
    const f = fakeBackups([summary('web', NOW - 5 * HOUR), summary('web', NOW - 6 * HOUR)], () => NOW);
    const result = await scheduler([withPolicy('web', { every: '1h', keep_last: 1 })], f.backups, { leader: () => false }).check();
    expect(result).toEqual({ created: [], removed: [], failed: [] });
    expect(f.calls).toEqual([]);
  });

  it('prunes nothing once deposed mid-job', async () => {
    let leading = true;
    const f = fakeBackups([summary('web', NOW - 5 * HOUR)], () => NOW);
    const release = f.hold();
    const s = scheduler([withPolicy('web', { every: '1h', keep_last: 1 })], f.backups, { leader: () => leading });
    const pass = s.check();
    await vi.waitFor(() => expect(f.calls).toEqual(['create web']));
    leading = false;
    release();
    await pass;
    expect(f.calls, 'the old backup stays for the next leader to prune').toEqual(['create web']);
  });
});

describe('BackupScheduler timer', () => {
  it('checks every interval while started, and not after stop', async () => {
    vi.useFakeTimers({ now: NOW });
    const f = fakeBackups([], Date.now);
    const s = new BackupScheduler(f.backups, () => [withPolicy('web', { every: '5m', keep_last: 1 })], () => true, { checkIntervalMs: 100 }, log, Date.now);
    s.start();
    await vi.advanceTimersByTimeAsync(100);
    expect(f.calls).toEqual(['create web']);
    await vi.advanceTimersByTimeAsync(5 * 60_000);
    expect(f.calls, 'due again after 5m: backed up, and the older one pruned').toEqual(['create web', 'create web', 'remove bk-web-new-1']);
    s.stop();
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(f.calls).toHaveLength(3);
  });
});
