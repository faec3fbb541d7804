import { Option, type Command } from 'commander';
import { InvalidArgumentError } from '@virtfleet/shared';
import { PLACEMENT_POLICIES, QUEUE_POLICIES, formatReport, readHosts, readTrace, simulate, type PlacementPolicy, type QueuePolicy } from '@virtfleet/coordinator';
import { print, table, type OutputFormat } from '../output.js';

interface SimulateOptions {
  trace: string;
  hosts: string;
  queue?: string[];
  placement: PlacementPolicy;
  agingPerMinute: string;
  strict?: boolean;
  buckets: string;
}

/** `--queue fcfs,sjf --queue priority` → ['fcfs', 'sjf', 'priority']. */
const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), ...value.split(',').map((v) => v.trim())];

/** Validated, in the order given, without repeats; fcfs when none is given. */
export function queuePolicies(values: readonly string[] | undefined): QueuePolicy[] {
  const out: QueuePolicy[] = [];
  for (const v of values ?? ['fcfs']) {
    if (!(QUEUE_POLICIES as readonly string[]).includes(v)) throw new InvalidArgumentError('--queue', `must be one of ${QUEUE_POLICIES.join(', ')} (got ${JSON.stringify(v)})`);
    if (!out.includes(v as QueuePolicy)) out.push(v as QueuePolicy);
  }
  return out;
}

function number(value: string, option: string, check: (n: number) => boolean, rule: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || !check(n)) throw new InvalidArgumentError(option, `${rule} (got ${JSON.stringify(value)})`);
  return n;
}

export function registerSimulateCommand(program: Command): void {
  program
    .command('simulate')
    .description('replay a trace of arrivals against a set of hosts with the coordinator\'s scheduler, comparing queue policies (no coordinator needed)')
    .requiredOption('--trace <file>', 'arrivals, JSON Lines (see docs/simulator.md)')
    .requiredOption('--hosts <file>', 'hosts, YAML or JSON list')
    .option('--queue <policies>', `queue policy: ${QUEUE_POLICIES.join(', ')}; repeat or separate with commas to compare side by side (default: fcfs)`, collect)
    .addOption(new Option('--placement <policy>', 'placement policy').choices([...PLACEMENT_POLICIES]).default('binpack'))
    .option('--aging-per-minute <n>', 'priority points per minute waited, under the priority policy', '1')
    .option('--strict', 'strict queue order: nothing passes a blocked head (default: backfill)')
    .option('--buckets <n>', 'time buckets in the utilisation series', '10')
    .action((opts: SimulateOptions, cmd: Command) => {
      const policies = queuePolicies(opts.queue);
      const agingPerMinute = number(opts.agingPerMinute, '--aging-per-minute', (n) => n >= 0, 'must be a number of at least 0');
      const buckets = number(opts.buckets, '--buckets', (n) => Number.isInteger(n) && n >= 1 && n <= 100, 'must be a whole number from 1 to 100');
      const arrivals = readTrace(opts.trace);
      const hosts = readHosts(opts.hosts);
      const results = policies.map((queuePolicy) =>
        simulate({ arrivals, hosts, queuePolicy, placement: opts.placement, agingPerMinute, backfill: !opts.strict, buckets }),
      );
      const format = cmd.optsWithGlobals<{ output: OutputFormat }>().output;
      print(format, results, () => formatReport(results, table));
    });
}
