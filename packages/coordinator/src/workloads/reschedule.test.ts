import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, parseWorkloadSpec } from '@virtfleet/shared';
import type { AgentClientPool } from '../dispatch/agent-client.js';
import { recordingEventSink } from '../events/event-sink.test-support.js';
import type { HostRegistry } from '../hosts/host-registry.js';
import { AdmissionQueue } from '../scheduler/admission-queue.js';
import { createScheduler } from '../scheduler/create-scheduler.js';
import { hostSnapshot } from '../scheduler/host-snapshot.test-support.js';
import { MemoryStateStore } from '../state/memory-state-store.test-support.js';
import type { Workload } from './workload.js';
import { WorkloadController } from './workload-controller.js';

// The workload controller's side of failover: a rescheduled workload avoids the host it left, also after a
// leader change, and a reschedule not yet placed is called off when that host returns still running the copy.
const log = createLogger('test', 'silent');
const controllers: WorkloadController[] = [];
afterEach(async () => {
  for (const c of controllers.splice(0)) await c.stop();
});

const onH1: Workload = {
  id: 'w',
  spec: parseWorkloadSpec({ name: 'w', kind: 'container', image: 'busybox', vcpus: 1, memory_mib: 64 }),
  hostId: 'h1',
  desiredState: 'running',
  state: 'unknown',
  message: 'host h1 is down',
  driverRef: 'ref',
  requestId: '',
  arrivalSeq: 1,
  arrivalMs: 1,
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
};

/** A leading controller whose queue the test passes itself; no hosts are registered, so it places nothing on its own. */
async function leading(store: MemoryStateStore) {
  const queue = new AdmissionQueue({ policy: 'fcfs', agingPerMinute: 0, backfill: true });
  const hosts = { get: () => undefined, list: () => [], restoreCordons: () => undefined } as unknown as HostRegistry;
  const { sink: events } = recordingEventSink();
  const controller = new WorkloadController(store, hosts, createScheduler({ placement: 'binpack', weights: {}, candidateLimit: 0 }), queue, {} as AgentClientPool, events, log);
  await controller.lead(3_600_000);
  controllers.push(controller);
  return { controller, queue };
}

/** Where one pass would place the queue against two empty, schedulable hosts h1 and h2. */
const placedOn = (queue: AdmissionQueue) =>
  queue.pass(createScheduler({ placement: 'binpack', weights: {}, candidateLimit: 0 }), [hostSnapshot('h1'), hostSnapshot('h2')], 10).placed.map((p) => p.record.hostId);

describe('WorkloadController.reschedule and reclaim', () => {
  it('queues a rescheduled workload to avoid the host it left, and a new leader restores that', async () => {
    const store = new MemoryStateStore();
    await store.put(onH1);
    const first = await leading(store);
    await first.controller.reschedule(store.get('w')!, 'host h1 lost');
    expect(store.get('w')).toMatchObject({ state: 'pending', hostId: '', leftHostId: 'h1' });
    expect(first.queue.ordered(10)[0]?.avoidHosts).toEqual(['h1']);
    // Binpack's tie goes to the lower id, h1; the avoid rule sends it to h2.
    expect(placedOn(first.queue)).toEqual(['h2']);

    await first.controller.follow();
    const second = await leading(store);
    expect(placedOn(second.queue)).toEqual(['h2']);
  });

  it('takes a workload still in the queue back onto the host it left, and nothing else', async () => {
    const store = new MemoryStateStore();
    await store.put(onH1);
    const { controller, queue } = await leading(store);
    await controller.reschedule(store.get('w')!, 'host h1 lost');
    expect(controller.reclaim(store.get('w')!, 'h2', 'running', 'ref-2'), 'not the host it left').toBe(false);
    expect(controller.reclaim(store.get('w')!, 'h1', 'running', 'ref-1')).toBe(true);
    expect(store.get('w')).toMatchObject({ state: 'running', hostId: 'h1', driverRef: 'ref-1' });
    expect(queue.size).toBe(0);
    expect(controller.reclaim(store.get('w')!, 'h1', 'running', 'ref-1'), 'no longer pending').toBe(false);
  });
});
