import { InvalidArgumentError, WORKLOAD_ID, readTextFile, type WorkloadSpec } from '@virtfleet/shared';
import { assume } from '../scheduler/scheduler.js';
import { simSnapshot, type SimHost } from '../simulator/hosts-file.js';
import { jsonObjectLine, SIMULATED_IMAGE, specAtLine } from '../simulator/trace.js';
import { pinnedReason } from './movability.js';
import type { PlanWorkload, RebalanceInput } from './rebalance.js';

/** States a workload line may give; each books its host. */
export const OFFLINE_STATES = ['running', 'paused', 'stopped'] as const;
export type OfflineState = (typeof OFFLINE_STATES)[number];

/** A workload of a workloads file: where it is, and what it asks for. */
export interface PlacedWorkload {
  id: string;
  /** The host it is placed on now. */
  host: string;
  /** @default running */
  state: OfflineState;
  spec: WorkloadSpec;
  /** The file's line, for messages; absent for workloads built in code. */
  line?: number;
}

/**
 * Parses a workloads file: JSON Lines, one workload per line; blank lines
 * and lines starting with `#` are skipped. A line holds workload spec fields
 * under the spec's own names, validated by `parseWorkloadSpec`, with the
 * simulator's trace defaults (`name` workload-<line>, `kind` container,
 * `image` sim:latest for a container), plus `host` (required: the host it
 * is on, one of `hostIds`), `id` (default w-<line>, unique) and `state`
 * (running, paused or stopped; default running; a stopped one keeps its
 * booking and stays put).
 * @throws InvalidArgumentError with field `<source>:<line>` and a reason that
 *   names the bad field, e.g. `host: no host "h9" in hosts.yaml`.
 */
export function parseWorkloads(text: string, source: string, hostIds: ReadonlySet<string>, hostsSource = 'the hosts file'): PlacedWorkload[] {
  const out: PlacedWorkload[] = [];
  const ids = new Map<string, number>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] ?? '').trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const w = parseLine(raw, i + 1, source, hostIds, hostsSource);
    const earlier = ids.get(w.id);
    if (earlier !== undefined) throw new InvalidArgumentError(`${source}:${i + 1}`, `id: ${w.id} is already the id of line ${earlier}`);
    ids.set(w.id, i + 1);
    out.push(w);
  }
  return out;
}

/** Reads and parses a workloads file; see `parseWorkloads`. */
export function readWorkloads(path: string, hostIds: ReadonlySet<string>, hostsSource?: string): PlacedWorkload[] {
  return parseWorkloads(readTextFile(path), path, hostIds, hostsSource);
}

function parseLine(raw: string, line: number, source: string, hostIds: ReadonlySet<string>, hostsSource: string): PlacedWorkload {
  const where = `${source}:${line}`;
  const { host, id, state, ...fields } = jsonObjectLine(raw, where, 'workload');
  if (host === undefined) throw new InvalidArgumentError(where, 'host: is required (the host the workload is on)');
  if (typeof host !== 'string') throw new InvalidArgumentError(where, 'host: must be a host id');
  if (!hostIds.has(host)) throw new InvalidArgumentError(where, `host: no host ${JSON.stringify(host)} in ${hostsSource}`);
  if (id !== undefined && (typeof id !== 'string' || !WORKLOAD_ID.test(id)))
    throw new InvalidArgumentError(where, 'id: must be 1-80 characters of a-z, 0-9 and "-", starting and ending with a letter or digit');
  if (state !== undefined && !(OFFLINE_STATES as readonly unknown[]).includes(state)) throw new InvalidArgumentError(where, `state: must be one of ${OFFLINE_STATES.join(', ')}`);
  for (const field of ['vcpus', 'memory_mib']) if (fields[field] === undefined) throw new InvalidArgumentError(where, `${field}: is required`);
  const kind = fields.kind ?? 'container';
  const input = { ...fields, name: fields.name ?? `workload-${line}`, kind, ...(kind === 'container' && fields.image === undefined ? { image: SIMULATED_IMAGE } : {}) };
  const spec = specAtLine(input, where);
  return { id: (id as string | undefined) ?? `w-${line}`, host, state: (state as OfflineState | undefined) ?? 'running', spec, line };
}

/**
 * The planner's input for simulated hosts and placed workloads: each host an
 * empty simulated host (`simSnapshot`, no measured load) with its workloads
 * booked by `assume`, in file order, whether or not they fit: a fleet is
 * planned from where it is. Stopped workloads, and containers that must never
 * restart, are pinned (`pinnedReason`).
 */
export function offlineInput(hosts: readonly SimHost[], workloads: readonly PlacedWorkload[]): RebalanceInput {
  const snapshots = hosts.map(simSnapshot);
  const byId = new Map(snapshots.map((s) => [s.id, s]));
  const listed: PlanWorkload[] = [];
  for (const w of workloads) {
    const snapshot = byId.get(w.host);
    if (!snapshot) throw new InvalidArgumentError(`workload ${w.id}`, `host: no host ${JSON.stringify(w.host)}`);
    assume(snapshot, w.spec);
    const pinned = pinnedReason({ spec: w.spec, state: w.state, hostUp: true });
    listed.push({ id: w.id, name: w.spec.name, spec: w.spec, hostId: w.host, ...(pinned === undefined ? {} : { pinned }) });
  }
  return { hosts: snapshots, workloads: listed };
}
