import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, EVENT_TYPES, FailedPreconditionError, makeEvent, ResourceExhaustedError, UnavailableError, WORKLOAD_STATES, type CloudEvent, type pb, type WorkloadState, type WorkloadTelemetry } from '@virtfleet/shared';
import type { AgentAction, AgentClientPool } from '../dispatch/agent-client.js';
import { recordingEventSink } from '../events/event-sink.test-support.js';
import type { Host } from '../hosts/host.js';
import type { HostRegistry } from '../hosts/host-registry.js';
import { AdmissionQueue } from '../scheduler/admission-queue.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import { MemoryStateStore } from '../state/memory-state-store.test-support.js';
import { lifecycleVerdict } from './lifecycle-rules.js';
import type { DesiredState, Workload } from './workload.js';
import { WorkloadController } from './workload-controller.js';
import { testWorkload } from './workload.test-support.js';

const log = createLogger('test', 'silent');
const ACTIONS: AgentAction[] = ['start', 'stop', 'pause', 'resume', 'delete'];
const DESIRED: Record<WorkloadState, DesiredState> = {
  pending: 'running',
  creating: 'running',
  running: 'running',
  paused: 'paused',
  stopped: 'stopped',
  failed: 'running',
  deleting: 'deleted',
  deleted: 'deleted',
  unknown: 'running',
};

function workload(state: WorkloadState): Workload {
  return testWorkload(`w-${state}`, {
    hostId: state === 'pending' ? '' : 'h1',
    desiredState: DESIRED[state],
    state,
    message: `it is ${state}`,
    driverRef: 'ref',
    arrivalSeq: 1,
    arrivalMs: 1,
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-01T00:00:00.000Z',
  });
}

interface Harness {
  controller: WorkloadController;
  store: MemoryStateStore;
  agentCalls: { action: AgentAction; workloadId: string }[];
  /** Every event given to the log, in order. */
  events: CloudEvent<Record<string, unknown>>[];
}

/** A leading controller over an in-memory store, one host h1 and an agent that answers `agentAnswer` (and creates with `create`). */
async function harness(
  hostStatus: Host['status'],
  agentAnswer: (action: AgentAction, w: Workload) => pb.WorkloadStatus,
  create: (workloadId: string) => Promise<pb.WorkloadStatus> = () => Promise.reject(new Error('no create expected')),
): Promise<Harness> {
  const store = new MemoryStateStore();
  const agentCalls: Harness['agentCalls'] = [];
  const host = { id: 'h1', status: hostStatus, telemetry: { address: '127.0.0.1:1' } } as unknown as Host;
  const hosts = { get: (id: string) => (id === 'h1' ? host : undefined), list: () => [], restoreCordons: () => undefined } as unknown as HostRegistry;
  const agents = {
    for: () => ({
      act: (action: AgentAction, _commandId: string, workloadId: string) => {
        agentCalls.push({ action, workloadId });
        return Promise.resolve(agentAnswer(action, store.get(workloadId)!));
      },
      create: (_commandId: string, workloadId: string) => create(workloadId),
    }),
  } as unknown as AgentClientPool;
  const { sink, events } = recordingEventSink();
  const controller = new WorkloadController(store, hosts, undefined as unknown as Scheduler, new AdmissionQueue({ policy: 'fcfs', agingPerMinute: 0, backfill: true }), agents, sink, log);
  await controller.lead(3_600_000);
  controllers.push(controller);
  return { controller, store, agentCalls, events };
}

const controllers: WorkloadController[] = [];

async function waitForState(h: Harness, id: string, state: WorkloadState): Promise<void> {
  for (let i = 0; i < 100 && h.store.get(id)?.state !== state; i++) await new Promise((r) => setTimeout(r, 5));
  expect(h.store.get(id)?.state).toBe(state);
}
afterEach(async () => {
  for (const c of controllers.splice(0)) await c.stop();
});

const statusAfter = (action: AgentAction, w: Workload): pb.WorkloadStatus => ({
  workload_id: w.id,
  name: w.spec.name,
  kind: 'container',
  state: { start: 'running', stop: 'stopped', pause: 'paused', resume: 'running', delete: 'deleted' }[action],
  driver: 'fake',
  driver_ref: 'ref',
  message: '',
  cpu_percent: 0,
  memory_used_mib: 0,
});

