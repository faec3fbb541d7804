import { BACKUP_POLICY_LIMITS, DNS_LABEL, hostIdSchema, InvalidArgumentError, opaqueIdSchema, requireId, unary, type Logger, type pb } from '@virtfleet/shared';
import { z } from 'zod';
import type { RequestLedger } from '../requests/request-ledger.js';
import { toProtoWorkload } from '../coordinator-service.js';
import { BACKUP_ID, type BackupManifest, type BackupSummary } from './backup-repository.js';
import type { BackupService } from './backup-service.js';
import { planRetention, type RetentionRules } from './retention.js';

const backupIdSchema = z.string().regex(BACKUP_ID, 'must be a backup id such as bk-20261203170000-1a2b3c4d');
const workloadRefSchema = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,78}[a-z0-9])?$/, 'must be a workload id or name');
const requestIdOf = (value: string) => (value ? requireId(opaqueIdSchema, value, 'request_id') : '');

/** A backup for the API; a summary (from a listing) has no chunk counts, a removed unreadable one only its id. */
export function toProtoBackup(m: BackupManifest | BackupSummary | { id: string }): pb.Backup {
  if (!('files' in m)) return { id: m.id };
  return {
    id: m.id,
    workload_id: m.workload_id,
    workload_name: m.workload_name,
    kind: m.kind,
    created_at: m.created_at,
    memory: m.memory,
    files: m.files.map((f) => ({ role: f.role, size_bytes: f.size_bytes, sha256: f.sha256, chunks: 'chunks' in f ? f.chunks.length : 0 })),
    size_bytes: m.size_bytes,
    stored_bytes: m.stored_bytes,
  };
}

type BackupMethods = 'CreateBackup' | 'ListBackups' | 'DeleteBackup' | 'VerifyBackup' | 'RestoreBackup' | 'PruneBackups';

/** A prune's keep_* rules, each 0-1000 and at least one above 0, so a prune never removes every backup by accident. */
export function retentionRulesOf(req: RetentionRules): RetentionRules {
  for (const field of ['keep_last', 'keep_daily', 'keep_weekly'] as const) {
    const n = req[field];
    if (!Number.isInteger(n) || n < 0 || n > BACKUP_POLICY_LIMITS.maxKeep) throw new InvalidArgumentError(field, `must be a whole number from 0 to ${BACKUP_POLICY_LIMITS.maxKeep}`);
  }
  if (req.keep_last + req.keep_daily + req.keep_weekly === 0)
    throw new InvalidArgumentError('keep_last', 'at least one of keep_last, keep_daily, keep_weekly must be above 0, or every backup would be removed');
  return { keep_last: req.keep_last, keep_daily: req.keep_daily, keep_weekly: req.keep_weekly };
}

/** The backup RPCs of virtfleet.v1.Coordinator; changing calls are exactly-once by request id. */
export function backupHandlers(backups: BackupService, requests: RequestLedger, log: Logger): Pick<pb.CoordinatorHandlers, BackupMethods> {
  return {
    CreateBackup: unary<pb.CreateBackupRequest__Output, pb.Backup>(log, 'CreateBackup', (req) => {
      const ref = requireId(workloadRefSchema, req.id, 'id');
      return requests.run(requestIdOf(req.request_id), { method: 'CreateBackup', subject: ref, params: { memory: req.memory } }, async () =>
        toProtoBackup(await backups.create(ref, { memory: req.memory })),
      );
    }),
    ListBackups: unary<pb.ListBackupsRequest__Output, pb.ListBackupsResponse>(log, 'ListBackups', async (req) => {
      if (req.workload && !DNS_LABEL.test(req.workload)) throw new InvalidArgumentError('workload', 'must be a workload name');
      return { backups: (await backups.list(req.workload || undefined)).map(toProtoBackup) };
    }),
    DeleteBackup: unary<pb.BackupRef__Output, pb.Backup>(log, 'DeleteBackup', (req) => {
      const id = requireId(backupIdSchema, req.id, 'id');
      return requests.run(requestIdOf(req.request_id), { method: 'DeleteBackup', subject: id, params: {} }, async () => toProtoBackup(await backups.remove(id)));
    }),
    VerifyBackup: unary<pb.BackupRef__Output, pb.BackupVerification>(log, 'VerifyBackup', async (req) => {
      const id = requireId(backupIdSchema, req.id, 'id');
      const r = await backups.verify(id);
      return { id, ok: r.ok, checked_chunks: r.checkedChunks, damaged: r.damaged };
    }),
    RestoreBackup: unary<pb.RestoreBackupRequest__Output, pb.Workload>(log, 'RestoreBackup', (req) => {
      const id = requireId(backupIdSchema, req.id, 'id');
      if (req.as_name && !DNS_LABEL.test(req.as_name)) throw new InvalidArgumentError('as_name', 'must be a DNS label: 1-63 characters of a-z, 0-9 and "-"');
      if (req.host_id) requireId(hostIdSchema, req.host_id, 'host_id');
      const requestId = requestIdOf(req.request_id);
      return requests.run(requestId, { method: 'RestoreBackup', subject: id, params: { as_name: req.as_name, host_id: req.host_id } }, async () =>
        toProtoWorkload(await backups.restore(id, { asName: req.as_name, hostId: req.host_id, requestId })),
      );
    }),
    PruneBackups: unary<pb.PruneBackupsRequest__Output, pb.PruneBackupsResponse>(log, 'PruneBackups', (req) => {
      if (!DNS_LABEL.test(req.workload)) throw new InvalidArgumentError('workload', 'must be a workload name');
      const rules = retentionRulesOf(req);
      const plan = async () => planRetention(await backups.list(req.workload), rules);
      if (req.dry_run) return plan().then((p) => ({ kept: p.keep.map(toProtoBackup), removed: p.prune.map(toProtoBackup) }));
      return requests.run(requestIdOf(req.request_id), { method: 'PruneBackups', subject: req.workload, params: { ...rules } }, async () => {
        const p = await plan();
        // One at a time: each removal frees the chunks no other backup uses, under the repository's lock.
        for (const b of p.prune) await backups.remove(b.id);
        return { kept: p.keep.map(toProtoBackup), removed: p.prune.map(toProtoBackup) };
      });
    }),
  };
}
