import { Option, type Command } from 'commander';
import { InvalidArgumentError, type pb } from '@virtfleet/shared';
import { REBALANCE_GOALS, offlineInput, planRebalance, readHosts, readWorkloads, toProtoRebalancePlan, type RebalanceGoal } from '@virtfleet/coordinator';
import { print, table, type OutputFormat } from '../output.js';
import { withApi } from './operator.js';

interface PlanOptions {
  goal: RebalanceGoal;
  hosts?: string;
  workloads?: string;
}

/**
 * A plan from files, with no coordinator: hosts in the simulator's format,
 * workloads as JSON Lines of spec fields plus `host` (see `parseWorkloads`).
 * @throws InvalidArgumentError naming the file, line and field of bad input.
 */
export function planFromFiles(goal: RebalanceGoal, hostsFile: string, workloadsFile: string): pb.RebalancePlan__Output {
  const hosts = readHosts(hostsFile);
  const workloads = readWorkloads(workloadsFile, new Set(hosts.map((h) => h.id)), hostsFile);
  return toProtoRebalancePlan(planRebalance(offlineInput(hosts, workloads), { goal }));
}

const percent = (x: number) => `${Math.round(x * 100)}%`;
const points = (x: number) => (x * 100).toFixed(1);

function spreadLine(what: string, change: pb.RebalanceSpreadChange__Output | null): string {
  const b = change?.before;
  const a = change?.after;
  if (!b || !a) return `${what}: -`;
  return `${what}: max ${percent(b.max)} → ${percent(a.max)}, mean ${percent(b.mean)} → ${percent(a.mean)}, stddev ${points(b.stddev)} → ${points(a.stddev)} points`;
}

/** A plan for a person: the summary, the moves in order, and what stays. */
export function renderPlan(plan: pb.RebalancePlan__Output): string {
  const freed = plan.gain?.freed_hosts ?? [];
  const lines = [
    `${plan.goal}: ${plan.hosts_used_before} host${plan.hosts_used_before === 1 ? '' : 's'} in use → ${plan.hosts_used_after}` +
      (freed.length > 0 ? ` (${freed.length} freed: ${freed.join(', ')})` : '') +
      `; at least ${plan.hosts_lower_bound} needed`,
    spreadLine('memory utilisation', plan.gain?.memory ?? null),
    spreadLine('cpu utilisation', plan.gain?.cpu ?? null),
    '',
  ];
  if (plan.moves.length === 0) lines.push('no moves: nothing to gain within the scheduler filters');
  else lines.push(table(['#', 'workload', 'name', 'from', 'to'], plan.moves.map((m, i) => [String(i + 1), m.workload_id, m.name, m.from, m.to])));
  lines.push('', `${plan.moves.length} move${plan.moves.length === 1 ? '' : 's'}, one at a time in this order; nothing was changed`);
  if (plan.pinned.length > 0) {
    const shown = plan.pinned.slice(0, 10).map((p) => `${p.name} (${p.workload_id}) on ${p.host}: ${p.reason}`);
    lines.push(`${plan.pinned.length} workload${plan.pinned.length === 1 ? '' : 's'} stay${plan.pinned.length === 1 ? 's' : ''}: ${shown.join('; ')}${plan.pinned.length > 10 ? `; and ${plan.pinned.length - 10} more` : ''}`);
  }
  if (plan.truncated) lines.push('the search hit its time limit: a plan with more time may free more');
  return lines.join('\n');
}

/** `virtfleet rebalance`; returns the command so that other verbs (apply) join it. */
export function registerRebalanceCommand(program: Command): Command {
  const rebalance = program.command('rebalance').description('plan migrations that free hosts (consolidate) or even out their load (balance)');
  rebalance
    .command('plan')
    .description('compute a plan of migrations and print it, changing nothing; from the coordinator, or from --hosts and --workloads files offline')
    .addOption(new Option('--goal <goal>', 'consolidate: free as many hosts as possible; balance: even out memory and CPU utilisation').choices([...REBALANCE_GOALS]).makeOptionMandatory())
    .option('--hosts <file>', 'offline: hosts, YAML or JSON list (the simulator\'s format, docs/simulator.md)')
    .option('--workloads <file>', 'offline: workloads, JSON Lines of spec fields plus host (where it is), and optionally id and state')
    .action(async (opts: PlanOptions, cmd: Command) => {
      const format = cmd.optsWithGlobals<{ output: OutputFormat }>().output;
      if (opts.hosts !== undefined || opts.workloads !== undefined) {
        if (opts.hosts === undefined) throw new InvalidArgumentError('--hosts', 'is required with --workloads: an offline plan needs both files');
        if (opts.workloads === undefined) throw new InvalidArgumentError('--workloads', 'is required with --hosts: an offline plan needs both files');
        const plan = planFromFiles(opts.goal, opts.hosts, opts.workloads);
        print(format, plan, () => renderPlan(plan));
        return;
      }
      await withApi(cmd, async (client) => {
        const plan = await client.planRebalance(opts.goal);
        print(format, plan, () => renderPlan(plan));
      });
    });
  return rebalance;
}
