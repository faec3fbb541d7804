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
  process.stdout.write(`${format === 'json' ? JSON.stringify(json, null, 2) : render()}\n`);
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
