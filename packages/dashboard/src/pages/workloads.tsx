import { useState } from 'preact/hooks';
import { parse as parseYaml } from 'yaml';
import { call, requestId } from '../api.js';
import { ActionButton, Badge, describeError, EmptyRow, ErrorBox, Section, toast, useAllowed } from '../components.js';
import { ago, mib, round } from '../format.js';
import { usePoll } from '../hooks.js';
import type { Workload } from '../types.js';

const STATES = ['', 'pending', 'creating', 'running', 'paused', 'stopped', 'failed', 'unknown', 'deleted'];

const EXAMPLE = `# A workload spec, YAML or JSON (as \`virtfleet workload create -f\` takes)
name: web
kind: container
image: nginx:alpine
vcpus: 0.5
memory_mib: 128
`;

export const isWorkloadEvent = (type: string): boolean => type.startsWith('io.virtfleet.workload.');

function CreateForm({ onDone }: { onDone: () => void }) {
  const [text, setText] = useState(EXAMPLE);
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    let spec: unknown;
    try {
      spec = parseYaml(text);
    } catch (err) {
      setError(`not YAML or JSON: ${(err as Error).message}`);
      return;
    }
    if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
      setError('the spec must be a mapping (name, kind, image, vcpus, memory_mib, ...)');
      return;
    }
    setBusy(true);
    try {
      const w = await call<Workload>('SubmitWorkload', { request_id: requestId(), spec });
      toast(`submitted ${w.spec?.name ?? w.id}`);
      setError(undefined);
      onDone();
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="create" onSubmit={(e) => void submit(e)}>
      <textarea name="spec" data-testid="spec" rows={10} spellcheck={false} value={text} onInput={(e) => setText(e.currentTarget.value)} />
      {error ? <div class="error">{error}</div> : null}
      <div class="row">
        <button type="submit" class="btn btn-primary" data-testid="submit-spec" disabled={busy}>
          {busy ? 'Submitting…' : 'Submit'}
        </button>
        <button type="button" class="btn" onClick={onDone}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** Every workload, filterable, with its state; a create form for callers who may submit. */
export function Workloads() {
  const [filter, setFilter] = useState('');
  const [state, setState] = useState('');
  const [creating, setCreating] = useState(false);
  const mayCreate = useAllowed({ role: 'operator' });
  const workloads = usePoll(() => call<{ workloads: Workload[] }>('ListWorkloads', { page_size: 5000, state }), 2000, [state], (e) => isWorkloadEvent(e.type));
  const words = filter.toLowerCase().split(/\s+/).filter(Boolean);
  const shown = (workloads.data?.workloads ?? [])
    .filter((w) => state !== '' || w.state !== 'deleted')
    .filter((w) => {
      const haystack = `${w.id} ${w.spec?.name ?? ''} ${w.state} ${w.host_id} ${w.spec?.image ?? ''} ${w.spec?.kind ?? ''} ${w.spec?.tenant ?? ''}`.toLowerCase();
      return words.every((word) => haystack.includes(word));
    });
  return (
    <div class="page">
      <Section
        title="Workloads"
        actions={
          <>
            <input class="input" type="search" placeholder="filter: name, state, host, image…" data-testid="filter" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
            <select class="input" data-testid="state-filter" value={state} onChange={(e) => setState(e.currentTarget.value)}>
              {STATES.map((s) => (
                <option key={s} value={s}>
                  {s === '' ? 'any state but deleted' : s}
                </option>
              ))}
            </select>
            {mayCreate ? (
              <button type="button" class="btn btn-primary" data-action="create" onClick={() => setCreating(!creating)}>
                New workload
              </button>
            ) : null}
          </>
        }
      >
        {creating && mayCreate ? <CreateForm onDone={() => (setCreating(false), workloads.reload())} /> : null}
        <ErrorBox error={workloads.error} />
        <table class="table" data-testid="workloads-table">
          <thead>
            <tr>
              <th>name</th>
              <th>state</th>
              <th>kind</th>
              <th>image</th>
              <th>host</th>
              <th>vCPUs</th>
              <th>memory</th>
              <th>changed</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((w) => (
              <tr key={w.id} data-workload={w.spec?.name ?? w.id}>
                <td>
                  <a href={`#/workloads/${encodeURIComponent(w.id)}`}>{w.spec?.name ?? w.id}</a>
                  {w.spec?.tenant && w.spec.tenant !== 'default' ? <span class="sub"> {w.spec.tenant}</span> : null}
                </td>
                <td>
                  <Badge value={w.state} title={w.message} />
                  {w.migration ? <Badge value="migrating" title={`${w.migration.mode} to ${w.migration.target_host_id}: ${w.migration.phase}`} /> : null}
                </td>
                <td>{w.spec?.kind}</td>
                <td class="mono">{w.spec?.image}</td>
                <td>{w.host_id || '–'}</td>
                <td>{round(w.spec?.vcpus)}</td>
                <td>{mib(w.spec?.memory_mib)}</td>
                <td title={w.updated_at}>{ago(w.updated_at)}</td>
              </tr>
            ))}
            {shown.length === 0 ? (
              <EmptyRow columns={8}>{workloads.data ? 'no workloads match' : 'loading…'}</EmptyRow>
            ) : null}
          </tbody>
        </table>
      </Section>
    </div>
  );
}

/** The lifecycle buttons of one workload, each shown only to a role that may use it and enabled where its state allows. */
export function WorkloadActions({ w, after }: { w: Workload; after: () => void }) {
  const act = (method: string, extra: object = {}) => async () => {
    await call<Workload>(method, { id: w.id, request_id: requestId(), ...extra });
    after();
  };
  const s = w.state;
  const operator = { role: 'operator' } as const;
  const name = w.spec?.name ?? w.id;
  return (
    <div class="actions" data-testid="workload-actions">
      <ActionButton action="start" label="Start" need={operator} run={act('StartWorkload')} disabled={!['stopped', 'failed'].includes(s)} done={`start ${name}: sent`} />
      <ActionButton action="stop" label="Stop" need={operator} run={act('StopWorkload')} disabled={!['running', 'paused', 'creating'].includes(s)} done={`stop ${name}: sent`} />
      <ActionButton action="pause" label="Pause" need={operator} run={act('PauseWorkload')} disabled={s !== 'running'} done={`pause ${name}: sent`} />
      <ActionButton action="resume" label="Resume" need={operator} run={act('ResumeWorkload')} disabled={s !== 'paused'} done={`resume ${name}: sent`} />
      <ActionButton
        action="migrate"
        label="Migrate"
        need={operator}
        disabled={!['running', 'paused', 'stopped'].includes(s) || w.migration !== null}
        run={async () => {
          const target = prompt(`Migrate ${name} to which host? Leave empty to let the scheduler pick.`, '');
          if (target === null) return;
          await act('MigrateWorkload', { target_host_id: target.trim() })();
        }}
        done={`migrate ${name}: started`}
      />
      <ActionButton action="backup" label="Backup" need={{ role: 'operator', clusterWide: true }} run={act('CreateBackup')} disabled={!['running', 'paused', 'stopped'].includes(s)} done={`backup of ${name}: created`} />
      <ActionButton action="delete" label="Delete" kind="danger" need={operator} run={act('DeleteWorkload')} disabled={s === 'deleted'} confirm={`Delete ${name}? Its copy on its host is removed.`} done={`delete ${name}: sent`} />
    </div>
  );
}
