import type { SimulationResult } from './simulator.js';

export interface ReportTable {
  headers: string[];
  rows: string[][];
}

/** Renders headers and rows as aligned columns; the CLI passes its own `table`. */
export type TableRenderer = (headers: string[], rows: string[][]) => string;

const seconds = (s: number) => `${s.toFixed(1)}s`;
const percent = (f: number) => `${(f * 100).toFixed(1)}%`;

/** One row per metric, one column per simulation run (normally one per queue policy). */
export function comparisonTable(results: readonly SimulationResult[]): ReportTable {
  const row = (label: string, cell: (r: SimulationResult) => string) => [label, ...results.map(cell)];
  return {
    headers: ['metric', ...results.map(columnName)],
    rows: [
      row('avg wait', (r) => seconds(r.waiting.mean)),
      row('p50 wait', (r) => seconds(r.waiting.p50)),
      row('p95 wait', (r) => seconds(r.waiting.p95)),
      row('avg response', (r) => seconds(r.response.mean)),
      row('p50 response', (r) => seconds(r.response.p50)),
      row('p95 response', (r) => seconds(r.response.p95)),
      row('mean cpu util', (r) => percent(r.utilisation.cpu)),
      row('mean memory util', (r) => percent(r.utilisation.memory)),
      row('fragmentation', (r) => r.fragmentation.mean.toFixed(3)),
      row('placed', (r) => `${r.placed}/${r.jobs}`),
      row('rejected', (r) => String(r.rejected)),
      ...(results.some((r) => r.unplaced > 0) ? [row('unplaced', (r) => String(r.unplaced))] : []),
      row('makespan', (r) => seconds(r.makespan)),
    ],
  };
}

/** Utilisation over time: one row per run, bucket means in whole percent, oldest first. */
export function utilisationTable(results: readonly SimulationResult[]): ReportTable {
  return {
    headers: ['policy', 'bucket', 'cpu % per bucket', 'memory % per bucket'],
    rows: results.map((r) => {
      const width = r.utilisation.series[0] ? r.utilisation.series[0].end - r.utilisation.series[0].start : 0;
      const series = (key: 'cpu' | 'memory') => r.utilisation.series.map((b) => String(Math.round(b[key] * 100))).join(' ');
      return [columnName(r), seconds(width), series('cpu'), series('memory')];
    }),
  };
}

/**
 * The whole report: settings, the side-by-side table, utilisation over
 * time, then each job that was rejected or left waiting, with the runs it
 * happened in when not all.
 */
export function formatReport(results: readonly SimulationResult[], table: TableRenderer): string {
  const first = results[0];
  if (!first) return 'no simulation runs';
  const settings = [
    `${first.jobs} jobs on ${first.hosts} hosts`,
    `placement ${first.placement}`,
    first.backfill ? 'backfill' : 'strict order',
    results.some((r) => r.queue_policy === 'priority') ? `aging ${first.aging_per_minute}/min` : undefined,
  ].filter((s) => s !== undefined);
  const out = [settings.join(', '), '', rendered(table, comparisonTable(results)), '', `utilisation over time (${first.utilisation.series.length} buckets of the makespan)`, rendered(table, utilisationTable(results))];

  const notes = new Map<string, string[]>();
  for (const r of results) {
    for (const j of r.job_results) {
      if (j.outcome === 'completed') continue;
      const key = `${j.outcome} ${j.name}${j.line === undefined ? '' : ` (line ${j.line})`}: ${j.reason ?? ''}`;
      notes.set(key, [...(notes.get(key) ?? []), columnName(r)]);
    }
  }
  if (notes.size > 0) {
    out.push('');
    for (const [note, runs] of notes) out.push(runs.length === results.length ? note : `${note} [${runs.join(', ')}]`);
  }
  return out.join('\n');
}

function columnName(r: SimulationResult): string {
  return r.queue_policy;
}

function rendered(table: TableRenderer, t: ReportTable): string {
  return table(t.headers, t.rows);
}
