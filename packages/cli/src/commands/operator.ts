import { Option, type Command } from 'commander';
import { once } from 'node:events';
import { EVENT_TYPES, eventTypePrefix, InvalidArgumentError, MAX_TAIL_LINES, parseRfc3339Nanos, parseWorkloadSpec, readDocument, type pb } from '@virtfleet/shared';
import { resolveConnection, readCliConfig } from '../connection.js';
import { CoordinatorApi } from '../coordinator-client.js';
import { EXIT } from '../exit-codes.js';
import { forPeople, print, streamed, write, type OutputFormat } from '../output.js';
import { noteMorePages, readPages, requestIdOf, withPageOptions, type PageOptions } from './paging.js';
import { registerHostMaintenanceCommands } from './host-maintenance.js';
import { hostRows, migrationLine, workloadDetail, workloadRows } from './views.js';
import { untilInterrupted, watchCommand, withWatchOptions, type WatchOptions } from './watch.js';
import { followMigration, TERMINAL_FOR_WAIT, waitForWorkload } from './workload-progress.js';
import { progressFor } from '../progress.js';

interface GlobalOptions {
  coordinator?: string;
  ca?: string;
  cert?: string;
  key?: string;
  insecure?: boolean;
  token?: string;
  output: OutputFormat;
  timeout: number;
}

function api(cmd: Command): { api: CoordinatorApi; format: OutputFormat } {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const connection = resolveConnection({ coordinator: g.coordinator, ca: g.ca, cert: g.cert, key: g.key, token: g.token, insecure: g.insecure ?? ['1', 'true'].includes(process.env.VIRTFLEET_INSECURE ?? '') }, readCliConfig());
  return { api: new CoordinatorApi({ ...connection, timeoutMs: g.timeout * 1000 }), format: g.output };
}

export async function withApi(cmd: Command, run: (api: CoordinatorApi, format: OutputFormat) => Promise<void>): Promise<void> {
  const { api: client, format } = api(cmd);
  try {
    await run(client, format);
  } finally {
    client.close();
  }
}


/**
 * How `create --wait` ends when the workload is not running: exit 5 while it
 * is still pending (it cannot be placed now, as `plan` exits 5), 4 while it
 * is still on its way (creating, or its host unreachable), 1 once it ended
 * failed (or was stopped or deleted meanwhile).
 */
export function waitOutcome(w: pb.Workload__Output, timeoutSeconds: number): { code: number; message: string } {
  const why = w.message || 'no reason given';
  if (w.state === 'pending') return { code: EXIT.conflict, message: `workload ${w.id} is still pending after ${timeoutSeconds} s: ${why}` };
  if (w.state === 'failed') return { code: EXIT.failure, message: `workload ${w.id} failed: ${why}` };
  if (TERMINAL_FOR_WAIT.has(w.state)) return { code: EXIT.failure, message: `workload ${w.id} is ${w.state}: ${why}` };
  return { code: EXIT.unavailable, message: `workload ${w.id} is still ${w.state} after ${timeoutSeconds} s: ${why}` };
}

