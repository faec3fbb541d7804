import { errorMessage, InvalidFieldsError } from '@virtfleet/shared';

export type OutputFormat = 'table' | 'json';

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

export function print(format: OutputFormat, json: unknown, render: () => string): void {
  write(`${format === 'json' ? JSON.stringify(json, null, 2) : render()}\n`);
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

export function mib(n: number): string {
  return n >= 10240 ? `${(n / 1024).toFixed(1)}Gi` : `${Math.round(n)}Mi`;
}

/** An error for a person: several bad fields one per line under their file, anything else on one line. */
export function errorText(err: unknown): string {
  if (err instanceof InvalidFieldsError && err.problems.length > 1)
    return `${err.source ? `${err.source}: ` : ''}${err.problems.length} problems:\n${err.problems.map((p) => `  ${p.field || '(document)'}: ${p.reason}`).join('\n')}`;
  return errorMessage(err);
}
