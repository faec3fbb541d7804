import { parseWorkloadSpec, type WorkloadSpec } from '@virtfleet/shared';
import { FILTERS } from '../scheduler/catalog.js';
import { hostSnapshot } from '../scheduler/host-snapshot.test-support.js';
import { assume, release, type HostSnapshot } from '../scheduler/scheduler.js';
import { cloneSnapshot } from './fleet-state.js';
import type { PlanWorkload, RebalanceInput, RebalancePlan } from './rebalance.js';

/** A host of the test fleet: an up, empty host of 8 vCPUs and 8 GiB (`hostSnapshot`) with these overrides. */
export type TestHost = string | ({ id: string } & Partial<HostSnapshot>);

export interface TestWorkload {
  id: string;
  host: string;
  /** Spec fields over a container of 0.5 vCPU and 1024 MiB. */
  spec?: Record<string, unknown>;
  pinned?: string;
}

export function testSpec(id: string, fields: Record<string, unknown> = {}): WorkloadSpec {
  return parseWorkloadSpec({ name: id, kind: 'container', image: 'busybox', vcpus: 0.5, memory_mib: 1024, ...fields });
}

/** The planner's input: the hosts, each workload booked on its host with `assume`, as the coordinator's snapshots hold them. */
export function testFleet(hosts: readonly TestHost[], workloads: readonly TestWorkload[]): RebalanceInput {
  const snapshots = hosts.map((h) => (typeof h === 'string' ? hostSnapshot(h) : hostSnapshot(h.id, h)));
  const byId = new Map(snapshots.map((s) => [s.id, s]));
  const listed: PlanWorkload[] = workloads.map((w) => {
    const spec = testSpec(w.id, w.spec);
    assume(byId.get(w.host)!, spec);
    return { id: w.id, name: w.id, spec, hostId: w.host, ...(w.pinned === undefined ? {} : { pinned: w.pinned }) };
  });
  return { hosts: snapshots, workloads: listed };
}

/**
 * Replays a plan on copies of the input's snapshots, independently of the
 * planner: each move's workload must be on `from`, every registered filter
 * must admit it onto `to` as the hosts are at that step (it is booked on
 * both until the move ends), and the hosts in use at the end must be what
 * the plan says. Returns what was wrong, one line each; empty when nothing.
 */
export function replay(input: RebalanceInput, plan: RebalancePlan): string[] {
  const problems: string[] = [];
  const hosts = new Map(input.hosts.map((h) => [h.id, cloneSnapshot(h)]));
  const on = new Map<string, PlanWorkload[]>(input.hosts.map((h) => [h.id, []]));
  for (const w of input.workloads) on.get(w.hostId)?.push(w);
  const filters = FILTERS.names().map((n) => FILTERS.get(n)!);
  for (const [n, move] of plan.moves.entries()) {
    const source = on.get(move.from) ?? [];
    const w = source.find((x) => x.id === move.workloadId && x.pinned === undefined);
    if (!w) {
      problems.push(`move ${n + 1}: ${move.workloadId} is not a movable workload on ${move.from}`);
      continue;
    }
    const target = hosts.get(move.to)!;
    for (const f of filters) {
      const verdict = f.filter({ workloadId: w.id, spec: w.spec, avoidHosts: [move.from] }, target);
      if (verdict.status !== 'ok') problems.push(`move ${n + 1}: ${w.id} onto ${move.to}: ${f.name}: ${verdict.reason ?? verdict.status}`);
    }
    assume(target, w.spec);
    on.get(move.to)!.push(w);
    const left = source.filter((x) => x !== w);
    on.set(move.from, left);
    release(hosts.get(move.from)!, w.spec, left.map((x) => x.spec));
  }
  const used = [...on.values()].filter((list) => list.length > 0).length;
  if (used !== plan.hostsUsedAfter) problems.push(`the moves leave ${used} hosts in use; the plan says ${plan.hostsUsedAfter}`);
  return problems;
}

/** Where each workload ends up after the plan's moves. */
export function finalHosts(input: RebalanceInput, plan: RebalancePlan): Map<string, string> {
  const where = new Map(input.workloads.filter((w) => w.pinned === undefined).map((w) => [w.id, w.hostId]));
  for (const m of plan.moves) where.set(m.workloadId, m.to);
  return where;
}
