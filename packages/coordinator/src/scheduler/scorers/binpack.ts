import type { HostSnapshot, PlacementRequest } from '../scheduler.js';
import type { ScorePlugin } from '../plugins.js';
import { clamp100 } from '../plugins.js';

export const BINPACK = 'binpack';

/** Mean fraction of allocatable CPU and memory in use once the request is placed, 0-1. */
export function fillAfter({ spec }: PlacementRequest, host: HostSnapshot): number {
  const cpu = host.allocatable.vcpus > 0 ? (host.allocated.vcpus + spec.vcpus) / host.allocatable.vcpus : 1;
  const memory = host.allocatable.memoryMiB > 0 ? (host.allocated.memoryMiB + spec.memory_mib) / host.allocatable.memoryMiB : 1;
  return (cpu + memory) / 2;
}

/** Prefers the fullest host, leaving whole hosts free for large requests. */
export const binpackScorer: ScorePlugin = {
  name: BINPACK,
  score: (request, host) => clamp100(fillAfter(request, host) * 100),
};
