import type { pb } from '@virtfleet/shared';
import { bar, elapsed, spinner, type ProgressLine } from '../progress.js';
import { migrationLine } from './views.js';

/** What following a workload needs of the coordinator. */
export interface WorkloadReader {
  get(id: string): Promise<pb.Workload__Output>;
}

/** States `create --wait` stops at; any other is still on its way to running. */
export const TERMINAL_FOR_WAIT = new Set(['running', 'failed', 'stopped', 'deleted']);

/** How far a new workload is on its way to running: placed is half way. */
const CREATE_STEPS: Record<string, number> = { pending: 0, creating: 0.5, running: 1 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `create --wait`'s status line: how far, the state, where, for how long, and why it waits. */
export function createStatus(w: pb.Workload__Output, startMs: number, frame: number, now = Date.now()): string {
  const where = w.host_id ? ` on ${w.host_id}` : '';
  const why = w.state === 'pending' && w.message ? `: ${w.message}` : '';
  return `${bar(CREATE_STEPS[w.state] ?? 0)} ${spinner(frame)} ${w.spec?.name ?? w.id} ${w.state}${where}, ${elapsed(startMs, now)}${why}`;
}

/**
 * `workload create --wait`: reads the workload until it runs or has ended,
 * or until `untilMs`. With `progress` (a terminal) a status line shows how
 * far it is, and is removed at the end; without, nothing is printed.
 */
export async function waitForWorkload(api: WorkloadReader, first: pb.Workload__Output, options: { untilMs: number; pollMs?: number; progress?: ProgressLine }): Promise<pb.Workload__Output> {
  const start = Date.now();
  let w = first;
  let frame = 0;
  options.progress?.draw(createStatus(w, start, frame++));
  while (!TERMINAL_FOR_WAIT.has(w.state) && Date.now() < options.untilMs) {
    await sleep(options.pollMs ?? 250);
    w = await api.get(w.id);
    options.progress?.draw(createStatus(w, start, frame++));
  }
  options.progress?.clear();
  return w;
}

/** A migration's status line: a bar of the bytes moved when the size is known, and its line. */
export function migrationStatus(m: pb.WorkloadMigration__Output): string {
  return `${bar(m.data_total_bytes > 0 ? m.data_processed_bytes / m.data_total_bytes : 0)} ${migrationLine(m)}`;
}

/**
 * `workload migrate --watch` for a person: the first line, then, into a
 * pipe, a line each time what it says changes (as it always has), or on a
 * terminal a progress bar redrawn in place; then the line it ended with.
 * Returns the workload as it was last read.
 */
export async function followMigration(
  api: WorkloadReader,
  first: pb.Workload__Output,
  options: { what: string; untilMs: number; out: (text: string) => void; pollMs?: number; progress?: ProgressLine },
): Promise<pb.Workload__Output> {
  const { out, progress } = options;
  let w = first;
  out(`${options.what} ${w.id}: ${w.migration ? migrationLine(w.migration) : w.message}\n`);
  let last = '';
  while (w.migration && Date.now() < options.untilMs) {
    if (progress) progress.draw(migrationStatus(w.migration));
    await sleep(options.pollMs ?? 1000);
    w = await api.get(w.id);
    const line = w.migration ? migrationLine(w.migration) : `${w.state} on ${w.host_id}: ${w.message}`;
    if (!progress && line !== last) out(`${line}\n`);
    if (progress && !w.migration) {
      progress.clear();
      out(`${line}\n`);
    }
    last = line;
  }
  // Still migrating at the deadline: keep the bar where it got to.
  progress?.finish();
  return w;
}