/** `action` on `w` fails with `errorClass`, and neither the store nor the agent saw anything. */
async function expectRefusedWithoutWrites(hostStatus: Host['status'], action: AgentAction, w: Workload, errorClass: new (...args: never[]) => Error): Promise<void> {
  const h = await harness(hostStatus, statusAfter);
  await h.store.put(w);
  const before = h.store.workloads.get(w.id);
  const writes = h.store.writes;
  await expect(h.controller.act(action, w.id, '')).rejects.toBeInstanceOf(errorClass);
  expect(h.store.workloads.get(w.id)).toBe(before);
  expect(h.store.writes).toBe(writes);
  expect(h.agentCalls).toEqual([]);
}

const everyCase = ACTIONS.flatMap((action) => WORKLOAD_STATES.map((state) => ({ action, state })));

describe('WorkloadController.act: a refused request changes nothing', () => {
  const refused = everyCase.filter(({ action, state }) => lifecycleVerdict(action, workload(state)).kind === 'refuse');

  it('refuses the cases the issue reported', () => {
    expect(refused).toEqual(expect.arrayContaining([{ action: 'pause', state: 'stopped' }, { action: 'resume', state: 'stopped' }]));
  });

  it.each(refused)('$action on a $state workload: FAILED_PRECONDITION, no write, no agent call', async ({ action, state }) => {
    await expectRefusedWithoutWrites('up', action, workload(state), FailedPreconditionError);
  });

  const dispatched = everyCase.filter(({ action, state }) => lifecycleVerdict(action, workload(state)).kind === 'dispatch');

  it.each(dispatched)('$action on a $state workload that its agent refuses: the stored record is restored byte for byte', async ({ action, state }) => {
    const h = await harness('up', (a, w) => {
      throw new FailedPreconditionError(`workload ${w.id} cannot ${a} now`);
    });
    const w = workload(state);
    await h.store.put(w);
    const before = h.store.workloads.get(w.id);
    await expect(h.controller.act(action, w.id, '')).rejects.toBeInstanceOf(FailedPreconditionError);
    expect(h.agentCalls).toEqual([{ action, workloadId: w.id }]);
    expect(h.store.workloads.get(w.id)).toBe(before);
  });

  it.each(dispatched)('$action on a $state workload that its agent carries out: desired and observed state follow', async ({ action, state }) => {
    const h = await harness('up', statusAfter);
    const w = workload(state);
    await h.store.put(w);
    const after = await h.controller.act(action, w.id, '');
    expect(after.state).toBe(statusAfter(action, w).state);
    expect(after.desiredState).toBe({ start: 'running', stop: 'stopped', pause: 'paused', resume: 'running', delete: 'deleted' }[action]);
    expect(h.store.get(w.id)).toEqual(after);
  });

  it.each(ACTIONS.filter((a) => a !== 'delete'))('%s while the host is down: UNAVAILABLE, no write, no agent call', async (action) => {
    await expectRefusedWithoutWrites('down', action, workload('unknown'), UnavailableError);
  });
});

describe('WorkloadController.act: delete', () => {
  it('of a deleted workload succeeds by id and by name, and writes nothing', async () => {
    const h = await harness('up', statusAfter);
    const w = workload('deleted');
    await h.store.put(w);
    const writes = h.store.writes;
    expect((await h.controller.act('delete', w.id, '')).id).toBe(w.id);
    expect((await h.controller.act('delete', w.spec.name, '')).id).toBe(w.id);
    expect(h.store.writes).toBe(writes);
    expect(h.agentCalls).toEqual([]);
  });

  it('by name picks the live workload over an older deleted one of the same name', async () => {
    const h = await harness('up', statusAfter);
    const old = { ...workload('deleted'), id: 'w-old', spec: workload('running').spec };
    const live = workload('running');
    await h.store.put(old);
    await h.store.put(live);
    expect((await h.controller.act('delete', live.spec.name, '')).id).toBe(live.id);
    expect(h.agentCalls).toEqual([{ action: 'delete', workloadId: live.id }]);
  });

  it('while another command is in flight is accepted as the desired state and carried out when that command returns', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const h = await harness('up', statusAfter);
    const w = workload('running');
    await h.store.put(w);
    const agentFor = (h.controller as unknown as { agents: AgentClientPool }).agents;
    const plain = agentFor.for('h1', '');
    (agentFor as unknown as { for: () => unknown }).for = () => ({
      act: async (action: AgentAction, commandId: string, workloadId: string) => {
        if (action === 'stop') await held;
        return plain.act(action, commandId, workloadId);
      },
    });
    const stopping = h.controller.act('stop', w.id, '');
    const accepted = await h.controller.act('delete', w.id, '');
    expect(accepted).toMatchObject({ desiredState: 'deleted', state: 'running' });
    expect(h.agentCalls).toEqual([]);
    release();
    await stopping;
    await waitForState(h, w.id, 'deleted');
    expect(h.agentCalls).toEqual([
      { action: 'stop', workloadId: w.id },
      { action: 'delete', workloadId: w.id },
    ]);
  });

  it('on a down host is accepted at once; the copy is removed when the host returns', async () => {
    const h = await harness('down', statusAfter);
    const w = workload('unknown');
    await h.store.put(w);
    expect(await h.controller.act('delete', w.id, '')).toMatchObject({ desiredState: 'deleted', state: 'deleted' });
    expect(h.agentCalls).toEqual([]);
  });

  it('of a name that never existed is NOT_FOUND', async () => {
    const h = await harness('up', statusAfter);
    await expect(h.controller.act('delete', 'never-there', '')).rejects.toMatchObject({ name: 'NotFoundError' });
  });
});

