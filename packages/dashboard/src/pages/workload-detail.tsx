import { useEffect, useState } from 'preact/hooks';
import { ApiError, call, stream } from '../api.js';
import { Badge, EmptyRow, ErrorBox, Section } from '../components.js';
import { ago, eventSummary, round, shortType } from '../format.js';
import { useFeed, usePoll } from '../hooks.js';
import type { PlacementDecision, Workload } from '../types.js';
import { WorkloadActions } from './workloads.js';

/** How much of a log the page keeps: its end. */
const LOG_KEEP_CHARS = 64 * 1024;
/** A log read gives up after this long (a VM console can be large). */
const LOG_READ_MS = 5000;

/** A LogChunk's bytes as the gateway sends them: a JSON'd Buffer, or base64. */
function chunkText(data: unknown): string {
  let bytes: Uint8Array;
  if (typeof data === 'string') bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  else if (data && typeof data === 'object' && Array.isArray((data as { data?: unknown }).data)) bytes = Uint8Array.from((data as { data: number[] }).data);
  else return '';
  return new TextDecoder().decode(bytes);
}

async function readLogs(id: string): Promise<string> {
  let text = '';
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), LOG_READ_MS);
  try {
    await stream(
      'WorkloadLogs',
      { id },
      (m) => {
        if (m.event === 'error') {
          const e = (JSON.parse(m.data) as { error?: { code: string; message: string } }).error;
          throw new ApiError(500, e?.code ?? 'ERROR', e?.message ?? m.data);
        }
        text += chunkText((JSON.parse(m.data) as { data?: unknown }).data);
        if (text.length > 2 * LOG_KEEP_CHARS) text = text.slice(-LOG_KEEP_CHARS);
      },
      abort.signal,
    );
  } catch (err) {
    if (!abort.signal.aborted) throw err;
  } finally {
    clearTimeout(timer);
  }
  return text.slice(-LOG_KEEP_CHARS);
}

function Logs({ id, state }: { id: string; state: string }) {
  const [text, setText] = useState<string | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const load = async () => {
    setBusy(true);
    try {
      setText(await readLogs(id));
      setError(undefined);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  useEffect(() => {
    if (state !== 'pending') void load();
  }, [id]);
  return (
    <Section
      title="Logs"
      actions={
        <button type="button" class="btn" onClick={() => void load()} disabled={busy}>
          {busy ? 'Reading…' : 'Refresh'}
        </button>
      }
    >
      <ErrorBox error={error} />
      <pre class="logs" data-testid="logs">
        {text === undefined ? (busy ? 'reading…' : 'no log read yet') : text === '' ? '(empty)' : text}
      </pre>
    </Section>
  );
}

function Explain({ id, version }: { id: string; version: string }) {
  const decision = usePoll(() => call<PlacementDecision>('ExplainWorkload', { id }), 30_000, [id, version]);
  const d = decision.data;
  const plugins = [...new Set((d?.candidates ?? []).flatMap((c) => c.scores.map((s) => s.plugin)))];
  return (
    <Section title="Placement">
      {decision.error instanceof ApiError && decision.error.code === 'NOT_FOUND' ? <p class="sub">no placement decision recorded yet</p> : <ErrorBox error={decision.error} />}
      {d ? (
        <>
          <p data-testid="explain-summary">
            {d.summary} <span class="sub">({d.hosts_evaluated} of {d.hosts_total} hosts evaluated, {d.queue_policy}, waited {round(d.waited_seconds, 1)} s{d.runner_up ? `, margin ${round(d.margin, 1)} over ${d.runner_up}` : ''})</span>
          </p>
          <table class="table" data-testid="explain-table">
            <thead>
              <tr>
                <th>host</th>
                <th>verdict</th>
                <th>score</th>
                {plugins.map((p) => (
                  <th key={p}>{p}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {d.candidates.map((c) => {
                const failed = c.filters.filter((f) => f.status !== 'ok');
                return (
                  <tr key={c.host_id} class={c.host_id === d.host_id ? 'chosen' : ''}>
                    <td>
                      {c.host_id}
                      {c.host_id === d.host_id ? ' ✓' : ''}
                    </td>
                    <td>{c.feasible ? <Badge value="feasible" /> : failed.map((f) => <div key={f.plugin}>{`${f.plugin}: ${f.status}${f.reason ? ` (${f.reason})` : ''}`}</div>)}</td>
                    <td>{c.feasible ? round(c.total, 1) : '–'}</td>
                    {plugins.map((p) => {
                      const s = c.scores.find((x) => x.plugin === p);
                      return <td key={p}>{s ? `${round(s.score, 1)} ×${round(s.weight, 2)}` : '–'}</td>;
                    })}
                  </tr>
                );
              })}
            </tbody>
          </table>
        </>
      ) : null}
    </Section>
  );
}

/** One workload: state, actions, spec, placement, its events and its log. */
export function WorkloadDetail({ id }: { id: string }) {
  const workload = usePoll(() => call<Workload>('GetWorkload', { id }), 2000, [id], (e) => e.subject === id);
  const { events } = useFeed();
  const w = workload.data;
  const mine = events.filter((e) => e.subject === (w?.id ?? id)).reverse();
  return (
    <div class="page">
      <p>
        <a href="#/workloads">← workloads</a>
      </p>
      <ErrorBox error={workload.error} />
      {w ? (
        <>
          <Section title={w.spec?.name ?? w.id} actions={<WorkloadActions w={w} after={workload.reload} />}>
            <dl class="facts" data-testid="workload-facts">
              <dt>state</dt>
              <dd data-testid="workload-state">
                <Badge value={w.state} /> <span class="sub">desired {w.desired_state}</span>
              </dd>
              <dt>id</dt>
              <dd class="mono">{w.id}</dd>
              <dt>host</dt>
              <dd>{w.host_id || '–'}</dd>
              <dt>addresses</dt>
              <dd>{w.addresses.join(', ') || '–'}</dd>
              <dt>message</dt>
              <dd>{w.message || '–'}</dd>
              <dt>created</dt>
              <dd title={w.created_at}>{ago(w.created_at)}</dd>
              <dt>changed</dt>
              <dd title={w.updated_at}>{ago(w.updated_at)}</dd>
              {w.migration ? (
                <>
                  <dt>migration</dt>
                  <dd>
                    {w.migration.mode} to {w.migration.target_host_id}: {w.migration.phase}
                    {w.migration.data_total_bytes > 0 ? ` (${round((w.migration.data_processed_bytes / w.migration.data_total_bytes) * 100, 0)}%)` : ''}
                  </dd>
                </>
              ) : null}
            </dl>
          </Section>
          <div class="two">
            <Section title="Spec">
              <pre class="json" data-testid="spec-json">
                {JSON.stringify(w.spec, null, 2)}
              </pre>
            </Section>
            <Section title="Events">
              <table class="table" data-testid="workload-events">
                <tbody>
                  {mine.map((e) => (
                    <tr key={e.sequence} data-event-type={shortType(e.type)}>
                      <td class="sub" title={e.time}>
                        {ago(e.time)}
                      </td>
                      <td>{shortType(e.type)}</td>
                      <td>{eventSummary(e.data)}</td>
                    </tr>
                  ))}
                  {mine.length === 0 ? (
                    <EmptyRow>no events for this workload in the last hour</EmptyRow>
                  ) : null}
                </tbody>
              </table>
            </Section>
          </div>
          <Explain id={w.id} version={w.host_id} />
          <Logs id={w.id} state={w.state} />
        </>
      ) : workload.error ? null : (
        <p class="sub">loading…</p>
      )}
    </div>
  );
}