export function registerOperatorCommands(program: Command): void {
  const host = program.command('host').description('hosts in the cluster');
  withWatchOptions(withPageOptions(host.command('ls').description('list hosts with capacity, allocation and live usage, by id'))).action(async (opts: PageOptions & WatchOptions, cmd: Command) =>
    withApi(cmd, async (client, format) => {
      const fetch = async () => {
        const { items, next } = await readPages(opts, async (page) => {
          const r = await client.hosts(page);
          return { items: r.hosts, next: r.next_page_token };
        });
        return { hosts: items, next };
      };
      if (opts.watch) {
        const title = `virtfleet host ls (every ${opts.interval}s and on host events)`;
        return watchCommand({ client, format, interval: opts.interval, title, fetch: onceNoting(fetch, (r) => r.next, (r) => r.hosts), render: hostRows, typePrefix: 'io.virtfleet.host' });
      }
      const { hosts, next } = await fetch();
      print(format, hosts, (wide) => hostRows(hosts, wide));
      noteMorePages(next);
    }),
  );

  for (const [verb, cordon, description] of [
    ['cordon', true, 'stop placing new workloads on a host; running ones stay'],
    ['uncordon', false, 'let the scheduler place workloads on a host again'],
  ] as const) {
    host
      .command(verb)
      .description(description)
      .argument('<host>', 'host id')
      .option('--request-id <id>', 'idempotency key: repeating it returns the first result (default: random)')
      .action(async (hostId: string, opts: { requestId?: string }, cmd: Command) =>
        withApi(cmd, async (client, format) => {
          const h = await client.cordon(hostId, cordon, requestIdOf(opts));
          print(format, h, () => `${h.id} ${h.cordoned ? 'cordoned' : 'schedulable'}`);
        }),
      );
  }

  host
    .command('confirm-dead')
    .description('vouch that a down host is dead (powered off or isolated), so its fence-first workloads (VMs) move at once')
    .argument('<host>', 'host id')
    .option('--request-id <id>', 'idempotency key: repeating it returns the first result (default: random)')
    .action(async (hostId: string, opts: { requestId?: string }, cmd: Command) =>
      withApi(cmd, async (client, format) => {
        const r = await client.confirmDead(hostId, requestIdOf(opts));
        print(format, r, () => `${r.host_id} confirmed dead; ${r.fence_first_workloads} fence-first workload(s) will be placed elsewhere`);
      }),
    );

  registerHostMaintenanceCommands(host, withApi);

  const workload = program.command('workload').alias('wl').description('VMs and containers');
  workload
    .command('create')
    .description('submit a workload from a spec file (YAML or JSON)')
    .requiredOption('-f, --file <file>', 'spec file')
    .option('--request-id <id>', 'idempotency key: repeating it returns the first result (default: random)')
    .option('--wait', 'wait until the workload is running or failed')
    .action(async (opts: { file: string; requestId?: string; wait?: boolean }, cmd: Command) => {
      const spec = parseWorkloadSpec(readDocument(opts.file), `${opts.file}:`);
      await withApi(cmd, async (client, format) => {
        let w = await client.submit({ request_id: requestIdOf(opts), spec });
        if (opts.wait) {
          const progress = progressFor(process.stdout, forPeople(format));
          w = await waitForWorkload(client, w, { untilMs: Date.now() + cmd.optsWithGlobals<GlobalOptions>().timeout * 1000, ...(progress ? { progress } : {}) });
        }
        print(format, w, () => workloadDetail(w));
        if (opts.wait && w.state !== 'running') {
          const { code, message } = waitOutcome(w, cmd.optsWithGlobals<GlobalOptions>().timeout);
          process.stderr.write(`error: ${message}\n`);
          process.exitCode = code;
        }
      });
    });
  withWatchOptions(
    withPageOptions(
      workload
        .command('ls')
        .description('list workloads, oldest first (deleted ones only with --state deleted)')
        .option('--host <id>', 'only workloads on this host')
        .option('--state <state>', 'only workloads in this state'),
    ),
  ).action(async (opts: PageOptions & WatchOptions & { host?: string; state?: string }, cmd: Command) =>
    withApi(cmd, async (client, format) => {
      const fetch = () =>
        readPages(opts, async (page) => {
          const r = await client.list({ host_id: opts.host ?? '', state: opts.state ?? '', ...page });
          return { items: r.workloads, next: r.next_page_token };
        });
      if (opts.watch) {
        const title = `virtfleet workload ls (every ${opts.interval}s and on workload events)`;
        return watchCommand({ client, format, interval: opts.interval, title, fetch: onceNoting(fetch, (r) => r.next, (r) => r.items), render: workloadRows, typePrefix: 'io.virtfleet.workload' });
      }
      const { items: workloads, next } = await fetch();
      print(format, workloads, (wide) => workloadRows(workloads, wide));
      noteMorePages(next);
    }),
  );
  withWatchOptions(
    workload
      .command('get')
      .description('show one workload, by id or name')
      .argument('<workload>', 'workload id or name'),
  ).action(async (ref: string, opts: WatchOptions, cmd: Command) =>
    withApi(cmd, async (client, format) => {
      if (opts.watch) {
        let id = ref;
        const title = `virtfleet workload get ${ref} (every ${opts.interval}s and on its events)`;
        return watchCommand({
          client,
          format,
          interval: opts.interval,
          title,
          fetch: () => client.get(ref),
          render: workloadDetail,
          typePrefix: 'io.virtfleet.workload',
          relevant: (e) => e.subject === id,
          onFetch: (w) => (id = w.id),
        });
      }
      const w = await client.get(ref);
      print(format, w, () => workloadDetail(w));
    }),
  );

  workload
    .command('logs')
    .description("print a workload's output: a container's stdout and stderr, a VM's serial console")
    .argument('<workload>', 'workload id or name')
    .option('-f, --follow', 'keep printing what it writes')
    .addOption(new Option('--tail <n>', 'start this many lines before the end').argParser(parseTail))
    .option('--since <time>', 'containers: only what was written since this RFC 3339 time, e.g. 2025-01-02T15:04:05Z')
    .action(async (ref: string, opts: { follow?: boolean; tail?: number; since?: string }, cmd: Command) => {
      if (opts.since !== undefined && parseRfc3339Nanos(opts.since) === undefined)
        throw new InvalidArgumentError('--since', `must be an RFC 3339 time such as 2025-01-02T15:04:05Z, not ${JSON.stringify(opts.since)}`);
      const options = { follow: opts.follow ?? false, since: opts.since ?? '', ...(opts.tail !== undefined ? { tail_lines: opts.tail } : {}) };
      await withApi(cmd, async (client) =>
        untilInterrupted((signal) => client.streamLogs({ id: ref, options }, (chunk) => writeRaw(chunk.stream === 'stderr' ? process.stderr : process.stdout, chunk.data), signal)),
      );
    });

  workload
    .command('migrate')
    .description('move a workload to another host: a VM live while it runs, a container (or --mode cold) stopped and started again there; the scheduler picks the host unless --to names one')
    .argument('<workload>', 'workload id or name')
    .option('--to <host>', 'the target host')
    .addOption(new Option('--mode <mode>', 'live (VMs, while they run), cold (stopped, state carried, started again), or auto: live for VMs, cold for containers').choices(['live', 'cold', 'auto']).default('auto'))
    .addOption(new Option('--max-downtime <ms>', 'longest pause of the guest at the switch-over').argParser((v) => parseWhole(v, '--max-downtime', 1, 60_000)))
    .addOption(new Option('--bandwidth <MiB/s>', 'transfer at most this fast').argParser((v) => parseWhole(v, '--bandwidth', 1, 102_400)))
    .option('--watch', 'print progress until the migration ends')
    .option('--cancel', 'abort the migration under way; the workload keeps running where it was')
    .option('--request-id <id>', 'idempotency key: repeating it returns the first result (default: random)')
    .action(async (ref: string, opts: { to?: string; mode: string; maxDowntime?: number; bandwidth?: number; watch?: boolean; cancel?: boolean; requestId?: string }, cmd: Command) =>
      withApi(cmd, async (client, format) => {
        let w = await client.migrate({
          id: ref,
          request_id: requestIdOf(opts),
          target_host_id: opts.to ?? '',
          mode: opts.mode,
          max_downtime_ms: opts.maxDowntime ?? 0,
          bandwidth_mib_s: opts.bandwidth ?? 0,
          cancel: opts.cancel ?? false,
        });
        const what = opts.cancel ? 'cancelling the migration of' : 'migrating';
        if (!opts.watch) return print(format, w, () => `${what} ${w.id}: ${w.migration ? migrationLine(w.migration) : w.message}`);
        const progress = progressFor(process.stdout, forPeople(format));
        w = await followMigration(client, w, {
          what,
          untilMs: Date.now() + cmd.optsWithGlobals<GlobalOptions>().timeout * 1000,
          out: (text) => forPeople(format) && write(text),
          ...(progress ? { progress } : {}),
        });
        if (!forPeople(format)) print(format, w, () => '');
        if (w.migration) {
          process.stderr.write(`error: still migrating after ${cmd.optsWithGlobals<GlobalOptions>().timeout} s; it goes on (watch again, or --cancel)\n`);
          process.exitCode = EXIT.unavailable;
        } else if (!opts.cancel && /migration .*(failed|cancelled)/.test(w.message)) {
          process.stderr.write(`error: ${w.message}\n`);
          process.exitCode = EXIT.failure;
        }
      }),
    );

  const actions = [
    ['start', 'StartWorkload', 'start a stopped workload'],
    ['stop', 'StopWorkload', 'stop a workload (graceful, then forced after the timeout)'],
    ['pause', 'PauseWorkload', 'freeze a running workload'],
    ['resume', 'ResumeWorkload', 'thaw a paused workload'],
    ['delete', 'DeleteWorkload', 'remove a workload from its host'],
  ] as const;
  for (const [verb, method, description] of actions) {
    const c = workload
      .command(verb)
      .description(description)
      .argument('<workload>', 'workload id or name')
      .option('--request-id <id>', 'idempotency key: repeating it returns the first result (default: random)');
    if (verb === 'stop') {
      c.addOption(new Option('--timeout-seconds <n>', 'graceful shutdown time before forcing').argParser(parseSeconds));
      c.option('--force', 'skip the graceful shutdown');
    }
    c.action(async (ref: string, opts: { requestId?: string; timeoutSeconds?: number; force?: boolean }, cmd: Command) =>
      withApi(cmd, async (client, format) => {
        const w = await client.act(method, { id: ref, request_id: requestIdOf(opts), timeout_seconds: opts.timeoutSeconds ?? 0, force: opts.force ?? false });
        print(format, w, () => `${w.id} ${w.state}`);
      }),
    );
  }

  program
    .command('events')
    .description('print cluster events: retained history, or new ones with --follow')
    .option('--follow', 'keep streaming new events')
    .option('--since <seq|time>', 'start at this sequence number (0: the oldest retained event) or RFC 3339 time, e.g. 2025-01-02T15:04:05Z')
    .option('--type <prefix>', 'only event types starting with this, e.g. host, workload.placed or io.virtfleet.host.cordoned')
    .action(async (opts: { follow?: boolean; since?: string; type?: string }, cmd: Command) => {
      const follow = opts.follow ?? false;
      const since = parseSince(opts.since);
      const typePrefix = parseTypePrefix(opts.type);
      await withApi(cmd, async (client, format) =>
        untilInterrupted((signal) =>
          client.streamEvents(
            { type_prefix: typePrefix, follow, from_start: since.fromStart ?? (since.seq === undefined && since.time === undefined && !follow), since_seq: since.seq ?? '0', since_time: since.time ?? '' },
            (e) => {
              write(`${streamed(format, { ...e, data: safeJson(e.data) }, () => `${e.sequence.padStart(6)}  ${e.time}  ${e.type.replace('io.virtfleet.', '').padEnd(24)} ${e.subject}  ${e.data}`)}\n`);
            },
            signal,
          ),
        ),
      );
    });
}

