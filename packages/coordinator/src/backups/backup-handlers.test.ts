import { status, type handleUnaryCall, type ServerUnaryCall } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { createLogger, type pb } from '@virtfleet/shared';
import { RequestLedger } from '../requests/request-ledger.js';
import { MemoryStateStore } from '../state/memory-state-store.test-support.js';
import type { BackupSummary } from './backup-repository.js';
import { backupHandlers } from './backup-handlers.js';
import type { BackupService } from './backup-service.js';

const log = createLogger('test', 'silent');

/** Calls a unary handler as grpc-js would; a refusal rejects with its ServiceError. */
function call<Req, Res>(handler: handleUnaryCall<Req, Res>, request: Req): Promise<Res> {
  return new Promise((resolve, reject) => handler({ request } as ServerUnaryCall<Req, Res>, (err, res) => (err ? reject(err) : resolve(res!))));
}

const summary = (id: string, name: string, created_at: string): BackupSummary => ({ id, workload_id: name, workload_name: name, kind: 'vm', spec: {}, created_at, memory: false, files: [], size_bytes: 0, stored_bytes: 0 });

function service() {
  const stored = [summary('bk-3', 'web', '2026-03-03T00:00:00Z'), summary('bk-2', 'web', '2026-03-02T00:00:00Z'), summary('bk-1', 'web', '2026-03-01T00:00:00Z')];
  const removed: string[] = [];
  const backups = {
    list: (name?: string) => Promise.resolve(stored.filter((b) => b.workload_name === name)),
    remove: (id: string) => {
      removed.push(id);
      return Promise.resolve({ id });
    },
  } as unknown as BackupService;
  return { api: backupHandlers(backups, new RequestLedger(new MemoryStateStore(), log), log), removed };
}

const prune = (overrides: Partial<pb.PruneBackupsRequest__Output> = {}): pb.PruneBackupsRequest__Output => ({ workload: 'web', keep_last: 1, keep_daily: 0, keep_weekly: 0, dry_run: false, request_id: 'r1', ...overrides });

describe('PruneBackups', () => {
  it.each([
    { name: 'no workload', req: prune({ workload: '' }), field: 'workload' },
    { name: 'a workload that is not a name', req: prune({ workload: 'a/b' }), field: 'workload' },
    { name: 'a negative keep_last', req: prune({ keep_last: -1 }), field: 'keep_last' },
    { name: 'keep_daily above 1000', req: prune({ keep_daily: 1001 }), field: 'keep_daily' },
    { name: 'keep_weekly above 1000', req: prune({ keep_weekly: 5000 }), field: 'keep_weekly' },
    { name: 'no keep_* above 0', req: prune({ keep_last: 0 }), field: 'keep_last' },
  ])('refuses $name with INVALID_ARGUMENT naming $field', async ({ req, field }) => {
    const { api, removed } = service();
    await expect(call(api.PruneBackups, req)).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringMatching(new RegExp(`^${field}: `)) as string });
    expect(removed).toEqual([]);
  });

  it('answers what would go on a dry run, removing nothing', async () => {
    const { api, removed } = service();
    const r = await call(api.PruneBackups, prune({ dry_run: true, request_id: '' }));
    expect(r.kept?.map((b) => b.id)).toEqual(['bk-3']);
    expect(r.removed?.map((b) => b.id)).toEqual(['bk-2', 'bk-1']);
    expect(removed).toEqual([]);
  });

  it('removes what no rule keeps', async () => {
    const { api, removed } = service();
    const r = await call(api.PruneBackups, prune({ keep_last: 1, keep_daily: 2 }));
    expect(r.kept?.map((b) => b.id)).toEqual(['bk-3', 'bk-2']);
    expect(removed).toEqual(['bk-1']);
  });
});
