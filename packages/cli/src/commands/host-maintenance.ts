import { Option, type Command } from 'commander';
import { InvalidArgumentError, type pb } from '@virtfleet/shared';
import type { CoordinatorApi } from '../coordinator-client.js';
import { EXIT } from '../exit-codes.js';
import { forPeople, print, write, type OutputFormat } from '../output.js';
import { ProgressLine } from '../progress.js';
import { requestIdOf } from './paging.js';

/** How operator.ts runs a command against the coordinator (passed in, so this module does not import it back). */
export type WithApi = (cmd: Command, run: (api: CoordinatorApi, format: OutputFormat) => Promise<void>) => Promise<void>;

/** The API's limits on a drain (DrainHostRequest). */
const MAX_PARALLEL = 64;
const MAX_DEADLINE_SECONDS = 7 * 86_400;
const POLL_MS = 1000;
const BAR_WIDTH = 24;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** A duration flag (`--deadline` unless named): seconds, or a duration such as 90s, 30m, 2h or 1h30m; at most `maxSeconds` (whole days), 7 days unless given. */
export function parseDuration(v: string, flag = '--deadline', maxSeconds = MAX_DEADLINE_SECONDS): number {
  let seconds = Number.NaN;
  if (/^\d+$/.test(v)) seconds = Number(v);
  else if (/^(\d+[smhd])+$/.test(v)) seconds = [...v.matchAll(/(\d+)([smhd])/g)].reduce((sum, m) => sum + Number(m[1]) * (UNIT_SECONDS[m[2] ?? 's'] ?? 1), 0);
  if (!(seconds >= 1 && seconds <= maxSeconds))
    throw new InvalidArgumentError(flag, `must be a duration from 1s to ${maxSeconds / 86_400}d such as 90s, 30m, 2h or 1h30m, not ${JSON.stringify(v)}`);
  return seconds;
}

function parseParallel(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > MAX_PARALLEL) throw new InvalidArgumentError('--parallel', `must be a whole number from 1 to ${MAX_PARALLEL}`);
  return n;
}

/** One workload of a drain as a line: what became of it. */
export function drainLine(w: pb.HostDrainWorkload__Output): string {
  const what = `${w.name} (${w.kind}, ${w.workload_id})`;
  switch (w.outcome) {
    case 'moving':
      return `${what}: moving to ${w.host_id}`;
    case 'moved':
      return `${what}: moved to ${w.host_id}`;
    case 'never':
      return `${what}: left: restart_policy never`;
    case 'no_host':
      return `${what}: left: no host fits: ${w.reason}`;
    case 'refused':
      return `${what}: left: cannot move: ${w.reason}`;
    case 'failed':
      return `${what}: left: failed: ${w.reason}`;
    case 'not_tried':
      return `${what}: left: not tried: ${w.reason}`;
    case 'gone':
      return `${what}: gone: ${w.reason}`;
    default:
      return `${what}: ${w.outcome}`;
  }
}

