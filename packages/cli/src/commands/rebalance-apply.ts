import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { errorMessage, InvalidArgumentError, type pb } from '@virtfleet/shared';
import { z } from 'zod';
import { EXIT } from '../exit-codes.js';
import { forPeople, print, write } from '../output.js';
import { parseWhole, withApi } from './operator.js';

/** One move of a plan, as `rebalance plan -o json` writes it. */
export interface PlannedMove {
  workload_id: string;
  name: string;
  from: string;
  to: string;
}

export type MoveResult = 'moved' | 'skipped' | 'failed' | 'not_started';

export interface MoveOutcome extends PlannedMove {
  /** 1-based place in the plan. */
  index: number;
  result: MoveResult;
  message: string;
}

/** What applying a plan needs of the coordinator. */
export interface MigrationApi {
  get(id: string): Promise<pb.Workload__Output>;
  migrate(req: pb.MigrateWorkloadRequest): Promise<pb.Workload__Output>;
}

const planSchema = z.object({
  moves: z.array(z.object({ workload_id: z.string().min(1), name: z.string(), from: z.string().min(1), to: z.string().min(1) })).max(100_000),
});

/**
 * The moves of a plan file (the JSON `rebalance plan -o json` prints), and a
 * key naming the plan, so that the same plan applied again sends the same
 * request ids.
 * @throws InvalidArgumentError naming the file and field
 */
export function readPlan(file: string): { moves: PlannedMove[]; key: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(file, `cannot be read: ${errorMessage(err)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(file, `is not JSON (write it with rebalance plan -o json): ${errorMessage(err)}`);
  }
  const parsed = planSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InvalidArgumentError(`${file}: ${issue.path.join('.')}`, issue.message);
  }
  return { moves: parsed.data.moves, key: createHash('sha256').update(text).digest('hex').slice(0, 16) };
}

/**
 * Carries a plan's moves out with the migration machinery, at most
 * `parallel` at once. The plan is valid one move at a time in its order, so
 * a move waits for every earlier move that touches one of its hosts (or its
 * workload); moves on other hosts run beside them. A workload that is no
 * longer where the plan found it is skipped. With `stopOnError`, a failed
 * move starts no more; those left are `not_started`.
 */
export async function applyPlan(
  api: MigrationApi,
  moves: PlannedMove[],
  options: { parallel: number; stopOnError: boolean; planKey: string; pollMs?: number; onOutcome?: (o: MoveOutcome) => void },
): Promise<MoveOutcome[]> {
  const outcomes: (MoveOutcome | undefined)[] = moves.map(() => undefined);
  const running = new Map<number, Promise<void>>();
  let stopped = false;
  const touches = (a: PlannedMove, b: PlannedMove) => a.workload_id === b.workload_id || [a.from, a.to].some((h) => h === b.from || h === b.to);
  const finish = (i: number, result: MoveResult, message: string) => {
    const outcome = { index: i + 1, ...moves[i]!, result, message };
    outcomes[i] = outcome;
    options.onOutcome?.(outcome);
  };
  const carryOut = async (i: number): Promise<void> => {
    const move = moves[i]!;
    try {
      const now = await api.get(move.workload_id);
      if (now.host_id !== move.from) return finish(i, 'skipped', `it is on ${now.host_id || 'no host'} now, not on ${move.from}`);
      let w = await api.migrate({ id: move.workload_id, target_host_id: move.to, request_id: `rebalance-${options.planKey}-${i + 1}` });
      while (w.migration) {
        await new Promise((r) => setTimeout(r, options.pollMs ?? 500));
        w = await api.get(move.workload_id);
      }
      if (w.host_id === move.to) return finish(i, 'moved', w.message);
      finish(i, 'failed', w.message);
    } catch (err) {
      finish(i, 'failed', errorMessage(err));
    }
  };
  for (;;) {
    if (!stopped)
      for (let i = 0; i < moves.length && running.size < options.parallel; i++) {
        if (outcomes[i] || running.has(i)) continue;
        // An earlier move not finished yet that shares a host or the workload goes first.
        let blocked = false;
        for (let j = 0; j < i; j++) if (!outcomes[j] && touches(moves[j]!, moves[i]!)) blocked = true;
        if (blocked) continue;
        running.set(i, carryOut(i).finally(() => running.delete(i)));
      }
    if (running.size === 0) break;
    await Promise.race(running.values());
    if (options.stopOnError && outcomes.some((o) => o?.result === 'failed')) stopped = true;
  }
  moves.forEach((_, i) => outcomes[i] ?? finish(i, 'not_started', 'an earlier move failed (--stop-on-error)'));
  return outcomes.map((o) => o!);
}

/** `virtfleet rebalance apply PLAN`, joined to the `rebalance` command. */
export function registerRebalanceApply(rebalance: Command): void {
  rebalance
    .command('apply')
    .description('carry out a plan written by `rebalance plan -o json`: each move a migration (live for VMs, cold for containers), in order where moves share a host')
    .argument('<plan>', 'the plan file')
    .addOption(new Option('--parallel <n>', 'migrations at once, at most').argParser((v) => parseWhole(v, '--parallel', 1, 64)).default(2))
    .option('--stop-on-error', 'start no more moves once one has failed')
    .action(async (file: string, opts: { parallel: number; stopOnError?: boolean }, cmd: Command) => {
      const { moves, key } = readPlan(file);
      await withApi(cmd, async (client, format) => {
        const outcomes = await applyPlan(client, moves, {
          parallel: opts.parallel,
          stopOnError: opts.stopOnError ?? false,
          planKey: key,
          onOutcome: (o) => forPeople(format) && write(`${o.index}/${moves.length} ${o.name} (${o.workload_id}) ${o.from} -> ${o.to}: ${o.result}${o.message ? `: ${o.message}` : ''}\n`),
        });
        if (!forPeople(format)) print(format, outcomes, () => '');
        const failed = outcomes.filter((o) => o.result === 'failed' || o.result === 'not_started');
        if (forPeople(format)) write(`${outcomes.filter((o) => o.result === 'moved').length} moved, ${outcomes.filter((o) => o.result === 'skipped').length} skipped, ${failed.length} failed or not started\n`);
        if (failed.length > 0) process.exitCode = EXIT.failure;
      });
    });
}
