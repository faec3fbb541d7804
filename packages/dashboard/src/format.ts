/** Display helpers, shared by the pages. */

export const round = (n: number | undefined, digits = 2): string => (n === undefined || !Number.isFinite(n) ? '–' : String(Math.round(n * 10 ** digits) / 10 ** digits));

export const mib = (n: number | undefined): string => (n === undefined ? '–' : n >= 1024 ? `${round(n / 1024, 1)} GiB` : `${n} MiB`);

export const percent = (part: number | undefined, whole: number | undefined): number => (part === undefined || !whole ? 0 : Math.min(100, Math.max(0, (part / whole) * 100)));

/** `2m ago` for an RFC 3339 time. */
export function ago(time: string | undefined, now = Date.now()): string {
  if (!time) return '–';
  const seconds = Math.round((now - Date.parse(time)) / 1000);
  if (!Number.isFinite(seconds)) return time;
  if (seconds < 60) return `${Math.max(0, seconds)}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86_400)}d ago`;
}

/** `workload.state_changed` for `io.virtfleet.workload.state_changed`. */
export const shortType = (type: string): string => type.replace(/^io\.virtfleet\./, '');

/** A one-line summary of an event's JSON data. */
export function eventSummary(data: string): string {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return data;
  }
  if (typeof value !== 'object' || value === null) return String(value);
  const v = value as Record<string, unknown>;
  if (typeof v.from === 'string' && typeof v.to === 'string') return `${typeof v.name === 'string' ? `${v.name}: ` : ''}${v.from} → ${v.to}${typeof v.message === 'string' && v.message ? ` (${v.message})` : ''}`;
  return Object.entries(v)
    .filter(([, x]) => typeof x !== 'object' || x === null)
    .map(([k, x]) => `${k}=${String(x)}`)
    .join(' ')
    .slice(0, 240);
}
