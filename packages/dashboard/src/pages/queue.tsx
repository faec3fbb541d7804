import { useState } from 'preact/hooks';
import { call, requestId } from '../api.js';
import { ActionButton, EmptyRow, ErrorBox, Section, useAllowed } from '../components.js';
import { round } from '../format.js';
import { usePoll } from '../hooks.js';
import type { QueueState } from '../types.js';

const POLICIES = ['fcfs', 'sjf', 'priority'];

/** The admission queue: its order and policy; an admin may switch the policy. */
export function Queue() {
  const queue = usePoll(() => call<QueueState>('GetQueue', { page_size: 500 }), 2000, [], (e) => e.type.startsWith('io.virtfleet.workload.'));
  const mayAdminister = useAllowed({ role: 'admin', clusterWide: true });
  const [policy, setPolicy] = useState('');
  const q = queue.data;
  return (
    <div class="page">
      <Section
        title="Queue"
        actions={
          q && mayAdminister ? (
            <>
              <select class="input" data-testid="policy" value={policy || q.policy} onChange={(e) => setPolicy(e.currentTarget.value)}>
                {POLICIES.map((p) => (
                  <option key={p} value={p}>
                    {p}
                  </option>
                ))}
              </select>
              <ActionButton
                action="policy"
                label="Switch policy"
                need={{ role: 'admin', clusterWide: true }}
                disabled={(policy || q.policy) === q.policy}
                run={async () => {
                  await call<QueueState>('SetQueuePolicy', { policy: policy || q.policy, request_id: requestId() });
                  setPolicy('');
                  queue.reload();
                }}
                done={`queue policy: ${policy}`}
              />
            </>
          ) : null
        }
      >
        <ErrorBox error={queue.error} />
        {q ? (
          <>
            <p data-testid="queue-policy">
              policy <b>{q.policy}</b>
              {q.backfill ? ' with backfill' : ' (strict)'}, aging {round(q.aging_per_minute)} per minute, <b>{q.length}</b> waiting
            </p>
            <table class="table" data-testid="queue-table">
              <thead>
                <tr>
                  <th>#</th>
                  <th>name</th>
                  <th>tenant</th>
                  <th>priority</th>
                  <th>effective</th>
                  <th>expected run</th>
                  <th>waited</th>
                  <th>why it waits</th>
                </tr>
              </thead>
              <tbody>
                {q.entries.map((e) => (
                  <tr key={e.workload_id}>
                    <td>{e.position}</td>
                    <td>
                      <a href={`#/workloads/${encodeURIComponent(e.workload_id)}`}>{e.name}</a>
                    </td>
                    <td>{e.tenant}</td>
                    <td>{e.priority}</td>
                    <td>{round(e.effective_priority, 1)}</td>
                    <td>{e.expected_runtime_seconds ? `${round(e.expected_runtime_seconds, 0)} s` : '–'}</td>
                    <td>{round(e.waited_seconds, 0)} s</td>
                    <td>{e.reason}</td>
                  </tr>
                ))}
                {q.entries.length === 0 ? (
              <EmptyRow columns={8}>nothing is waiting</EmptyRow>
            ) : null}
              </tbody>
            </table>
          </>
        ) : null}
      </Section>
    </div>
  );
}
