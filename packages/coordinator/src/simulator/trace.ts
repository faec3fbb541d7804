import { InvalidArgumentError, errorMessage, parseWorkloadSpec, readTextFile, type WorkloadSpec } from '@virtfleet/shared';

/** One job of a trace: when it arrives, how long it runs once started, and what it asks for. */
export interface Arrival {
  /** Seconds from the start of the simulation, >= 0. */
  time: number;
  /** Seconds the job runs once started, > 0. */
  runtime: number;
  spec: WorkloadSpec;
  /** The trace file's line, for messages; absent for arrivals built in code. */
  line?: number;
}

/** Image given to a container that names none; the simulator never pulls it. */
export const SIMULATED_IMAGE = 'sim:latest';
const MAX_SECONDS = 10 * 365 * 86400;

/**
 * Parses a trace: JSON Lines, one arrival per line; blank lines and lines
 * starting with `#` are skipped. Besides `time` and `runtime`, a line holds
 * workload spec fields under the spec's own names, validated by
 * `parseWorkloadSpec`. Defaults: `name` job-<line>, `kind` container,
 * `image` sim:latest for a container, `expected_runtime_seconds` the
 * runtime (a perfect estimate for SJF).
 *
 * Arrivals come back sorted by time, stably: ties keep file order.
 * @throws InvalidArgumentError with field `<source>:<line>` and a reason that
 *   names the bad field, e.g. `memory_mib: must be at least 6`.
 */
export function parseTrace(text: string, source: string): Arrival[] {
  const arrivals: Arrival[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] ?? '').trim();
    if (raw === '' || raw.startsWith('#')) continue;
    arrivals.push(parseLine(raw, i + 1, source));
  }
  return arrivals.map((a, i) => ({ a, i })).sort((x, y) => x.a.time - y.a.time || x.i - y.i).map(({ a }) => a);
}

/** Reads and parses a trace file; see `parseTrace`. */
export function readTrace(path: string): Arrival[] {
  return parseTrace(readTextFile(path), path);
}

/**
 * One line of a JSON Lines file as an object.
 * @throws InvalidArgumentError naming `where` (file:line) when it is not JSON or not an object
 */
export function jsonObjectLine(raw: string, where: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw new InvalidArgumentError(where, `malformed JSON: ${errorMessage(err)}`, { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidArgumentError(where, `must be a JSON object, one ${what} per line`);
  return value as Record<string, unknown>;
}

/**
 * A line's spec fields as a spec.
 * @throws InvalidArgumentError naming `where` (file:line) and the field
 */
export function specAtLine(input: Record<string, unknown>, where: string): WorkloadSpec {
  try {
    return parseWorkloadSpec(input, '');
  } catch (err) {
    if (!(err instanceof InvalidArgumentError)) throw err;
    throw new InvalidArgumentError(where, err.field ? `${err.field}: ${err.reason}` : err.reason, { cause: err });
  }
}

function parseLine(raw: string, line: number, source: string): Arrival {
  const where = `${source}:${line}`;
  const { time, runtime, ...fields } = jsonObjectLine(raw, where, 'arrival');
  const seconds = (v: unknown, field: string, min: 'zero' | 'positive'): number => {
    if (v === undefined) throw new InvalidArgumentError(where, `${field}: is required`);
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new InvalidArgumentError(where, `${field}: must be a number of seconds`);
    if (min === 'zero' && v < 0) throw new InvalidArgumentError(where, `${field}: must not be negative`);
    // Times resolve to the millisecond, so a run time must last at least one.
    if (min === 'positive' && v < 0.001) throw new InvalidArgumentError(where, `${field}: must be at least 0.001 (one millisecond)`);
    if (v > MAX_SECONDS) throw new InvalidArgumentError(where, `${field}: must be at most ten years`);
    return v;
  };
  const at = seconds(time, 'time', 'zero');
  const runs = seconds(runtime, 'runtime', 'positive');
  for (const field of ['vcpus', 'memory_mib']) if (fields[field] === undefined) throw new InvalidArgumentError(where, `${field}: is required`);
  const kind = fields.kind ?? 'container';
  const input = {
    ...fields,
    name: fields.name ?? `job-${line}`,
    kind,
    ...(kind === 'container' && fields.image === undefined ? { image: SIMULATED_IMAGE } : {}),
    expected_runtime_seconds: fields.expected_runtime_seconds ?? runs,
  };
  const spec = specAtLine(input, where);
  return { time: at, runtime: runs, spec, line };
}
