import type { WorkloadTelemetry } from '@virtfleet/shared';
import type { WorkloadManager } from '../workload-manager.js';

interface CpuSample {
  cpuTimeNs: number;
  at: bigint;
}

/**
 * Turns drivers' cumulative CPU counters into a utilisation percentage
 * (100 = one full CPU) between successive samples.
 */
export class WorkloadSampler {
  private readonly previous = new Map<string, CpuSample>();

  constructor(private readonly manager: WorkloadManager) {}

  async sample(): Promise<WorkloadTelemetry[]> {
    const observed = await this.manager.observeAll();
    const seen = new Set<string>();
    const out = await Promise.all(
      observed.map(async ({ driver, workload }) => {
        seen.add(workload.workloadId);
        let cpuPercent = 0;
        let memoryUsedMiB = 0;
        if (workload.state === 'running') {
          const usage = await driver.usage(workload.workloadId).catch(() => undefined);
          if (usage) {
            const at = process.hrtime.bigint();
            const before = this.previous.get(workload.workloadId);
            if (before && at > before.at && usage.cpuTimeNs >= before.cpuTimeNs) {
              cpuPercent = ((usage.cpuTimeNs - before.cpuTimeNs) / Number(at - before.at)) * 100;
            }
            this.previous.set(workload.workloadId, { cpuTimeNs: usage.cpuTimeNs, at });
            memoryUsedMiB = usage.memoryUsedMiB;
          }
        }
        return {
          workload_id: workload.workloadId,
          name: workload.name,
          kind: workload.kind,
          state: workload.state,
          driver: driver.name,
          driver_ref: workload.ref,
          cpu_percent: Math.round(cpuPercent * 100) / 100,
          memory_used_mib: Math.round(memoryUsedMiB * 100) / 100,
        };
      }),
    );
    for (const id of this.previous.keys()) if (!seen.has(id)) this.previous.delete(id);
    return out;
  }
}
