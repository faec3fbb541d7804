import { describe, expect, it } from 'vitest';
import { telemetrySchema, telemetrySubject } from './telemetry.js';

export function sampleTelemetry(overrides: Record<string, unknown> = {}) {
  return {
    version: 1,
    host_id: 'h1',
    hostname: 'h1.example',
    address: '127.0.0.1:7101',
    agent_version: '0.1.0',
    boot_id: 'b',
    seq: 0,
    time: new Date(0).toISOString(),
    labels: {},
    drivers: [{ name: 'docker', version: '20.10', kinds: ['container'], domain_types: [], healthy: true, detail: '' }],
    capacity: { vcpus: 4, memory_mib: 8192, disk_gib: 100 },
    host: {
      cpu_count: 4,
      cpu_utilisation: 0.25,
      load1: 1,
      load5: 1,
      load15: 1,
      memory_total_mib: 8192,
      memory_used_mib: 4096,
      memory_available_mib: 4096,
      storage: [{ path: '/', total_gib: 100, used_gib: 10 }],
    },
    workloads: [],
    ...overrides,
  };
}

describe('telemetry schema', () => {
  it('accepts a well-formed message', () => {
    expect(telemetrySchema.safeParse(sampleTelemetry()).success).toBe(true);
  });

  it('accepts a delta', () => {
    expect(telemetrySchema.safeParse(sampleTelemetry({ seq: 5, workloads_base_seq: 4, workloads_removed: ['w-1'] })).success).toBe(true);
  });

  const bad: { name: string; message: unknown }[] = [
    { name: 'a wildcard host id', message: sampleTelemetry({ host_id: 'h.*' }) },
    { name: 'a future version', message: sampleTelemetry({ version: 2 }) },
    { name: 'utilisation above 1', message: sampleTelemetry({ host: { ...sampleTelemetry().host, cpu_utilisation: 1.5 } }) },
    { name: 'negative memory', message: sampleTelemetry({ capacity: { vcpus: 1, memory_mib: -1, disk_gib: 0 } }) },
    { name: 'a bad time', message: sampleTelemetry({ time: 'yesterday' }) },
    { name: 'an unknown workload state', message: sampleTelemetry({ workloads: [{ workload_id: 'w', name: 'w', kind: 'vm', state: 'zombie', driver: 'x', driver_ref: '', cpu_percent: 0, memory_used_mib: 0 }] }) },
    { name: 'removals on a full list', message: sampleTelemetry({ workloads_removed: ['w'] }) },
    { name: 'a delta based on itself', message: sampleTelemetry({ seq: 4, workloads_base_seq: 4, workloads_removed: [] }) },
    { name: 'a string', message: 'hello' },
  ];
  it.each(bad)('rejects $name', ({ message }) => {
    expect(telemetrySchema.safeParse(message).success).toBe(false);
  });

  it('builds the subject from the host id', () => {
    expect(telemetrySubject('h1')).toBe('virtfleet.telemetry.h1');
  });
});