/** A progress bar of the workloads done (moved, left or gone), with the counts. */
export function progressBar(d: pb.HostDrain__Output, width = BAR_WIDTH): string {
  const total = d.workloads.length;
  const done = total - d.waiting - d.moving;
  const filled = total === 0 ? width : Math.round((width * done) / total);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total}  moved ${d.moved}, left ${d.left}, moving ${d.moving}, waiting ${d.waiting}`;
}

/**
 * How `host drain` ends: 0 once the host is empty; 5 with workloads left
 * (listed) or when the drain was cancelled; 4 when its deadline passed first.
 */
export function drainOutcome(d: pb.HostDrain__Output): { code: number; message: string } {
  const left = d.workloads.filter((w) => ['never', 'no_host', 'refused', 'failed', 'not_tried'].includes(w.outcome));
  const listing = left.map((w) => `\n  ${drainLine(w)}`).join('');
  switch (d.state) {
    case 'drained':
      return { code: EXIT.ok, message: d.message };
    case 'deadline_exceeded':
      return { code: EXIT.unavailable, message: `drain of ${d.host_id} stopped at its deadline: ${d.message}${listing}` };
    case 'cancelled':
      return { code: EXIT.conflict, message: `drain of ${d.host_id} was stopped: ${d.message}${listing}` };
    default:
      return { code: EXIT.conflict, message: `drain of ${d.host_id} left ${left.length} workload(s) on it: ${d.message}${listing}` };
  }
}

/**
 * Prints a drain as it goes: a line per workload whenever its outcome
 * changes and, on a terminal, a progress bar kept on the last line.
 */
export class DrainProgress {
  private readonly shown = new Map<string, string>();
  private readonly bar: ProgressLine | undefined;

  constructor(
    private readonly out: (text: string) => void,
    tty: boolean,
  ) {
    this.bar = tty ? new ProgressLine(out) : undefined;
  }

  update(d: pb.HostDrain__Output): void {
    const lines: string[] = [];
    for (const w of d.workloads) {
      if (w.outcome === 'waiting' || this.shown.get(w.workload_id) === w.outcome) continue;
      this.shown.set(w.workload_id, w.outcome);
      lines.push(drainLine(w));
    }
    if (!this.bar) {
      for (const line of lines) this.out(`${line}\n`);
      return;
    }
    this.bar.draw(progressBar(d), lines);
  }

  /** Ends the bar's line. */
  finish(): void {
    this.bar?.finish();
  }
}

/** Polls the drain, printing it as it goes, until it has ended. */
async function follow(client: CoordinatorApi, first: pb.HostDrain__Output, progress: DrainProgress | undefined): Promise<pb.HostDrain__Output> {
  let d = first;
  progress?.update(d);
  while (d.state === 'draining') {
    await new Promise((r) => setTimeout(r, POLL_MS));
    d = await client.hostDrain(first.host_id);
    progress?.update(d);
  }
  progress?.finish();
  return d;
}

function summary(d: pb.HostDrain__Output): string {
  const deadline = d.deadline ? `, deadline ${d.deadline}` : '';
  return `${d.host_id}: drain ${d.id} ${d.state} (${d.mode}, ${d.parallel} at once${deadline}): ${d.message}\n  ${progressBar(d)}${d.workloads.map((w) => `\n  ${drainLine(w)}`).join('')}`;
}

/** Follows a drain to its end (table: line by line, a bar on a terminal; json: the final record) and sets the exit code. */
async function watch(client: CoordinatorApi, d: pb.HostDrain__Output, format: OutputFormat): Promise<void> {
  const table = forPeople(format);
  if (table) write(`${d.host_id}: drain ${d.id} ${d.state}: ${d.message}\n`);
  const last = await follow(client, d, table ? new DrainProgress(write, process.stdout.isTTY === true) : undefined);
  if (table) write(`${last.host_id}: ${last.state}: ${last.message}\n`);
  else print(format, last, () => '');
  const { code, message } = drainOutcome(last);
  if (code !== EXIT.ok) {
    process.stderr.write(`error: ${message}\n`);
    process.exitCode = code;
  }
}

/** `host drain`, `drain-status`, `undrain` and `rm`, under the `host` command. */
export function registerHostMaintenanceCommands(host: Command, withApi: WithApi): void {
  host
    .command('drain')
    .description('cordon a host and move every workload that may move off it (live where possible), reporting each; restart_policy never and unplaceable ones stay')
    .argument('<host>', 'host id')
    .addOption(new Option('--deadline <duration>', 'start no move after this long, e.g. 90s, 30m, 2h (default: none)').argParser((v: string) => parseDuration(v)))
    .addOption(new Option('--parallel <n>', `migrations at once, 1-${MAX_PARALLEL}`).argParser(parseParallel).default(2))
    .addOption(new Option('--mode <mode>', 'how workloads move: live, cold, or auto (VMs live, containers cold)').choices(['live', 'cold', 'auto']).default('auto'))
    .option('--no-wait', 'answer once the drain is under way (follow it with host drain-status --watch)')
    .option('--request-id <id>', 'idempotency key: repeating it returns the first result (default: random)')
    .action(async (hostId: string, opts: { deadline?: number; parallel: number; mode: string; wait: boolean; requestId?: string }, cmd: Command) =>
      withApi(cmd, async (client, format) => {
        const d = await client.drainHost({ host_id: hostId, request_id: requestIdOf(opts), parallel: opts.parallel, deadline_seconds: opts.deadline ?? 0, mode: opts.mode });
        if (!opts.wait) return print(format, d, () => summary(d));
        await watch(client, d, format);
      }),
    );

  host
    .command('drain-status')
    .description("show a host's drain under way, or its last one")
    .argument('<host>', 'host id')
    .option('--watch', 'follow it until it ends, and exit as host drain does')
    .action(async (hostId: string, opts: { watch?: boolean }, cmd: Command) =>
      withApi(cmd, async (client, format) => {
        const d = await client.hostDrain(hostId);
        if (!opts.watch) return print(format, d, () => summary(d));
        await watch(client, d, format);
      }),
    );

  host
    .command('undrain')
    .description("stop a host's drain under way (moves already started finish) and make the host schedulable again")
    .argument('<host>', 'host id')
    .option('--request-id <id>', 'idempotency key: repeating it returns the first result (default: random)')
    .action(async (hostId: string, opts: { requestId?: string }, cmd: Command) =>
      withApi(cmd, async (client, format) => {
        const r = await client.undrainHost(hostId, requestIdOf(opts));
        print(format, r, () => `${hostId} schedulable${r.drain ? `; drain ${r.drain.id} ${r.drain.state}: ${r.drain.message}` : ''}`);
      }),
    );

  host
    .command('rm')
    .description('forget a host that is down and holds no workloads (decommissioned); it registers again if it reports')
    .argument('<host>', 'host id')
    .option('--request-id <id>', 'idempotency key: repeating it returns the first result (default: random)')
    .action(async (hostId: string, opts: { requestId?: string }, cmd: Command) =>
      withApi(cmd, async (client, format) => {
        const h = await client.removeHost(hostId, requestIdOf(opts));
        print(format, h, () => `${h.id} forgotten`);
      }),
    );
}
