import { demandOf, summariseRejections, type CandidateVerdict, type HostSnapshot, type PlacementDecision, type PlacementRequest, type Scheduler } from './scheduler.js';

export const FIRST_FIT_SCHEDULER = 'first-fit';

export const REASONS = {
  down: 'down',
  noDriver: (kind: string) => `no healthy driver for ${kind}`,
  cpu: 'insufficient cpu',
  memory: 'insufficient memory',
  disk: 'insufficient disk',
} as const;

/**
 * Places a workload on the first host, in id order, that is up, has a
 * driver for its kind and has room. Checks run cheapest first.
 */
export class FirstFitScheduler implements Scheduler {
  readonly name = FIRST_FIT_SCHEDULER;

  place(request: PlacementRequest, hosts: readonly HostSnapshot[]): PlacementDecision {
    const demand = demandOf(request.spec);
    const candidates: CandidateVerdict[] = [];
    let chosen: string | undefined;
    for (const host of [...hosts].sort((a, b) => a.id.localeCompare(b.id))) {
      const reason = this.reject(host, request, demand);
      candidates.push(reason ? { hostId: host.id, feasible: false, reason } : { hostId: host.id, feasible: true });
      if (!reason && chosen === undefined) chosen = host.id;
    }
    const decidedAt = new Date().toISOString();
    if (chosen === undefined) return { workloadId: request.workloadId, candidates, summary: summariseRejections(candidates), decidedAt };
    return { workloadId: request.workloadId, hostId: chosen, candidates, summary: `placed on ${chosen} (first fit)`, decidedAt };
  }

  private reject(host: HostSnapshot, request: PlacementRequest, demand: ReturnType<typeof demandOf>): string | undefined {
    if (!host.up) return REASONS.down;
    const kind = request.spec.kind;
    if (!host.drivers.some((d) => d.healthy && (d.kinds as string[]).includes(kind))) return REASONS.noDriver(kind);
    if (host.allocated.vcpus + demand.vcpus > host.capacity.vcpus) return REASONS.cpu;
    if (host.allocated.memoryMiB + demand.memoryMiB > host.capacity.memoryMiB) return REASONS.memory;
    if (host.allocated.diskGiB + demand.diskGiB > host.capacity.diskGiB) return REASONS.disk;
    return undefined;
  }
}
