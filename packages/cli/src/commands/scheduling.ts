import type { Command } from 'commander';
import { InvalidArgumentError, parseWorkloadSpec, readDocument, type pb } from '@virtfleet/shared';
import { EXIT } from '../exit-codes.js';
import { print, table } from '../output.js';
import { withApi } from './operator.js';
import { noteMorePages, readPages, requestIdOf, withPageOptions, type PageOptions } from './paging.js';
import { watchCommand, withWatchOptions, type WatchOptions } from './watch.js';

const QUEUE_POLICIES = ['fcfs', 'sjf', 'priority'];

/**
 * Every filter verdict of one candidate: "all 9 filters ok", or each failure
 * in run order (the first is the one counted in the rejections) and then the
 * filters that passed.
 */
function renderVerdicts(c: pb.PlacementDecision__Output['candidates'][number], filterCount: number): string {
  if (c.feasible) return `all ${c.filters.length} filters ok`;
  const failed = c.filters.filter((f) => f.status !== 'ok').map((f) => `${f.plugin}: ${f.reason || f.status} (${f.status})`);
  const passed = c.filters.filter((f) => f.status === 'ok').map((f) => f.plugin);
  const parts = [failed.join('; ') || '?'];
  if (passed.length > 0) parts.push(`ok: ${passed.join(', ')}`);
  // A record stored before every verdict was kept lists a rejected host's filters only up to its first failure.
  if (c.filters.length < filterCount) parts.push(`${filterCount - c.filters.length} later not run`);
  return parts.join('; ');
}

/** Renders a placement decision: the verdict, then one row per candidate host with every filter's verdict. */
export function renderDecision(d: pb.PlacementDecision__Output, title: string): string {
  const head = [`${title}: ${d.summary}`];
  if (d.queue_policy) head.push(`queue: ${d.queue_policy}, waited ${d.waited_seconds.toFixed(1)}s, decided ${d.decided_at}`);
  if (d.stopped_reservation) head.push(`when stopped: ${d.stopped_reservation === 'keep' ? 'keeps its booking on the host' : 'releases its booking; a start needs room again'} (stopped_reservation: ${d.stopped_reservation})`);
  const rejected = Object.entries(d.rejections)
    .sort((a, b) => b[1] - a[1])
    .map(([reason, n]) => `${n} ${reason}`)
    .join(', ');
  head.push(`hosts: ${d.hosts_total} registered, ${d.hosts_evaluated} evaluated${rejected ? `; rejected: ${rejected}` : ''}${d.unresolvable ? ' (no host can ever run it)' : ''}`);
  const filterCount = Math.max(0, ...d.candidates.map((c) => c.filters.length));
  const ranked = [...d.candidates].sort((a, b) => Number(b.feasible) - Number(a.feasible) || b.total - a.total || a.host_id.localeCompare(b.host_id));
  const rows = ranked.map((c) => {
    const role = c.host_id === d.host_id ? 'chosen' : c.host_id === d.runner_up ? 'runner-up' : c.feasible ? 'feasible' : 'rejected';
    const scores = c.scores.filter((s) => s.weight > 0).map((s) => `${s.plugin} ${s.score.toFixed(0)}×${s.weight}`).join(', ');
    return [c.host_id, role, c.feasible ? c.total.toFixed(1) : '-', scores || '-', renderVerdicts(c, filterCount)];
  });
  const margin = d.runner_up ? `margin over ${d.runner_up}: ${d.margin.toFixed(1)}` : '';
  const unlisted = d.hosts_evaluated - d.candidates.length;
  const more = unlisted > 0 ? [`(+${unlisted} more rejected hosts, counted above)`] : [];
  const legend = d.candidates.some((c) => !c.feasible) ? ['filters of a rejected host: its failures in run order (the first is the one counted under rejected), then the filters it passed'] : [];
  return [...head, ...(margin ? [margin] : []), '', table(['host', 'result', 'score', 'scores (score×weight)', 'filters'], rows), ...more, ...legend].join('\n');
}

