/** A telemetry message as an agent with no drivers and no workloads sends it, for tests; `overrides` replace top-level fields. */
export function testTelemetry(hostId: string, overrides: Record<string, unknown> = {}) {
  return {
    version: 1 as const,
    host_id: hostId,
    hostname: hostId,
    address: '127.0.0.1:1',
    agent_version: '0',
    boot_id: 'b',
    seq: 1,
    time: new Date().toISOString(),
    labels: {} as Record<string, string>,
    drivers: [],
    capacity: { vcpus: 1, memory_mib: 1024, disk_gib: 1 },
    reserved: { vcpus: 0, memory_mib: 0, disk_gib: 0 },
    overcommit: { cpu: 1, memory: 1 },
    trust_level: 0,
    features: [] as string[],
    host: { cpu_count: 1, cpu_utilisation: 0, load1: 0, load5: 0, load15: 0, memory_total_mib: 1024, memory_used_mib: 1, memory_available_mib: 1023, storage: [] },
    workloads: [],
    ...overrides,
  };
}
