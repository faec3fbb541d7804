import { Option, type Command } from 'commander';
import { BACKUP_POLICY_LIMITS, DNS_LABEL, InvalidArgumentError, type pb } from '@virtfleet/shared';
import { EXIT } from '../exit-codes.js';
import { age, forPeople, print, table } from '../output.js';
import { elapsed, progressFor, spinner, whileRunning } from '../progress.js';
import { withApi } from './operator.js';
import { requestIdOf } from './paging.js';

const sizeText = (bytes: number) => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)}Gi` : `${(bytes / 2 ** 20).toFixed(1)}Mi`);

/** Backups for a person; wide adds the workload's id, whether memory was saved, and the time. */
function backupRows(backups: pb.Backup__Output[], wide = false): string {
  return table(
    ['id', 'workload', 'kind', 'files', 'size', 'stored', 'age', ...(wide ? ['workload id', 'memory', 'created'] : [])],
    backups.map((b) => [
      b.id,
      b.workload_name,
      b.kind,
      b.files.map((f) => f.role).join(','),
      sizeText(b.size_bytes),
      sizeText(b.stored_bytes),
      age(b.created_at),
      ...(wide ? [b.workload_id, b.memory ? 'yes' : 'no', b.created_at] : []),
    ]),
  );
}

/** A `--keep-*` count: a whole number from 0 to 1000. */
function keepCount(flag: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n > BACKUP_POLICY_LIMITS.maxKeep) throw new InvalidArgumentError(flag, `must be a whole number from 0 to ${BACKUP_POLICY_LIMITS.maxKeep}, not ${JSON.stringify(v)}`);
    return n;
  };
}

export interface PruneOptions {
  keepLast?: number;
  keepDaily?: number;
  keepWeekly?: number;
  dryRun?: boolean;
  requestId?: string;
}

/**
 * The PruneBackups request of `backup prune`.
 * @throws InvalidArgumentError for a workload that is not a name, or when no --keep-* is above 0 (that would remove every backup)
 */
export function pruneRequestOf(workload: string, opts: PruneOptions): pb.PruneBackupsRequest {
  if (!DNS_LABEL.test(workload)) throw new InvalidArgumentError('<workload>', 'must be a workload name (its backups are found by name)');
  const req = { workload, keep_last: opts.keepLast ?? 0, keep_daily: opts.keepDaily ?? 0, keep_weekly: opts.keepWeekly ?? 0, dry_run: opts.dryRun ?? false };
  if (req.keep_last + req.keep_daily + req.keep_weekly === 0)
    throw new InvalidArgumentError('--keep-last', 'give at least one of --keep-last, --keep-daily, --keep-weekly above 0; with none, every backup would be removed');
  return { ...req, request_id: req.dry_run ? '' : requestIdOf(opts) };
}

export function registerBackupCommands(program: Command): void {
  const backup = program.command('backup').description("workloads' backups in the cluster's backup repository (content-addressed chunks: unchanged data is stored once)");
  backup
    .command('create')
    .description("back a workload up as it is now, while it runs: a VM's disks crash-consistent, a container's writable layer")
    .argument('<workload>', 'workload id or name')
    .option('--memory', "a running VM's memory too: it pauses while it is saved, and a restore resumes it where it was")
    .option('--request-id <id>', 'idempotency key: repeating it returns the first result (default: random)')
    .action(async (ref: string, opts: { memory?: boolean; requestId?: string }, cmd: Command) =>
      withApi(cmd, async (client, format) => {
        const start = Date.now();
        const b = await whileRunning(
          progressFor(process.stdout, forPeople(format)),
          (frame) => `${spinner(frame)} backing up ${ref}${opts.memory ? ' with its memory' : ''}, ${elapsed(start)}`,
          client.createBackup({ id: ref, memory: opts.memory ?? false, request_id: requestIdOf(opts) }),
        );
        print(format, b, () => `${b.id}: ${b.workload_name}, ${sizeText(b.size_bytes)} (${sizeText(b.stored_bytes)} new in the repository)`);
      }),
    );
  backup
    .command('ls')
    .description('list backups, newest first')
    .argument('[workload]', 'only this workload’s (by name)')
    .action(async (name: string | undefined, _o, cmd: Command) =>
      withApi(cmd, async (client, format) => {
        const { backups } = await client.listBackups({ workload: name ?? '' });
        print(format, backups, (wide) => backupRows(backups, wide));
      }),
    );
  backup
    .command('rm')
    .description('remove a backup, and the chunks no other backup uses')
    .argument('<id>', 'backup id')
    .option('--request-id <id>', 'idempotency key: repeating it returns the first result (default: random)')
    .action(async (id: string, opts: { requestId?: string }, cmd: Command) =>
      withApi(cmd, async (client, format) => {
        const b = await client.deleteBackup({ id, request_id: requestIdOf(opts) });
        print(format, b, () => `${b.id} removed`);
      }),
    );
  backup
    .command('verify')
    .description("read every chunk of a backup and check its digest; exits 1 when one is missing or damaged")
    .argument('<id>', 'backup id')
    .action(async (id: string, _o, cmd: Command) =>
      withApi(cmd, async (client, format) => {
        const r = await client.verifyBackup({ id });
        print(format, r, () =>
          r.ok
            ? `${r.id}: ok, ${r.checked_chunks} chunks checked`
            : [`${r.id}: DAMAGED, ${r.damaged.length} of its chunks:`, table(['file', 'chunk', 'sha256', 'problem'], r.damaged.map((d) => [d.role, String(d.index), d.sha256.slice(0, 16), d.problem]))].join('\n'),
        );
        if (!r.ok) process.exitCode = EXIT.failure;
      }),
    );
  backup
    .command('prune')
    .description("remove a workload's backups that no --keep-* rule keeps (a backup kept by any rule stays); UTC days, ISO weeks")
    .argument('<workload>', 'workload name')
    .addOption(new Option('--keep-last <n>', `keep the n newest backups, 0-${BACKUP_POLICY_LIMITS.maxKeep}`).argParser(keepCount('--keep-last')))
    .addOption(new Option('--keep-daily <n>', 'keep the newest backup of each of the last n days that have backups').argParser(keepCount('--keep-daily')))
    .addOption(new Option('--keep-weekly <n>', 'keep the newest backup of each of the last n ISO weeks that have backups').argParser(keepCount('--keep-weekly')))
    .option('--dry-run', 'only show what would be removed')
    .option('--request-id <id>', 'idempotency key: repeating it returns the first result (default: random)')
    .action(async (workload: string, opts: PruneOptions, cmd: Command) => {
      const req = pruneRequestOf(workload, opts);
      await withApi(cmd, async (client, format) => {
        const r = await client.pruneBackups(req);
        print(format, r, () =>
          [
            `${workload}: ${r.kept.length} kept, ${r.removed.length} ${req.dry_run ? 'would be removed (dry run)' : 'removed'}`,
            ...(r.removed.length > 0 ? [backupRows(r.removed)] : []),
          ].join('\n'),
        );
      });
    });
  backup
    .command('restore')
    .description('make a new workload from a backup, and start it; every chunk is checked as it is read')
    .argument('<id>', 'backup id')
    .option('--as <name>', "the new workload's name (default: the backed-up workload's, which must be free)")
    .option('--host <host>', 'restore on this host (default: the scheduler picks)')
    .option('--request-id <id>', 'idempotency key: repeating it returns the first result (default: random)')
    .action(async (id: string, opts: { as?: string; host?: string; requestId?: string }, cmd: Command) =>
      withApi(cmd, async (client, format) => {
        const start = Date.now();
        const w = await whileRunning(
          progressFor(process.stdout, forPeople(format)),
          (frame) => `${spinner(frame)} restoring ${id}${opts.as ? ` as ${opts.as}` : ''}, every chunk checked, ${elapsed(start)}`,
          client.restoreBackup({ id, as_name: opts.as ?? '', host_id: opts.host ?? '', request_id: requestIdOf(opts) }),
        );
        print(format, w, () => `${w.id} ${w.state} on ${w.host_id}: ${w.message}`);
      }),
    );
}
