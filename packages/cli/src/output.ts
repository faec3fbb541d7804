import { errorMessage, InvalidFieldsError } from '@virtfleet/shared';
import { stringify as yamlOf } from 'yaml';

/**
 * `-o`: table (the default) and wide (the table with more columns, where a
 * command has them) are for people; json and yaml for programs, with the same
 * snake_case keys as the API.
 */
export const OUTPUT_FORMATS = ['table', 'wide', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** table or wide: text for a person rather than data for a program. */
export function forPeople(format: OutputFormat): boolean {
  return format === 'table' || format === 'wide';
}

/** Renders rows as aligned columns under upper-case headers. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers.map((h) => h.toUpperCase())), ...rows.map(line)].join('\n');
}

/**
 * `data` as the format says, without a final newline: JSON indented by two,
 * YAML of the same JSON value (so both carry the same keys and values), or
 * `render(wide)` for table and wide.
 */
export function formatted(format: OutputFormat, data: unknown, render: (wide: boolean) => string): string {
  switch (format) {
    case 'json':
      return JSON.stringify(data ?? null, null, 2);
    case 'yaml':
      return yamlOf(JSON.parse(JSON.stringify(data ?? null)) as unknown, { lineWidth: 0 }).trimEnd();
    default:
      return render(format === 'wide');
  }
}

/** Prints `data` (json, yaml) or what `render(wide)` makes of it (table, wide), and a newline. */
export function print(format: OutputFormat, data: unknown, render: (wide: boolean) => string): void {
  write(`${formatted(format, data, render)}\n`);
}

/**
 * One record of a stream (events): JSON on one line, a YAML document
 * starting `---`, or the line `render` makes for a person.
 */
export function streamed(format: OutputFormat, data: unknown, render: () => string): string {
  if (format === 'json') return JSON.stringify(data);
  if (format === 'yaml') return `---\n${formatted('yaml', data, render)}`;
  return render();
}

/**
 * Aborts once nobody reads stdout any more (`virtfleet events | head -3`):
 * commands stop quietly, and nothing more is written.
 */
export const stdoutClosed = new AbortController();

/** Writes to stdout unless its reader has gone. */
export function write(text: string): void {
  if (!stdoutClosed.signal.aborted) process.stdout.write(text);
}

/**
 * Turns EPIPE on `stream` (the reader closed the pipe) into `stdoutClosed`
 * instead of an unhandled error; other write errors still surface.
 */
export function watchForClosedStdout(stream: NodeJS.EventEmitter = process.stdout): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE' && !stdoutClosed.signal.aborted) throw err;
    stdoutClosed.abort();
  });
}

export function age(iso: string, now = Date.now()): string {
  const ms = now - Date.parse(iso);
  if (!Number.isFinite(ms)) return '-';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

/**
 * vCPUs for a person: at most two decimals, no trailing zeros (3.62, 0.5, 8).
 * JSON keeps the exact value.
 */
export function cpus(n: number): string {
  const r = Math.round(n * 100) / 100;
  return String(r === 0 ? 0 : r);
}

export function mib(n: number): string {
  return n >= 10240 ? `${(n / 1024).toFixed(1)}Gi` : `${Math.round(n)}Mi`;
}

/** An error for a person: several bad fields one per line under their file, anything else on one line. */
export function errorText(err: unknown): string {
  if (err instanceof InvalidFieldsError && err.problems.length > 1)
    return `${err.source ? `${err.source}: ` : ''}${err.problems.length} problems:\n${err.problems.map((p) => `  ${p.field || '(document)'}: ${p.reason}`).join('\n')}`;
  return errorMessage(err);
}
