import { parseWorkloadSpec } from '@virtfleet/shared';
import type { Workload } from './workload.js';

/**
 * A container workload of 1 vCPU and 64 MiB, running on h1, for unit tests;
 * tests override what they examine. `spec` fields go through the real spec parser.
 */
export function testWorkload(id: string, overrides: Partial<Omit<Workload, 'spec'>> = {}, spec: Record<string, unknown> = {}): Workload {
  return {
    id,
    spec: parseWorkloadSpec({ name: id, kind: 'container', image: 'busybox', vcpus: 1, memory_mib: 64, ...spec }),
    hostId: 'h1',
    desiredState: 'running',
    state: 'running',
    message: '',
    driverRef: '',
    requestId: '',
    arrivalSeq: 0,
    arrivalMs: 0,
    createdAt: '',
    updatedAt: '',
    ...overrides,
  };
}
