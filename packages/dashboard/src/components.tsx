import type { ComponentChildren } from 'preact';
import { createContext } from 'preact';
import { useContext, useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { ApiError } from './api.js';
import { allowed, type Need } from './roles.js';
import type { Principal } from './types.js';

export const PrincipalContext = createContext<Principal | undefined>(undefined);

/** True when the signed-in caller may do what `need` takes. */
export function useAllowed(need: Need): boolean {
  return allowed(useContext(PrincipalContext), need);
}

type Toast = { id: number; kind: 'ok' | 'error'; text: string };
let toastListener: ((t: Toast) => void) | undefined;
let toastId = 0;
/** A short message at the bottom of the screen: what an action did, or why it failed. */
export function toast(text: string, kind: Toast['kind'] = 'ok'): void {
  toastListener?.({ id: ++toastId, kind, text });
}

export function describeError(err: unknown): string {
  if (err instanceof ApiError) return `${err.code}: ${err.message}${err.field ? ` (${err.field})` : ''}`;
  return err instanceof Error ? err.message : String(err);
}

export function Toasts() {
  const [toasts, setToasts] = useState<Toast[]>([]);
  useEffect(() => {
    toastListener = (t) => {
      setToasts((all) => [...all.slice(-3), t]);
      setTimeout(() => setToasts((all) => all.filter((x) => x.id !== t.id)), t.kind === 'error' ? 8000 : 4000);
    };
    return () => {
      toastListener = undefined;
    };
  }, []);
  return (
    <div class="toasts" role="status">
      {toasts.map((t) => (
        <div key={t.id} class={`toast toast-${t.kind}`}>
          {t.text}
        </div>
      ))}
    </div>
  );
}

/**
 * A button for a call that takes a role: not shown at all to a caller whose
 * role (or tenant) cannot use it. `data-action` names it.
 */
export function ActionButton(props: { action: string; label: string; need: Need; run: () => Promise<unknown>; done?: string; disabled?: boolean; confirm?: string; kind?: 'danger' | 'primary' }) {
  const [busy, setBusy] = useState(false);
  const may = useAllowed(props.need);
  if (!may) return null;
  const click = async () => {
    if (props.confirm && !confirm(props.confirm)) return;
    setBusy(true);
    try {
      await props.run();
      toast(props.done ?? `${props.label}: done`);
    } catch (err) {
      toast(`${props.label}: ${describeError(err)}`, 'error');
    } finally {
      setBusy(false);
    }
  };
  return (
    <button type="button" class={`btn ${props.kind ? `btn-${props.kind}` : ''}`} data-action={props.action} disabled={props.disabled || busy} onClick={() => void click()}>
      {busy ? `${props.label}…` : props.label}
    </button>
  );
}

const BADGE_KIND: Record<string, string> = {
  running: 'ok',
  up: 'ok',
  healthy: 'ok',
  drained: 'ok',
  moved: 'ok',
  paused: 'warn',
  pending: 'info',
  creating: 'info',
  deleting: 'info',
  draining: 'info',
  moving: 'info',
  waiting: 'info',
  recovering: 'warn',
  cordoned: 'warn',
  stopped: 'muted',
  deleted: 'muted',
  gone: 'muted',
  failed: 'bad',
  down: 'bad',
  unknown: 'bad',
  unhealthy: 'bad',
  live: 'ok',
  feasible: 'ok',
  reconnecting: 'warn',
  migrating: 'info',
  incomplete: 'warn',
  deadline_exceeded: 'warn',
  cancelled: 'muted',
  left: 'warn',
  no_host: 'warn',
  refused: 'warn',
  never: 'muted',
  not_tried: 'muted',
};

export function Badge({ value, title }: { value: string; title?: string }) {
  return (
    <span class={`badge badge-${BADGE_KIND[value] ?? 'muted'}`} data-state={value} title={title}>
      {value || '–'}
    </span>
  );
}

/** The one row of a table with nothing to show, across all its columns. */
export function EmptyRow({ columns, children }: { columns?: number; children: ComponentChildren }) {
  return (
    <tr>
      <td colSpan={columns} class="empty">
        {children}
      </td>
    </tr>
  );
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  return <div class="error">{describeError(error)}</div>;
}

export function Section({ title, children, actions }: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <section class="card">
      <header class="card-head">
        <h2>{title}</h2>
        {actions ? <div class="card-actions">{actions}</div> : null}
      </header>
      {children}
    </section>
  );
}

/** A horizontal bar of value/max; past 90 % it turns red unless it is progress (`progress`), where full is good. */
export function Bar({ value, max, label, progress }: { value: number; max: number; label?: string; progress?: boolean }) {
  const pct = max > 0 ? Math.min(100, (value / max) * 100) : 0;
  return (
    <div class="bar" title={label}>
      <div class={`bar-fill ${pct > 90 && !progress ? 'bar-hot' : ''}`} style={{ width: `${pct}%` }} />
      {label ? <span class="bar-label">{label}</span> : null}
    </div>
  );
}

/** A host's CPU and memory utilisation over time, in percent. */
export interface UsageSeries {
  /** Unix seconds. */
  t: number[];
  cpu: (number | null)[];
  mem: (number | null)[];
}

const CHART_HEIGHT = 150;

/** A live line chart of a host's CPU and memory (uPlot), redrawn as `series` grows (`version` changes). */
export function UsageChart({ series, version }: { series: UsageSeries; version: number }) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | undefined>(undefined);
  const data = (): uPlot.AlignedData => [series.t.slice(), series.cpu.slice(), series.mem.slice()];
  useEffect(() => {
    const node = box.current;
    if (!node) return;
    const width = () => Math.max(240, node.clientWidth);
    const u = new uPlot(
      {
        width: width(),
        height: CHART_HEIGHT,
        legend: { show: true },
        cursor: { drag: { x: false, y: false } },
        // At least the last minute across, so a few first points do not stretch over the whole width.
        scales: { x: { time: true, range: (_u, min, max) => [Math.min(min, max - 60), max] }, y: { range: [0, 100] } },
        axes: [{ size: 30 }, { size: 50, values: (_u, ticks) => ticks.map((v) => `${v}%`) }],
        series: [{}, { label: 'CPU', stroke: '#2563eb', width: 2, points: { show: false }, value: (_u, v) => (v === null ? '–' : `${v.toFixed(1)}%`) }, { label: 'Memory', stroke: '#16a34a', width: 2, points: { show: false }, value: (_u, v) => (v === null ? '–' : `${v.toFixed(1)}%`) }],
      },
      data(),
      node,
    );
    chart.current = u;
    const resized = new ResizeObserver(() => u.setSize({ width: width(), height: CHART_HEIGHT }));
    resized.observe(node);
    return () => {
      resized.disconnect();
      u.destroy();
      chart.current = undefined;
    };
  }, []);
  useEffect(() => {
    chart.current?.setData(data());
  }, [version]);
  const points = series.cpu.filter((v) => v !== null).length;
  return <div class="chart" ref={box} data-points={points} />;
}
