/** How many backups each rule keeps; 0 turns a rule off. A backup kept by any rule stays. */
export interface RetentionRules {
  /** The N newest backups. */
  keep_last: number;
  /** The newest backup of each of the last N UTC days that have backups. */
  keep_daily: number;
  /** The newest backup of each of the last N ISO weeks (UTC) that have backups. */
  keep_weekly: number;
}

/** What retention needs of a backup. */
export interface DatedBackup {
  id: string;
  /** RFC 3339. */
  created_at: string;
}

/** Both lists newest first; together they hold every backup given, once. */
export interface RetentionPlan<T> {
  keep: T[];
  prune: T[];
}

/** `2026-12-03`: the UTC day. */
const dayKey = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/** `2026-W49`: the ISO 8601 week (weeks start on Monday; week 1 holds the year's first Thursday), in UTC. */
export function isoWeekKey(ms: number): string {
  const d = new Date(ms);
  const weekday = (d.getUTCDay() + 6) % 7; // Monday 0 .. Sunday 6
  // The Thursday of this week decides the ISO year.
  const thursday = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() - weekday + 3);
  const year = new Date(thursday).getUTCFullYear();
  const week = Math.floor((thursday - Date.UTC(year, 0, 1)) / (7 * 86_400_000)) + 1;
  return `${year}-W${String(week).padStart(2, '0')}`;
}

/**
 * Which backups of one workload to keep and which to prune, as Proxmox's
 * keep-last/keep-daily/keep-weekly do, each rule on its own: keep_last keeps
 * the N newest; keep_daily the newest of each of the N newest UTC days that
 * have a backup; keep_weekly likewise per ISO week. A backup whose time cannot
 * be read is kept: nothing is pruned that cannot be placed. Pure; the order
 * given does not matter.
 */
export function planRetention<T extends DatedBackup>(backups: readonly T[], rules: RetentionRules): RetentionPlan<T> {
  const dated = backups.map((b) => ({ b, ms: Date.parse(b.created_at) }));
  // Newest first; the id (which sorts by time) breaks ties so the answer never depends on the input order.
  dated.sort((x, y) => (Number.isNaN(x.ms) ? 1 : 0) - (Number.isNaN(y.ms) ? 1 : 0) || y.ms - x.ms || (x.b.id < y.b.id ? 1 : x.b.id > y.b.id ? -1 : 0));
  const kept = new Set<T>();
  const valid = dated.filter((d) => !Number.isNaN(d.ms));
  for (const d of dated) if (Number.isNaN(d.ms)) kept.add(d.b);
  for (const d of valid.slice(0, rules.keep_last)) kept.add(d.b);
  for (const [count, period] of [
    [rules.keep_daily, dayKey],
    [rules.keep_weekly, isoWeekKey],
  ] as const) {
    const seen = new Set<string>();
    for (const d of valid) {
      if (seen.size >= count) break;
      const key = period(d.ms);
      if (seen.has(key)) continue;
      seen.add(key);
      kept.add(d.b);
    }
  }
  const plan: RetentionPlan<T> = { keep: [], prune: [] };
  for (const d of dated) (kept.has(d.b) ? plan.keep : plan.prune).push(d.b);
  return plan;
}
