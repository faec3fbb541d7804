import { describe, expect, it } from 'vitest';
import { createLogger, FailedPreconditionError, NotFoundError, UnavailableError } from '@virtfleet/shared';
import type { Host } from '../hosts/host.js';
import { MemoryStateStore } from '../state/memory-state-store.test-support.js';
import { MigrationLeftovers } from './migration-leftovers.js';
import type { Workload } from './workload.js';
import { testWorkload } from './workload.test-support.js';

const log = createLogger('test', 'silent');

interface Case {
  name: string;
  host?: Host['status'];
  workload?: Partial<Workload>;
  removal?: Error;
  leading?: boolean;
  removed: boolean;
  kept: boolean;
}

describe('MigrationLeftovers', () => {
  it.each<Case>([
    { name: 'removes the files from a host that is up, and forgets them', host: 'up', removed: true, kept: false },
    { name: 'waits for a host that is down', host: 'down', removed: false, kept: true },
    { name: 'waits for a host that is recovering', host: 'recovering', removed: false, kept: true },
    { name: 'forgets the files of a host that was forgotten', removed: false, kept: false },
    { name: 'keeps the files of a workload that lives on that host again', host: 'up', workload: { hostId: 'h2' }, removed: false, kept: false },
    { name: 'removes the files of a deleted workload that last lived there', host: 'up', workload: { hostId: 'h2', state: 'deleted' }, removed: true, kept: false },
    {
      name: 'waits while a migration to that host is under way',
      host: 'up',
      workload: { migration: { id: 'm2', sourceHostId: 'h1', targetHostId: 'h2', mode: 'live', phase: 'transferring', startedAt: '', maxDowntimeMs: 0, bandwidthMiBs: 0, requestId: 'r' } },
      removed: false,
      kept: true,
    },
    { name: 'forgets files already gone', host: 'up', removal: new NotFoundError('workload', 'vm1'), removed: true, kept: false },
    { name: 'leaves a running copy to reconciliation', host: 'up', removal: new FailedPreconditionError('vm1 runs on host h2'), removed: true, kept: false },
    { name: 'tries again when the agent does not answer', host: 'up', removal: new UnavailableError('no agent'), removed: true, kept: true },
    { name: 'does nothing unless it leads', host: 'up', leading: false, removed: false, kept: true },
  ])('$name', async (c) => {
    const store = new MemoryStateStore();
    const removals: string[] = [];
    const hosts = new Map(c.host ? [['h2', { id: 'h2', status: c.host } as unknown as Host]] : []);
    const w = testWorkload('vm1', { hostId: 'h1', state: 'running', ...c.workload });
    const leftovers = new MigrationLeftovers(
      {
        store,
        isLeader: () => c.leading ?? true,
        workload: (id) => (id === w.id ? w : undefined),
        host: (id) => hosts.get(id),
        removeFiles: (host, id) => {
          removals.push(`${host.id} ${id}`);
          return c.removal ? Promise.reject(c.removal) : Promise.resolve();
        },
      },
      log,
    );
    await leftovers.note('h2', 'vm1', 'm1');
    await leftovers.sweep();
    expect(removals).toEqual(c.removed ? ['h2 vm1'] : []);
    expect(leftovers.list().map((l) => `${l.hostId} ${l.workloadId} ${l.migrationId}`)).toEqual(c.kept ? ['h2 vm1 m1'] : []);
  });
});
