import type { Command } from 'commander';
import type { pb } from '@virtfleet/shared';
import { EXIT } from '../exit-codes.js';
import { age, print, table } from '../output.js';
import { withApi } from './operator.js';
import { requestIdOf } from './paging.js';

const sizeText = (bytes: number) => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)}Gi` : `${(bytes / 2 ** 20).toFixed(1)}Mi`);

function backupRows(backups: pb.Backup__Output[]): string {
  return table(
    ['id', 'workload', 'kind', 'files', 'size', 'stored', 'age'],
    backups.map((b) => [b.id, b.workload_name, b.kind, b.files.map((f) => f.role).join(','), sizeText(b.size_bytes), sizeText(b.stored_bytes), age(b.created_at)]),
  );
}

export function registerBackupCommands(program: Command): void {
  const backup = program.command('backup').description("workloads' backups in the cluster's backup repository (content-addressed chunks: unchanged data is stored once)");
  backup
    .command('create')
    .description("back a workload up as it is now, while it runs: a VM's disks crash-consistent, a container's writable layer")
    .argument('<workload>', 'workload id or name')
    .option('--memory', 'a full-state backup, memory included (not offered yet)')
    .option('--request-id <id>', 'idempotency key: repeating it returns the first result (default: random)')
    .action(async (ref: string, opts: { memory?: boolean; requestId?: string }, cmd: Command) =>
      withApi(cmd, async (client, format) => {
        const b = await client.createBackup({ id: ref, memory: opts.memory ?? false, request_id: requestIdOf(opts) });
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
        print(format, backups, () => backupRows(backups));
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
    .command('restore')
    .description('make a new workload from a backup, and start it; every chunk is checked as it is read')
    .argument('<id>', 'backup id')
    .option('--as <name>', "the new workload's name (default: the backed-up workload's, which must be free)")
    .option('--host <host>', 'restore on this host (default: the scheduler picks)')
    .option('--request-id <id>', 'idempotency key: repeating it returns the first result (default: random)')
    .action(async (id: string, opts: { as?: string; host?: string; requestId?: string }, cmd: Command) =>
      withApi(cmd, async (client, format) => {
        const w = await client.restoreBackup({ id, as_name: opts.as ?? '', host_id: opts.host ?? '', request_id: requestIdOf(opts) });
        print(format, w, () => `${w.id} ${w.state} on ${w.host_id}: ${w.message}`);
      }),
    );
}
