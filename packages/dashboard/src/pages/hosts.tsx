import { ApiError, call, requestId } from '../api.js';
import { ActionButton, Badge, Bar, ErrorBox, Section } from '../components.js';
import { ago } from '../format.js';
import { usePoll } from '../hooks.js';
import { useHosts } from '../hosts-data.js';
import type { Host, HostDrain } from '../types.js';
import { Drivers, HostStatus } from './overview.js';

const admin = { role: 'admin', clusterWide: true } as const;

/** A host's drain, its progress and each workload's outcome; nothing when the host never drained. */
function DrainProgress({ host }: { host: Host }) {
  const drain = usePoll(
    async () => {
      try {
        return await call<HostDrain>('GetHostDrain', { host_id: host.id });
      } catch (err) {
        if (err instanceof ApiError && err.code === 'NOT_FOUND') return undefined;
        throw err;
      }
    },
    2000,
    [host.id],
    (e) => e.subject === host.id && e.type.startsWith('io.virtfleet.host.'),
  );
  const d = drain.data;
  if (drain.error) return <ErrorBox error={drain.error} />;
  if (!d) return <span class="sub">–</span>;
  const total = d.workloads.length;
  const settled = d.workloads.filter((w) => !['waiting', 'moving'].includes(w.outcome)).length;
  return (
    <div class="drain" data-testid={`drain-${host.id}`}>
      <div>
        <Badge value={d.state} /> <span class="sub">{d.ended_at ? `ended ${ago(d.ended_at)}` : `started ${ago(d.started_at)}`}</span>
      </div>
      <Bar progress value={settled} max={Math.max(total, 1)} label={`${settled}/${total}: ${d.moved} moved, ${d.moving} moving, ${d.waiting} waiting, ${d.left} left`} />
      {d.message ? <div class="sub">{d.message}</div> : null}
      {d.workloads.length > 0 ? (
        <details>
          <summary>workloads</summary>
          <ul class="list">
            {d.workloads.map((w) => (
              <li key={w.workload_id}>
                <Badge value={w.outcome} /> {w.name}
                {w.host_id ? ` → ${w.host_id}` : ''}
                {w.reason ? <span class="sub"> {w.reason}</span> : null}
              </li>
            ))}
          </ul>
        </details>
      ) : null}
    </div>
  );
}

/** Host maintenance: cordon and uncordon, drain with its progress, undrain. The buttons are an admin's. */
export function Hosts() {
  const hosts = useHosts();
  const after = () => hosts.reload();
  return (
    <div class="page">
      <Section title="Hosts">
        <ErrorBox error={hosts.error} />
        <table class="table" data-testid="host-actions-table">
          <thead>
            <tr>
              <th>host</th>
              <th>status</th>
              <th>workloads</th>
              <th>drivers</th>
              <th>last seen</th>
              <th>drain</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {(hosts.data ?? []).map((h) => (
              <tr key={h.id} data-host={h.id}>
                <td>
                  <b>{h.id}</b>
                  <div class="sub">{h.address}</div>
                </td>
                <td>
                  <HostStatus host={h} />
                </td>
                <td>{h.workload_count}</td>
                <td>
                  <Drivers host={h} />
                </td>
                <td title={h.last_seen}>{ago(h.last_seen)}</td>
                <td>{h.cordoned ? <DrainProgress host={h} /> : <span class="sub">–</span>}</td>
                <td class="actions">
                  {h.cordoned ? (
                    <ActionButton action="uncordon" label="Uncordon" need={admin} run={() => call('CordonHost', { host_id: h.id, cordon: false, request_id: requestId() }).then(after)} done={`${h.id} uncordoned`} />
                  ) : (
                    <ActionButton action="cordon" label="Cordon" need={admin} run={() => call('CordonHost', { host_id: h.id, cordon: true, request_id: requestId() }).then(after)} done={`${h.id} cordoned`} />
                  )}
                  <ActionButton
                    action="drain"
                    label="Drain"
                    kind="danger"
                    need={admin}
                    disabled={h.status !== 'up'}
                    confirm={`Drain ${h.id}? It is cordoned and every workload on it is migrated elsewhere.`}
                    run={() => call('DrainHost', { host_id: h.id, request_id: requestId() }).then(after)}
                    done={`draining ${h.id}`}
                  />
                  {h.cordoned ? <ActionButton action="undrain" label="Undrain" need={admin} run={() => call('UndrainHost', { host_id: h.id, request_id: requestId() }).then(after)} done={`${h.id} undrained`} /> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>
    </div>
  );
}
