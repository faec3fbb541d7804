import { diskDemandGiB } from '@virtfleet/shared';
import type { FilterPlugin } from '../plugins.js';
import { OK } from '../plugins.js';
import { toMilliCpus } from '../milli-cpus.js';

export const RESOURCES = 'resources';

export const INSUFFICIENT = { cpu: 'insufficient cpu', memory: 'insufficient memory', disk: 'insufficient disk', workloads: 'holds the most workloads it takes' } as const;

/**
 * Room within the host's allocatable resources: capacity minus what is
 * reserved for the host, times its overcommit ratio, and below the most
 * workloads its agent takes. A demand larger than the whole allocatable
 * amount can never fit there.
 */
export const resourcesFilter: FilterPlugin = {
  name: RESOURCES,
  filter({ spec }, host) {
    const a = host.allocatable;
    const u = host.allocated;
    const disk = diskDemandGiB(spec);
    // CPU in whole milli-CPUs: 0.2 booked + 0.1 asked fits 0.3 allocatable (as floats it is 0.30000000000000004).
    const cpu = toMilliCpus(spec.vcpus);
    const cpuAllocatable = toMilliCpus(a.vcpus);
    // "Never" before "not now": a host whose CPU is merely full must still say so when the memory could never fit.
    if (cpu > cpuAllocatable) return { status: 'unresolvable', reason: INSUFFICIENT.cpu };
    if (spec.memory_mib > a.memoryMiB) return { status: 'unresolvable', reason: INSUFFICIENT.memory };
    if (disk > a.diskGiB) return { status: 'unresolvable', reason: INSUFFICIENT.disk };
    if (toMilliCpus(u.vcpus) + cpu > cpuAllocatable) return { status: 'unschedulable', reason: INSUFFICIENT.cpu };
    if (u.memoryMiB + spec.memory_mib > a.memoryMiB) return { status: 'unschedulable', reason: INSUFFICIENT.memory };
    if (u.diskGiB + disk > a.diskGiB) return { status: 'unschedulable', reason: INSUFFICIENT.disk };
    if (host.workloadCount >= host.maxWorkloads) return { status: 'unschedulable', reason: INSUFFICIENT.workloads };
    return OK;
  },
};
