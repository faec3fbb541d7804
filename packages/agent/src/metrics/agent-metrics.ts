import { WORKLOAD_KINDS, WORKLOAD_STATES, measureGauge, newMetricsRegistry, type Telemetry, type TelemetryKind, type WorkloadTelemetry } from '@virtfleet/shared';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { DriverStatus } from '../drivers/guarded-driver.js';

/** What the agent's gauges read at scrape time. */
export interface AgentState {
  /** The last telemetry published: the host's figures, and every workload with its usage. Undefined before the first. */
  lastPublished(): { message: Pick<Telemetry, 'capacity' | 'reserved' | 'host'>; workloads: readonly WorkloadTelemetry[] } | undefined;
  drivers(): readonly { readonly name: string; status(): DriverStatus }[];
}

const MIB = 2 ** 20;
const GIB = 2 ** 30;
/** How old a message's workload part is when it goes out: a few milliseconds, up to seconds when an engine stalls. */
const AGE_SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * One agent's metrics, in a registry of its own. The host's figures and
 * each workload's CPU and memory come from the telemetry it last published
 * (no engine call of their own), read when Prometheus scrapes: a workload
 * that is gone has no series any more. Telemetry messages are counted as
 * they go out.
 */
export class AgentMetrics {
  readonly registry: Registry;
  private readonly messages: Counter<'kind'>;
  private readonly ageSeconds: Histogram;

  constructor(state: AgentState, registry: Registry = newMetricsRegistry()) {
    this.registry = registry;
    const registers = [registry];
    const workloadLabels = ['workload_id', 'name', 'kind'] as const;
    const perWorkload = (name: string, help: string, value: (w: WorkloadTelemetry) => number) =>
      new Gauge({
        name,
        help,
        labelNames: workloadLabels,
        registers,
        collect() {
          this.reset();
          for (const w of state.lastPublished()?.workloads ?? []) this.set({ workload_id: w.workload_id, name: w.name, kind: w.kind }, value(w));
        },
      });
    perWorkload('virtfleet_agent_workload_cpu_cores', 'CPU a workload uses, in CPUs (1 = one CPU busy), as last sampled.', (w) => w.cpu_percent / 100);
    perWorkload('virtfleet_agent_workload_memory_bytes', 'Memory a workload uses, as last sampled.', (w) => w.memory_used_mib * MIB);
    new Gauge({
      name: 'virtfleet_agent_workloads',
      help: 'Workloads on this host by state and kind, as last observed.',
      labelNames: ['state', 'kind'],
      registers,
      collect() {
        const last = state.lastPublished();
        this.reset();
        if (!last) return;
        const counts = new Map<string, number>();
        for (const w of last.workloads) counts.set(`${w.state}/${w.kind}`, (counts.get(`${w.state}/${w.kind}`) ?? 0) + 1);
        for (const s of WORKLOAD_STATES) for (const kind of WORKLOAD_KINDS) this.set({ state: s, kind }, counts.get(`${s}/${kind}`) ?? 0);
      },
    });
    const hostGauge = (name: string, help: string, read: (t: Pick<Telemetry, 'capacity' | 'reserved' | 'host'>) => Record<string, number>) =>
      measureGauge(registry, name, help, () => {
        const last = state.lastPublished();
        return last && read(last.message);
      });
    hostGauge('virtfleet_agent_host_vcpus', 'This host’s vCPUs: capacity, reserved (held back for the host) and used (CPUs busy).', (t) => ({
      capacity: t.capacity.vcpus,
      reserved: t.reserved.vcpus,
      used: t.host.cpu_utilisation * t.host.cpu_count,
    }));
    hostGauge('virtfleet_agent_host_memory_bytes', 'This host’s memory: capacity, reserved, used and available.', (t) => ({
      capacity: t.capacity.memory_mib * MIB,
      reserved: t.reserved.memory_mib * MIB,
      used: t.host.memory_used_mib * MIB,
      available: t.host.memory_available_mib * MIB,
    }));
    hostGauge('virtfleet_agent_host_disk_bytes', 'This host’s disk for workloads (the first telemetry.storagePaths): capacity and reserved.', (t) => ({ capacity: t.capacity.disk_gib * GIB, reserved: t.reserved.disk_gib * GIB }));
    new Gauge({
      name: 'virtfleet_agent_host_load1',
      help: 'This host’s one-minute load average.',
      registers,
      collect() {
        this.reset();
        const last = state.lastPublished();
        if (last) this.set(last.message.host.load1);
      },
    });
    const perDriver = (name: string, help: string, value: (s: DriverStatus) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['driver'],
        registers,
        collect() {
          this.reset();
          for (const d of state.drivers()) this.set({ driver: d.name }, value(d.status()));
        },
      });
    perDriver('virtfleet_agent_driver_healthy', '1 while the driver’s engine meets its deadlines, else 0.', (s) => (s.healthy ? 1 : 0));
    perDriver('virtfleet_agent_driver_queue_depth', 'Workload changes waiting for the driver.', (s) => s.queueDepth);
    perDriver('virtfleet_agent_driver_in_flight', 'Workload changes the driver is carrying out now.', (s) => s.inFlight);
    this.messages = new Counter({ name: 'virtfleet_agent_telemetry_messages_total', help: 'Telemetry messages published, by kind: full (every workload) or delta (changes).', labelNames: ['kind'], registers });
    this.ageSeconds = new Histogram({
      name: 'virtfleet_agent_telemetry_age_seconds',
      help: 'How old a telemetry message’s workload observation was when it went out (published_at - workloads_sampled_at): late engines make it grow.',
      buckets: AGE_SECONDS_BUCKETS,
      registers,
    });
  }

  /** A telemetry message went out. */
  telemetryPublished(published: { message: Pick<Telemetry, 'published_at' | 'workloads_sampled_at'>; kind: TelemetryKind } | undefined): void {
    if (!published) return;
    this.messages.inc({ kind: published.kind });
    const { published_at: at, workloads_sampled_at: sampled } = published.message;
    if (at && sampled) this.ageSeconds.observe(Math.max(0, Date.parse(at) - Date.parse(sampled)) / 1000);
  }
}