export function registerSchedulingCommands(program: Command): void {
  program
    .command('explain')
    .description('why a workload was placed where it is, or why it waits')
    .argument('<workload>', 'workload id or name')
    .action(async (ref: string, _o, cmd: Command) =>
      withApi(cmd, async (client, format) => {
        const d = await client.explain(ref);
        print(format, d, () => renderDecision(d, d.workload_id));
      }),
    );

  program
    .command('plan')
    .description('show where a workload would be placed and why, changing nothing')
    .requiredOption('-f, --file <file>', 'spec file (YAML or JSON)')
    .action(async (opts: { file: string }, cmd: Command) => {
      const spec = parseWorkloadSpec(readDocument(opts.file), `${opts.file}:`);
      await withApi(cmd, async (client, format) => {
        const d = await client.plan(spec);
        print(format, d, () => renderDecision(d, `plan for ${spec.name}`));
        if (!d.host_id) process.exitCode = EXIT.conflict;
      });
    });

  const queue = program.command('queue').description('the admission queue');
  withWatchOptions(withPageOptions(queue.command('ls').description('pending workloads in the order they will be tried'))).action(async (opts: PageOptions & WatchOptions, cmd: Command) =>
    withApi(cmd, async (client, format) => {
      const fetch = async () => {
        let first: pb.QueueState__Output | undefined;
        const { items: entries, next } = await readPages(opts, async (page) => {
          const q = await client.queue(page);
          first ??= q;
          return { items: q.entries, next: q.next_page_token };
        });
        return { ...first!, entries, next_page_token: next };
      };
      if (opts.watch) {
        const title = `virtfleet queue ls (every ${opts.interval}s and on workload events)`;
        return watchCommand({ client, format, interval: opts.interval, title, fetch, render: renderQueue, typePrefix: 'io.virtfleet.workload' });
      }
      const q = await fetch();
      print(format, q, (wide) => renderQueue(q, wide));
      noteMorePages(q.next_page_token);
    }),
  );
  queue
    .command('policy')
    .description('switch the queue order at runtime: fcfs, sjf or priority')
    .argument('<policy>', QUEUE_POLICIES.join(' | '))
    .option('--strict', 'strict order: nothing passes a blocked head')
    .option('--backfill', 'let smaller requests pass a blocked head')
    .option('--request-id <id>', 'idempotency key: repeating it returns the first result (default: random)')
    .action(async (policy: string, opts: { strict?: boolean; backfill?: boolean; requestId?: string }, cmd: Command) => {
      if (!QUEUE_POLICIES.includes(policy)) throw new InvalidArgumentError('policy', `must be one of ${QUEUE_POLICIES.join(', ')}`);
      if (opts.strict && opts.backfill) throw new InvalidArgumentError('--strict', 'cannot be combined with --backfill');
      const backfill = opts.strict ? false : opts.backfill ? true : undefined;
      await withApi(cmd, async (client, format) => {
        const q = await client.setQueuePolicy(policy, backfill, requestIdOf(opts));
        print(format, q, (wide) => renderQueue(q, wide));
      });
    });
}

/** The queue for a person; wide adds each workload's name. */
function renderQueue(q: pb.QueueState__Output, wide = false): string {
  const head = `policy ${q.policy}, ${q.backfill ? 'backfill' : 'strict order'}${q.policy === 'priority' ? `, aging ${q.aging_per_minute}/min` : ''}; ${q.length} waiting`;
  if (q.entries.length === 0) return head;
  return `${head}\n${table(
    ['pos', 'workload', ...(wide ? ['name'] : []), 'tenant', 'priority', 'effective', 'runtime', 'waited', 'reason'],
    q.entries.map((e) => [String(e.position), e.workload_id, ...(wide ? [e.name || '-'] : []), e.tenant, String(e.priority), e.effective_priority.toFixed(1), `${e.expected_runtime_seconds}s`, `${e.waited_seconds.toFixed(0)}s`, e.reason]),
  )}`;
}
