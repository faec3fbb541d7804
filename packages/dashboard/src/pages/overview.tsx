import { call } from '../api.js';
import { Badge, Bar, EmptyRow, ErrorBox, Section, UsageChart } from '../components.js';
import { mib, round } from '../format.js';
import { usePoll } from '../hooks.js';
import { usageOf, usageVersion, useHosts } from '../hosts-data.js';
import type { Host, Workload } from '../types.js';

export function HostStatus({ host }: { host: Host }) {
  return (
    <>
      <Badge value={host.status} />
      {host.cordoned ? <Badge value="cordoned" /> : null}
    </>
  );
}

export function Drivers({ host }: { host: Host }) {
  return (
    <span class="drivers">
      {host.drivers.map((d) => (
        <span key={d.name} class={`driver ${d.healthy ? 'driver-ok' : 'driver-bad'}`} data-driver={d.name} title={d.healthy ? `${d.name} ${d.version}: healthy` : `${d.name}: ${d.detail || 'unhealthy'}`}>
          {d.name}
          {d.healthy ? '' : ' (down)'}
          {d.queue_depth > 0 || d.in_flight > 0 ? ` [${d.in_flight}/${d.concurrency || '?'} busy, ${d.queue_depth} queued]` : ''}
        </span>
      ))}
    </span>
  );
}

/** The cluster at a glance: hosts with status, capacity and allocation, driver health, live CPU and memory. */
export function Overview() {
  const hosts = useHosts();
  const workloads = usePoll(() => call<{ workloads: Workload[] }>('ListWorkloads', { page_size: 5000 }), 5000, [], (e) => e.type.startsWith('io.virtfleet.workload.'));
  const list = hosts.data ?? [];
  const up = list.filter((h) => h.status === 'up').length;
  const sum = (pick: (h: Host) => number) => list.reduce((a, h) => a + pick(h), 0);
  const states = new Map<string, number>();
  for (const w of workloads.data?.workloads ?? []) if (w.state !== 'deleted') states.set(w.state, (states.get(w.state) ?? 0) + 1);
  const unhealthy = list.flatMap((h) => h.drivers.filter((d) => !d.healthy).map((d) => ({ host: h.id, driver: d })));
  return (
    <div class="page">
      <div class="stats">
        <div class="stat">
          <div class="stat-value" data-testid="hosts-up">
            {up}/{list.length}
          </div>
          <div class="stat-label">hosts up</div>
        </div>
        <div class="stat">
          <div class="stat-value">
            {round(sum((h) => h.allocated?.vcpus ?? 0))}/{round(sum((h) => h.allocatable?.vcpus ?? 0))}
          </div>
          <div class="stat-label">vCPUs allocated</div>
        </div>
        <div class="stat">
          <div class="stat-value">
            {mib(sum((h) => h.allocated?.memory_mib ?? 0))}/{mib(sum((h) => h.allocatable?.memory_mib ?? 0))}
          </div>
          <div class="stat-label">memory allocated</div>
        </div>
        <div class="stat">
          <div class="stat-value">{[...states.values()].reduce((a, b) => a + b, 0)}</div>
          <div class="stat-label">{[...states.entries()].map(([s, n]) => `${n} ${s}`).join(', ') || 'workloads'}</div>
        </div>
      </div>
      <Section title="Hosts">
        <ErrorBox error={hosts.error} />
        <table class="table" data-testid="hosts-table">
          <thead>
            <tr>
              <th>host</th>
              <th>status</th>
              <th>capacity</th>
              <th>vCPUs allocated</th>
              <th>memory allocated</th>
              <th>workloads</th>
              <th>drivers</th>
            </tr>
          </thead>
          <tbody>
            {list.map((h) => (
              <tr key={h.id} data-host={h.id}>
                <td>
                  <b>{h.id}</b>
                  <div class="sub">{h.hostname}</div>
                </td>
                <td>
                  <HostStatus host={h} />
                </td>
                <td>
                  {round(h.capacity?.vcpus)} vCPU, {mib(h.capacity?.memory_mib)}
                </td>
                <td>
                  <Bar value={h.allocated?.vcpus ?? 0} max={h.allocatable?.vcpus ?? 0} label={`${round(h.allocated?.vcpus)}/${round(h.allocatable?.vcpus)}`} />
                </td>
                <td>
                  <Bar value={h.allocated?.memory_mib ?? 0} max={h.allocatable?.memory_mib ?? 0} label={`${mib(h.allocated?.memory_mib)}/${mib(h.allocatable?.memory_mib)}`} />
                </td>
                <td>{h.workload_count}</td>
                <td>
                  <Drivers host={h} />
                </td>
              </tr>
            ))}
            {list.length === 0 && !hosts.error ? (
              <EmptyRow columns={7}>{hosts.data ? 'no hosts have reported' : 'loading…'}</EmptyRow>
            ) : null}
          </tbody>
        </table>
      </Section>
      <Section title="Drivers">
        {unhealthy.length === 0 ? (
          <p class="ok-line" data-testid="drivers-health">
            every driver on every host answers ({sum((h) => h.drivers.length)} drivers)
          </p>
        ) : (
          <ul class="list" data-testid="drivers-health">
            {unhealthy.map((u) => (
              <li key={`${u.host}/${u.driver.name}`}>
                <Badge value="unhealthy" /> <b>{u.host}</b> {u.driver.name}: {u.driver.detail || 'no answer'}
              </li>
            ))}
          </ul>
        )}
      </Section>
      <div class="charts">
        {list.map((h) => (
          <Section key={h.id} title={`${h.id}: CPU and memory`}>
            <UsageChart series={usageOf(h.id)} version={usageVersion()} />
          </Section>
        ))}
      </div>
    </div>
  );
}