/** A fetch for --watch that tells about more pages once, at the first. */
function onceNoting<R, T>(fetch: () => Promise<R>, next: (r: R) => string, items: (r: R) => T): () => Promise<T> {
  let noted = false;
  return async () => {
    const r = await fetch();
    if (!noted) noteMorePages(next(r));
    noted = true;
    return items(r);
  };
}

/** Writes raw bytes to stdout or stderr; a promise when the stream is full, so the reader waits for it to drain. */
function writeRaw(to: NodeJS.WriteStream, data: Buffer): Promise<unknown> | undefined {
  if (to.write(data)) return undefined;
  return once(to, 'drain');
}

function parseTail(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > MAX_TAIL_LINES) throw new InvalidArgumentError('--tail', `must be a whole number from 0 to ${MAX_TAIL_LINES}`);
  return n;
}

/** A whole-number option within bounds. @throws InvalidArgumentError naming the option */
export function parseWhole(v: string, option: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(option, `must be a whole number from ${min} to ${max}`);
  return n;
}

function parseSeconds(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 3600) throw new InvalidArgumentError('--timeout-seconds', 'must be a whole number from 0 to 3600');
  return n;
}

/**
 * `--since`: a sequence number (events start at 1, so 0 means from the
 * oldest retained event) or an RFC 3339 time with its zone.
 */
export function parseSince(v: string | undefined): { fromStart?: boolean; seq?: string; time?: string } {
  if (v === undefined) return {};
  if (/^\d+$/.test(v)) {
    const seq = BigInt(v);
    if (seq === 0n) return { fromStart: true };
    if (seq > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidArgumentError('--since', `sequence number ${v} is too large`);
    return { seq: seq.toString() };
  }
  if (parseRfc3339Nanos(v) !== undefined) return { time: v };
  throw new InvalidArgumentError('--since', `must be a sequence number or an RFC 3339 time such as 2025-01-02T15:04:05Z, not ${JSON.stringify(v)}`);
}

/** `--type`: a full type or prefix, or the short form the table prints (`host.cordoned`); it must match some event type. */
export function parseTypePrefix(v: string | undefined): string {
  if (v === undefined || v === '') return '';
  const prefix = eventTypePrefix(v);
  const types = Object.values(EVENT_TYPES);
  if (!types.some((t) => t.startsWith(prefix)))
    throw new InvalidArgumentError('--type', `${JSON.stringify(v)} matches no event type; types are ${types.map((t) => t.replace('io.virtfleet.', '')).join(', ')}`);
  return prefix;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
