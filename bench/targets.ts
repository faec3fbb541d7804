/**
 * A performance limit one benchmark checks. `npm run bench` prints every
 * target with its verdict and exits non-zero when any is missed, so it can
 * serve as a check. Limits that depend on configuration are computed from the
 * configuration the benchmark actually ran with, never restated.
 */
export interface Target {
  /** The benchmark it belongs to, as run.ts names it. */
  benchmark: string;
  /** What is measured, e.g. "placements/s at 5,000 hosts". */
  what: string;
  measured: number;
  /** `at most`: measured ≤ limit; `at least`: measured ≥ limit. */
  bound: 'at most' | 'at least';
  limit: number;
  unit: string;
  /** Where the limit comes from, e.g. "1.5 × ha.leaseTtlMs 3000 ms". */
  basis: string;
}

export const isMet = (t: Target): boolean => (t.bound === 'at most' ? t.measured <= t.limit : t.measured >= t.limit);

const number = (n: number) => (Number.isInteger(n) ? n.toLocaleString('en-US') : n.toLocaleString('en-US', { maximumFractionDigits: 2 }));

/** One line: `target <what> <bound> <limit> (<basis>): met|MISSED, measured <value>`. */
export function formatTarget(t: Target): string {
  const sign = t.bound === 'at most' ? '≤' : '≥';
  return `target ${t.what} ${sign} ${number(t.limit)} ${t.unit} (${t.basis}): ${isMet(t) ? 'met' : 'MISSED'}, measured ${number(t.measured)} ${t.unit}`;
}

/** A config that only asks for the defaults: plaintext said out loud, since mutual TLS is otherwise required. */
export const DEFAULTS_ONLY = { grpc: { insecure: true }, nats: { anonymous: true } } as const;
