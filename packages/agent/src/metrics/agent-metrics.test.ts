import type { WorkloadTelemetry } from '@virtfleet/shared';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { DriverStatus } from '../drivers/guarded-driver.js';
import { AgentMetrics, type AgentState } from './agent-metrics.js';

const workload = (id: string, state: WorkloadTelemetry['state'], cpuPercent: number, memoryMiB: number): WorkloadTelemetry =>
  ({ workload_id: id, name: id.split('-')[0]!, kind: 'container', state, driver: 'docker', driver_ref: 'x', cpu_percent: cpuPercent, memory_used_mib: memoryMiB }) as WorkloadTelemetry;
const message = {
  capacity: { vcpus: 8, memory_mib: 16_384, disk_gib: 100 },
  reserved: { vcpus: 0, memory_mib: 512, disk_gib: 0 },
  host: { cpu_count: 8, cpu_utilisation: 0.25, load1: 1.5, load5: 1, load15: 1, memory_total_mib: 16_384, memory_used_mib: 4096, memory_available_mib: 12_288, storage: [] },
};
const driver = (name: string, status: Partial<DriverStatus>) => ({ name, status: (): DriverStatus => ({ healthy: true, detail: '', answeredAtMs: 0, queueDepth: 0, inFlight: 0, concurrency: 4, ...status }) });

function fixture(workloads: WorkloadTelemetry[] | undefined) {
  const seen = { workloads };
  const state: AgentState = {
    lastPublished: () => (seen.workloads ? { message, workloads: seen.workloads } : undefined),
    drivers: () => [driver('docker', { queueDepth: 3, inFlight: 4 }), driver('libvirt', { healthy: false })],
  };
  return { metrics: new AgentMetrics(state, new Registry()), seen };
}

async function value(metrics: AgentMetrics, series: string): Promise<number | undefined> {
  const line = (await metrics.registry.metrics()).split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('AgentMetrics', () => {
  it.each([
    { series: 'virtfleet_agent_workload_cpu_cores{workload_id="web-1",name="web",kind="container"}', want: 1.5 },
    { series: 'virtfleet_agent_workload_memory_bytes{workload_id="web-1",name="web",kind="container"}', want: 64 * 2 ** 20 },
    { series: 'virtfleet_agent_workloads{state="running",kind="container"}', want: 1 },
    { series: 'virtfleet_agent_workloads{state="stopped",kind="container"}', want: 1 },
    { series: 'virtfleet_agent_workloads{state="running",kind="vm"}', want: 0 },
    { series: 'virtfleet_agent_host_vcpus{measure="capacity"}', want: 8 },
    { series: 'virtfleet_agent_host_vcpus{measure="used"}', want: 2 },
    { series: 'virtfleet_agent_host_memory_bytes{measure="reserved"}', want: 512 * 2 ** 20 },
    { series: 'virtfleet_agent_host_memory_bytes{measure="available"}', want: 12_288 * 2 ** 20 },
    { series: 'virtfleet_agent_host_disk_bytes{measure="capacity"}', want: 100 * 2 ** 30 },
    { series: 'virtfleet_agent_host_load1', want: 1.5 },
    { series: 'virtfleet_agent_driver_healthy{driver="docker"}', want: 1 },
    { series: 'virtfleet_agent_driver_healthy{driver="libvirt"}', want: 0 },
    { series: 'virtfleet_agent_driver_queue_depth{driver="docker"}', want: 3 },
    { series: 'virtfleet_agent_driver_in_flight{driver="docker"}', want: 4 },
  ])('$series = $want', async ({ series, want }) => {
    const { metrics } = fixture([workload('web-1', 'running', 150, 64), workload('db-2', 'stopped', 0, 0)]);
    expect(await value(metrics, series)).toBe(want);
  });

  it('drops a workload’s series once it is gone from the host', async () => {
    const { metrics, seen } = fixture([workload('web-1', 'running', 150, 64), workload('db-2', 'running', 10, 8)]);
    expect(await value(metrics, 'virtfleet_agent_workload_cpu_cores{workload_id="db-2",name="db",kind="container"}')).toBe(0.1);
    seen.workloads = [workload('web-1', 'running', 150, 64)];
    expect(await value(metrics, 'virtfleet_agent_workload_cpu_cores{workload_id="db-2",name="db",kind="container"}')).toBeUndefined();
    expect(await value(metrics, 'virtfleet_agent_workload_memory_bytes{workload_id="db-2",name="db",kind="container"}')).toBeUndefined();
  });

  it('reports no host or workload series before the first telemetry', async () => {
    const { metrics } = fixture(undefined);
    const text = await metrics.registry.metrics();
    expect(text).not.toMatch(/^virtfleet_agent_(host_(vcpus|memory|disk)|workload)/m);
    expect(text).toMatch(/^virtfleet_agent_driver_healthy\{driver="docker"\} 1$/m);
  });

  it('counts telemetry messages by kind and how old their workload part was', async () => {
    const { metrics } = fixture([]);
    metrics.telemetryPublished({ kind: 'full', message: { published_at: '2025-01-01T00:00:01.250Z', workloads_sampled_at: '2025-01-01T00:00:01.000Z' } });
    metrics.telemetryPublished({ kind: 'delta', message: { published_at: '2025-01-01T00:00:02.000Z', workloads_sampled_at: '2025-01-01T00:00:02.000Z' } });
    metrics.telemetryPublished(undefined);
    expect(await value(metrics, 'virtfleet_agent_telemetry_messages_total{kind="full"}')).toBe(1);
    expect(await value(metrics, 'virtfleet_agent_telemetry_messages_total{kind="delta"}')).toBe(1);
    expect(await value(metrics, 'virtfleet_agent_telemetry_age_seconds_sum')).toBe(0.25);
  });
});
