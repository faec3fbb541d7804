import type { pb } from '@virtfleet/shared';
import { age, cpus, mib, table } from '../output.js';

/** A driver as `host ls` shows it: its name, `(down)` when unhealthy, and its queue when work waits. */
export function driverCell(d: pb.DriverInfo__Output): string {
  const queued = d.queue_depth > 0 ? `[${d.in_flight}/${d.concurrency} busy, ${d.queue_depth} queued]` : '';
  return `${d.name}${d.healthy ? '' : '(down)'}${queued}`;
}

const labelsCell = (labels: Record<string, string> | undefined) =>
  Object.entries(labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',') || '-';

/** `host ls`; wide adds the hostname, agent version, capacity, labels, features and when telemetry last arrived. */
export function hostRows(hosts: pb.Host__Output[], wide = false): string {
  const headers = ['id', 'status', 'address', 'drivers', 'trust', 'cpu util', 'alloc/allocatable cpu', 'mem used/total', 'alloc/allocatable mem', 'held by stopped', 'storage used/total', 'workloads', 'last seen'];
  if (wide) headers.push('hostname', 'agent', 'capacity', 'labels', 'features', 'telemetry');
  return table(
    headers,
    hosts.map((h) => {
      const row = [
        h.id,
        h.cordoned ? `${h.status},cordoned` : h.status,
        h.address,
        h.drivers.map(driverCell).join(','),
        String(h.trust_level),
        `${Math.round(h.cpu_utilisation_smoothed * 100)}%`,
        `${cpus(h.allocated?.vcpus ?? 0)}/${cpus(h.allocatable?.vcpus ?? 0)}`,
        `${mib(h.usage?.memory_used_mib ?? 0)}/${mib(h.usage?.memory_total_mib ?? 0)}`,
        `${mib(h.allocated?.memory_mib ?? 0)}/${mib(h.allocatable?.memory_mib ?? 0)}`,
        h.held_by_stopped && (h.held_by_stopped.vcpus > 0 || h.held_by_stopped.memory_mib > 0) ? `${cpus(h.held_by_stopped.vcpus)} cpu, ${mib(h.held_by_stopped.memory_mib)}` : '-',
        h.usage?.storage[0] ? `${h.usage.storage[0].used_gib.toFixed(1)}/${h.usage.storage[0].total_gib.toFixed(1)}Gi` : '-',
        String(h.workload_count),
        age(h.last_seen),
      ];
      if (wide)
        row.push(
          h.hostname || '-',
          h.agent_version || '-',
          `${cpus(h.capacity?.vcpus ?? 0)} cpu, ${mib(h.capacity?.memory_mib ?? 0)}, ${h.capacity?.disk_gib ?? 0}Gi`,
          labelsCell(h.labels),
          h.features.join(',') || '-',
          h.telemetry_applied_at ? age(h.telemetry_applied_at) : '-',
        );
      return row;
    }),
  );
}

/** `workload ls`; wide adds the tenant, priority, image, disk, addresses and when it last changed. */
export function workloadRows(ws: pb.Workload__Output[], wide = false): string {
  const headers = ['id', 'name', 'kind', 'host', 'state', 'desired', 'cpu', 'memory', 'age', 'message'];
  if (wide) headers.splice(9, 0, 'tenant', 'priority', 'image', 'disk', 'addresses', 'updated');
  return table(
    headers,
    ws.map((w) => {
      const row = [w.id, w.spec?.name ?? '', w.spec?.kind ?? '', w.host_id || '-', w.state, w.desired_state, cpus(w.spec?.vcpus ?? 0), mib(w.spec?.memory_mib ?? 0), age(w.created_at), w.message];
      if (wide) row.splice(9, 0, w.spec?.tenant || '-', String(w.spec?.priority ?? ''), w.spec?.image || '-', `${w.spec?.disk_gib ?? 0}Gi`, w.addresses.join(',') || '-', age(w.updated_at));
      return row;
    }),
  );
}

/** `workload get` for a person: one field a line. */
export function workloadDetail(w: pb.Workload__Output): string {
  const s = w.spec;
  const lines: [string, string][] = [
    ['id', w.id],
    ['name', s?.name ?? ''],
    ['kind', s?.kind ?? ''],
    ['state', w.state],
    ['desired', w.desired_state],
    ['host', w.host_id || '-'],
    ['driver ref', w.driver_ref || '-'],
    ['addresses', w.addresses.join(', ') || '-'],
    ['network', s?.network || '-'],
    ['image', s?.image || '-'],
    ['vcpus', String(s?.vcpus ?? '')],
    ['memory', mib(s?.memory_mib ?? 0)],
    ['disk', `${s?.disk_gib ?? 0}Gi`],
    ['labels', labelsCell(s?.labels)],
    ['created', w.created_at],
    ['updated', w.updated_at],
    ['message', w.message || '-'],
    ...(w.migration ? ([['migration', migrationLine(w.migration)]] as [string, string][]) : []),
  ];
  return lines.map(([k, v]) => `${`${k}:`.padEnd(12)}${v}`).join('\n');
}

/** One line about a migration under way: where to, its phase, how far, how fast. */
export function migrationLine(m: pb.WorkloadMigration__Output): string {
  const done = m.data_total_bytes > 0 ? ` ${Math.floor((100 * m.data_processed_bytes) / m.data_total_bytes)}% of ${mib(m.data_total_bytes / 2 ** 20)}` : '';
  const rate = m.bytes_per_second > 0 ? `, ${mib(m.bytes_per_second / 2 ** 20)}/s` : '';
  const downtime = m.expected_downtime_ms > 0 ? `, expected downtime ${m.expected_downtime_ms} ms` : '';
  return `${m.mode} ${m.source_host_id} -> ${m.target_host_id}, ${m.phase}${done}${rate}${downtime}`;
}
