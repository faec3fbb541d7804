import { LOW_LATENCY_MAX_CPU_UTILISATION, type WorkloadSpec } from '@virtfleet/shared';
import type { FilterPlugin } from '../plugins.js';
import { OK } from '../plugins.js';

export const PERFORMANCE = 'performance';

/** The highest smoothed host CPU utilisation the workload tolerates. */
export function toleratedCpuUtilisation(spec: WorkloadSpec): number {
  const stated = spec.performance.max_host_cpu_utilisation ?? 1;
  return spec.performance.latency_class === 'low' ? Math.min(stated, LOW_LATENCY_MAX_CPU_UTILISATION) : stated;
}

/**
 * Measured load, not bookings: the host's smoothed CPU utilisation must be
 * within what the workload tolerates, and the memory the host reports
 * available must cover the workload plus the headroom it asks for. Runs last,
 * after the cheaper checks.
 */
export const performanceFilter: FilterPlugin = {
  name: PERFORMANCE,
  filter({ spec }, host) {
    const headroom = spec.performance.memory_headroom_mib;
    // Headroom beyond what even an idle host has can never be met there; checked before the load, which may pass.
    if (headroom > 0 && host.capacity.memoryMiB - spec.memory_mib < headroom) return { status: 'unresolvable', reason: 'insufficient memory headroom' };
    const tolerated = toleratedCpuUtilisation(spec);
    if (host.cpuUtilisation > tolerated) return { status: 'unschedulable', reason: `cpu utilisation above ${tolerated}` };
    if (headroom > 0 && host.memoryAvailableMiB - spec.memory_mib < headroom) return { status: 'unschedulable', reason: 'insufficient memory headroom' };
    return OK;
  },
};