describe('WorkloadController: a host that turns out to have no room', () => {
  it('sends the workload back to the queue, away from that host, instead of retrying there', async () => {
    const creates: string[] = [];
    const h = await harness('up', statusAfter, (workloadId) => {
      creates.push(workloadId);
      return Promise.reject(new ResourceExhaustedError("the VM's disks need 50.0 GiB and /var/lib/virtfleet/agent/vms has 3.2 GiB free"));
    });
    const w = { ...workload('creating'), id: 'w-full' };
    await h.store.put(w);
    await h.controller.recreate(w, 'test');
    const after = h.store.get('w-full')!;
    expect(creates).toEqual(['w-full']);
    expect(after).toMatchObject({ state: 'pending', hostId: '', leftHostId: 'h1' });
    expect(after.message).toMatch(/^rescheduling: host h1 had no room: the VM's disks need 50\.0 GiB/);
  });
});

describe('WorkloadController: events kept in the record, for a successor to send again', () => {
  it('a record keeps the events of its own change and only those; a request undone keeps none', async () => {
    const h = await harness('up', statusAfter);
    const submitted = await h.controller.submit('r1', testWorkload('c1').spec);
    expect(h.store.get(submitted.id)?.events?.map((e) => [e.type, e.id])).toEqual([[EVENT_TYPES.workloadSubmitted, h.events[0]!.id]]);

    const w = workload('running');
    // Made a minute ago: stored in the log long since.
    await h.store.put({ ...w, events: [{ ...makeEvent('old-leader', EVENT_TYPES.workloadStateChanged, w.id, { to: 'running' }), time: new Date(Date.now() - 60_000).toISOString() }] });
    await h.controller.act('stop', w.id, '');
    const stopped = h.events.at(-1)!;
    expect([stopped.type, stopped.data.to]).toEqual([EVENT_TYPES.workloadStateChanged, 'stopped']);
    expect(h.store.get(w.id)?.events, 'the stop announced one state change').toEqual([stopped]);

    // A change that announces nothing leaves no events in the record.
    const reported: WorkloadTelemetry = { workload_id: w.id, name: w.spec.name, kind: 'container', state: 'stopped', driver: 'fake', driver_ref: 'ref', cpu_percent: 0, memory_used_mib: 0, addresses: ['10.0.0.9'] };
    h.controller.onTelemetry({ id: 'h1', telemetry: { time: new Date().toISOString() } } as unknown as Host, [reported]);
    expect(h.store.get(w.id)).toMatchObject({ addresses: ['10.0.0.9'] });
    expect(h.store.get(w.id)?.events).toBeUndefined();
  });

  it('a record keeps the events of earlier changes that the log has not stored yet, and drops them once it has', async () => {
    const store = new MemoryStateStore();
    const { sink, events, storeHeld } = recordingEventSink('leader', { hold: true });
    const controller = new WorkloadController(store, { get: () => undefined, list: () => [], restoreCordons: () => undefined } as unknown as HostRegistry, undefined as unknown as Scheduler, new AdmissionQueue({ policy: 'fcfs', agingPerMinute: 0, backfill: true }), {} as AgentClientPool, sink, log);
    controllers.push(controller);
    await controller.lead(3_600_000);
    const w = await controller.submit('r1', testWorkload('c1').spec);
    // Deleted before placement: its own change, and the submit's event still on its way.
    await controller.act('delete', w.id, '');
    expect(store.get(w.id)?.events?.map((e) => e.type)).toEqual([EVENT_TYPES.workloadSubmitted, EVENT_TYPES.workloadDeleted]);
    expect(store.get(w.id)?.events).toEqual(events);
    storeHeld();
    controller.change(store.get(w.id)!, { message: 'later' });
    expect(store.get(w.id)?.events).toBeUndefined();
  });

  it('sends the events of a change once its record is stored, never before, and none for a write that failed', async () => {
    const h = await harness('up', statusAfter);
    const w = workload('running');
    await h.store.put(w);
    const sentBefore = h.events.length;
    const writes: { settle: (ok: boolean) => void }[] = [];
    const put = h.store.put.bind(h.store);
    h.store.put = (record) => new Promise<void>((resolve, reject) => writes.push({ settle: (ok) => (ok ? put(record).then(resolve) : reject(new Error('write dropped'))) }));

    const { stored } = h.controller.change(w, { state: 'stopped', message: 'by hand' });
    await new Promise((r) => setImmediate(r));
    expect(h.events.length, 'nothing sent while the write is out').toBe(sentBefore);
    writes[0]!.settle(true);
    await stored;
    await new Promise((r) => setImmediate(r));
    expect(h.events.slice(sentBefore).map((e) => e.data.to)).toEqual(['stopped']);

    const failed = h.controller.change(h.controller.get(w.id), { state: 'running', message: 'again' });
    writes[1]!.settle(false);
    await expect(failed.stored).rejects.toThrow('write dropped');
    await new Promise((r) => setImmediate(r));
    expect(h.events.slice(sentBefore).map((e) => e.data.to), 'the failed change announced nothing').toEqual(['stopped']);
  });

  it('undoing a refused request puts the record back without the events of its last change that reached the log, so they are never sent twice', async () => {
    const h = await harness('up', (a, w) => {
      throw new FailedPreconditionError(`workload ${w.id} cannot ${a} now`);
    });
    // Made a minute ago: stored in the log long since.
    const w = { ...workload('running'), events: [{ ...makeEvent('old-leader', EVENT_TYPES.workloadStateChanged, 'w-running', { to: 'running' }), time: new Date(Date.now() - 60_000).toISOString() }] };
    await h.store.put(w);
    await expect(h.controller.act('stop', w.id, '')).rejects.toBeInstanceOf(FailedPreconditionError);
    const { events: _sent, ...asBefore } = w;
    expect(h.store.get(w.id)).toEqual(asBefore);
  });

  it('a new leader sends again, ids kept and in order, the events of records stored in the last minute, and not older ones', async () => {
    const store = new MemoryStateStore();
    const at = (s: number) => new Date(Date.now() - s * 1000).toISOString();
    const event = (type: (typeof EVENT_TYPES)[keyof typeof EVENT_TYPES], subject: string, secondsAgo: number) => ({ ...makeEvent('old-leader', type, subject, { id: subject }), time: at(secondsAgo) });
    const a = [event(EVENT_TYPES.workloadPlaced, 'a', 3), event(EVENT_TYPES.workloadStateChanged, 'a', 3)];
    const b = [event(EVENT_TYPES.workloadSubmitted, 'b', 5)];
    const old = [event(EVENT_TYPES.workloadStateChanged, 'old', 90)];
    await store.put(testWorkload('a', { events: a }));
    await store.put(testWorkload('b', { events: b }));
    await store.put(testWorkload('old', { events: old }));
    await store.put(testWorkload('quiet'));
    store.storedAtMs.set('old', Date.now() - 90_000);
    const { sink, events } = recordingEventSink('new-leader');
    const controller = new WorkloadController(store, { get: () => undefined, list: () => [], restoreCordons: () => undefined } as unknown as HostRegistry, undefined as unknown as Scheduler, new AdmissionQueue({ policy: 'fcfs', agingPerMinute: 0, backfill: true }), {} as AgentClientPool, sink, log);
    controllers.push(controller);
    await controller.lead(3_600_000);
    expect(events).toEqual([...b, ...a]);
  });
});
