import { status, type ServerUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { createLogger, type pb } from '@virtfleet/shared';
import { HostBookings } from '../scheduler/host-bookings.js';
import { hostSnapshot } from '../scheduler/host-snapshot.test-support.js';
import { testWorkload } from '../workloads/workload.test-support.js';
import type { Workload } from '../workloads/workload.js';
import { planRebalance } from './planner.js';
import { clusterInput, rebalanceHandlers, type RebalanceSource } from './rebalance-service.js';

/** The controller's view of a fleet: snapshots with the workloads' bookings, as `buildSnapshots` makes them. */
function source(workloads: Workload[], hostIds: string[], busy: string[] = [], down: string[] = []): RebalanceSource {
  const bookings = HostBookings.of(workloads);
  return {
    snapshots: () =>
      hostIds.map((id) => {
        const s = hostSnapshot(id, down.includes(id) ? { schedulable: false, unschedulableReason: 'down' } : {});
        bookings.applyTo(s);
        return s;
      }),
    workloads: () => workloads,
    isBusy: (id) => busy.includes(id),
    stoppedReservation: 'keep',
  };
}

const moving = (id: string, from: string, to: string) =>
  testWorkload(id, {
    hostId: from,
    migration: { id: 'mig-1', sourceHostId: from, targetHostId: to, mode: 'live', phase: 'transferring', startedAt: '', maxDowntimeMs: 0, bandwidthMiBs: 0, requestId: '' },
  });

describe('clusterInput', () => {
  it('lists every booking as the scheduler counts it, and pins what must stay', () => {
    const workloads = [
      testWorkload('run', { hostId: 'h1' }),
      testWorkload('stop', { hostId: 'h1', state: 'stopped', desiredState: 'stopped' }),
      testWorkload('gone', { hostId: 'h1', state: 'deleted', desiredState: 'deleted' }),
      testWorkload('pending', { hostId: '', state: 'pending' }),
      testWorkload('busy', { hostId: 'h2' }),
      moving('mig', 'h2', 'h3'),
      testWorkload('lost', { hostId: 'h4' }),
    ];
    const input = clusterInput(source(workloads, ['h1', 'h2', 'h3', 'h4'], ['busy'], ['h4']));
    expect(input.workloads.map((w) => [w.id, w.hostId, w.pinned])).toEqual([
      ['run', 'h1', undefined],
      ['stop', 'h1', 'stopped: only running and paused workloads move'],
      ['busy', 'h2', 'a command is under way'],
      ['mig', 'h2', 'migrating'],
      ['mig', 'h3', 'migrating here from h2'],
      ['lost', 'h4', 'its host is not up'],
    ]);
    // The planner accepts it: every host's bookings are listed.
    expect(planRebalance(input, { goal: 'consolidate' }).hostsUsedBefore).toBe(4);
  });
});

/** Calls PlanRebalance as grpc-js would, with the planner in this thread. */
function call(handlers: ReturnType<typeof rebalanceHandlers>, goal: string): Promise<pb.RebalancePlan> {
  return new Promise((resolve, reject) => {
    handlers.PlanRebalance({ request: { goal } } as ServerUnaryCall<pb.PlanRebalanceRequest__Output, pb.RebalancePlan>, (err: Partial<ServiceError> | null, value?: pb.RebalancePlan | null) =>
      err ? reject(err as Error) : resolve(value!),
    );
  });
}

describe('rebalanceHandlers', () => {
  const log = createLogger('rebalance-test', 'silent');
  const fleet = source([testWorkload('a', { hostId: 'h1' }), testWorkload('a2', { hostId: 'h1' }), testWorkload('b', { hostId: 'h2' })], ['h1', 'h2']);
  const handlers = rebalanceHandlers(fleet, log, (input, options) => Promise.resolve(planRebalance(input, options)));

  it('answers a plan with the wire names', async () => {
    const plan = await call(handlers, 'consolidate');
    expect(plan).toMatchObject({ goal: 'consolidate', hosts_used_before: 2, hosts_used_after: 1, moves: [{ workload_id: 'b', name: 'b', from: 'h2', to: 'h1' }], gain: { hosts_freed: 1, freed_hosts: ['h2'] } });
  });

  it('refuses an unknown goal with INVALID_ARGUMENT', async () => {
    await expect(call(handlers, 'shuffle')).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringMatching(/^goal: must be one of consolidate, balance/) });
  });
});
