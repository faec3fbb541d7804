import { Command, CommanderError, Option } from 'commander';
import { InvalidArgumentError } from '@virtfleet/shared';
import { describe, expect, it } from 'vitest';
import { EXIT, exitCodeFor } from '../exit-codes.js';
import { errorText } from '../output.js';
import { pruneRequestOf, registerBackupCommands } from './backups.js';

/** Runs `virtfleet <args>` as main.ts does (a usage error exits 2, a thrown error by exitCodeFor), against a coordinator that is not there. */
async function run(args: string[]): Promise<{ code: number; stderr: string }> {
  const program = new Command('virtfleet')
    .addOption(new Option('--coordinator <host:port>').default('127.0.0.1:1'))
    .addOption(new Option('-o, --output <format>').choices(['table', 'json']).default('table'))
    .addOption(new Option('--timeout <seconds>').default(1))
    .exitOverride();
  registerBackupCommands(program);
  let stderr = '';
  const quiet = (c: Command) => {
    c.exitOverride().configureOutput({ writeErr: (s) => (stderr += s), writeOut: () => undefined });
    c.commands.forEach(quiet);
  };
  quiet(program);
  try {
    await program.parseAsync(['node', 'virtfleet', ...args]);
    return { code: EXIT.ok, stderr };
  } catch (err) {
    if (err instanceof CommanderError) return { code: err.exitCode === 0 ? EXIT.ok : EXIT.invalidInput, stderr };
    return { code: exitCodeFor(err), stderr: stderr + errorText(err) };
  }
}

describe('virtfleet backup prune: arguments', () => {
  it.each([
    { name: 'no --keep-* at all', args: ['web'], message: /--keep-last: give at least one of --keep-last, --keep-daily, --keep-weekly above 0/ },
    { name: 'every --keep-* 0', args: ['web', '--keep-last', '0', '--keep-daily', '0', '--keep-weekly', '0'], message: /at least one/ },
    { name: 'a --keep-last that is not a number', args: ['web', '--keep-last', 'x'], message: /--keep-last: must be a whole number from 0 to 1000, not "x"/ },
    { name: 'a fractional --keep-daily', args: ['web', '--keep-daily', '1.5'], message: /--keep-daily: must be a whole number/ },
    { name: 'a --keep-weekly above 1000', args: ['web', '--keep-weekly', '1001'], message: /--keep-weekly: must be a whole number from 0 to 1000/ },
    { name: 'a workload that is not a name', args: ['Web_1', '--keep-last', '3'], message: /<workload>: must be a workload name/ },
  ])('refuses $name with exit 2, asking nothing of the coordinator', async ({ args, message }) => {
    const r = await run(['backup', 'prune', ...args]);
    expect(r.code, r.stderr).toBe(EXIT.invalidInput);
    expect(r.stderr).toMatch(message);
  });

  it('refuses a missing workload as a usage error', async () => {
    const r = await run(['backup', 'prune', '--keep-last', '3']);
    expect(r.code).toBe(EXIT.invalidInput);
    expect(r.stderr).toMatch(/missing required argument 'workload'/);
  });
});

describe('pruneRequestOf', () => {
  it.each([
    { name: 'keep-last only', opts: { keepLast: 3 }, want: { workload: 'web', keep_last: 3, keep_daily: 0, keep_weekly: 0, dry_run: false, request_id: 'r1' } },
    { name: 'every rule', opts: { keepLast: 1, keepDaily: 7, keepWeekly: 4 }, want: { workload: 'web', keep_last: 1, keep_daily: 7, keep_weekly: 4, dry_run: false, request_id: 'r1' } },
    { name: 'a dry run, which needs no request id', opts: { keepDaily: 2, dryRun: true }, want: { workload: 'web', keep_last: 0, keep_daily: 2, keep_weekly: 0, dry_run: true, request_id: '' } },
  ])('builds $name', ({ opts, want }) => {
    expect(pruneRequestOf('web', { ...opts, requestId: 'r1' })).toEqual(want);
  });

  it('throws InvalidArgumentError when nothing would be kept', () => {
    expect(() => pruneRequestOf('web', { keepLast: 0 })).toThrow(InvalidArgumentError);
  });
});
