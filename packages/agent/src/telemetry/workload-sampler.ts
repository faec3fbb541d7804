import type { WorkloadTelemetry } from '@virtfleet/shared';
import type { ObservedWorkload, WorkloadManager } from '../workload-manager.js';

interface CpuSample {
  cpuTimeNs: number;
  at: bigint;
}

interface Usage {
  cpuPercent: number;
  memoryUsedMiB: number;
}

/**
 * Reports each workload's state with its CPU and memory use. CPU comes from
 * drivers' cumulative counters, as a percentage (100 = one full CPU) between
 * successive readings.
 *
 * Telemetry is also the host's heartbeat, and usage can be slow to read
 * (Docker's stats endpoint takes about a second per container). So states
 * are read for every sample, and usage is refreshed in the background: a
 * sample carries the latest usage read so far and is never held up by it.
 */
export class WorkloadSampler {
  private readonly previous = new Map<string, CpuSample>();
  private readonly latest = new Map<string, Usage>();
  private refreshing: Promise<void> | undefined;

  constructor(private readonly manager: WorkloadManager) {}

  async sample(): Promise<WorkloadTelemetry[]> {
    const observed = await this.manager.observeAll();
    this.refreshing ??= this.refreshUsage(observed).finally(() => (this.refreshing = undefined));
    const seen = new Set(observed.map((o) => o.workload.workloadId));
    for (const id of this.latest.keys()) if (!seen.has(id)) this.latest.delete(id);
    for (const id of this.previous.keys()) if (!seen.has(id)) this.previous.delete(id);
    return observed.map(({ driver, workload }) => {
      const usage = workload.state === 'running' ? this.latest.get(workload.workloadId) : undefined;
      return {
        workload_id: workload.workloadId,
        name: workload.name,
        kind: workload.kind,
        state: workload.state,
        driver: driver.name,
        driver_ref: workload.ref,
        cpu_percent: Math.round((usage?.cpuPercent ?? 0) * 100) / 100,
        memory_used_mib: Math.round((usage?.memoryUsedMiB ?? 0) * 100) / 100,
      };
    });
  }

  /** Resolves once the usage refresh in progress (if any) is done; for tests and shutdown. */
  async settled(): Promise<void> {
    await this.refreshing;
  }

  private async refreshUsage(observed: ObservedWorkload[]): Promise<void> {
    await Promise.all(
      observed.map(async ({ driver, workload }) => {
        if (workload.state !== 'running') return;
        const usage = await driver.usage(workload.workloadId).catch(() => undefined);
        if (!usage) return;
        const at = process.hrtime.bigint();
        const before = this.previous.get(workload.workloadId);
        const cpuPercent = before && at > before.at && usage.cpuTimeNs >= before.cpuTimeNs ? ((usage.cpuTimeNs - before.cpuTimeNs) / Number(at - before.at)) * 100 : 0;
        this.previous.set(workload.workloadId, { cpuTimeNs: usage.cpuTimeNs, at });
        this.latest.set(workload.workloadId, { cpuPercent, memoryUsedMiB: usage.memoryUsedMiB });
      }),
    );
  }
}
