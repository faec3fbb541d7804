import type { FilterPlugin } from '../plugins.js';
import { OK } from '../plugins.js';

export const RESOURCES = 'resources';

export const INSUFFICIENT = { cpu: 'insufficient cpu', memory: 'insufficient memory', disk: 'insufficient disk' } as const;

/**
 * Room within the host's allocatable resources: capacity minus what is
 * reserved for the host, times its overcommit ratio. A demand larger than
 * the whole allocatable amount can never fit there.
 */
export const resourcesFilter: FilterPlugin = {
  name: RESOURCES,
  filter({ spec }, host) {
    const a = host.allocatable;
    const u = host.allocated;
    const check = (demand: number, allocated: number, allocatable: number, reason: string) =>
      demand > allocatable ? { status: 'unresolvable' as const, reason } : allocated + demand > allocatable ? { status: 'unschedulable' as const, reason } : undefined;
    return check(spec.vcpus, u.vcpus, a.vcpus, INSUFFICIENT.cpu) ?? check(spec.memory_mib, u.memoryMiB, a.memoryMiB, INSUFFICIENT.memory) ?? check(spec.disk_gib, u.diskGiB, a.diskGiB, INSUFFICIENT.disk) ?? OK;
  },
};
