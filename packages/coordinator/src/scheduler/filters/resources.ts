import { diskDemandGiB } from '@virtfleet/shared';
import type { FilterPlugin } from '../plugins.js';
import { OK } from '../plugins.js';

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
    // "Never" before "not now": a host whose CPU is merely full must still say so when the memory could never fit.
    if (spec.vcpus > a.vcpus) return { status: 'unresolvable', reason: INSUFFICIENT.cpu };
    if (spec.memory_mib > a.memoryMiB) return { status: 'unresolvable', reason: INSUFFICIENT.memory };
    if (disk > a.diskGiB) return { status: 'unresolvable', reason: INSUFFICIENT.disk };
    if (u.vcpus + spec.vcpus > a.vcpus) return { status: 'unschedulable', reason: INSUFFICIENT.cpu };
    if (u.memoryMiB + spec.memory_mib > a.memoryMiB) return { status: 'unschedulable', reason: INSUFFICIENT.memory };
    if (u.diskGiB + disk > a.diskGiB) return { status: 'unschedulable', reason: INSUFFICIENT.disk };
    if (host.workloadCount >= host.maxWorkloads) return { status: 'unschedulable', reason: INSUFFICIENT.workloads };
    return OK;
  },
};
