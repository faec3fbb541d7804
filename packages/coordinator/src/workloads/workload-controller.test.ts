import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, FailedPreconditionError, ResourceExhaustedError, UnavailableError, WORKLOAD_STATES, type pb, type WorkloadState } from '@virtfleet/shared';
import type { AgentAction, AgentClientPool } from '../dispatch/agent-client.js';
import type { EventSink } from '../events/event-log.js';
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
  const events: EventSink = { emit: (type, subject, data) => ({ specversion: '1.0', id: '1', source: 's', type, subject, time: '', datacontenttype: 'application/json', data }) };
  const controller = new WorkloadController(store, hosts, undefined as unknown as Scheduler, new AdmissionQueue({ policy: 'fcfs', agingPerMinute: 0, backfill: true }), agents, events, log);
  await controller.lead(3_600_000);
  controllers.push(controller);
  return { controller, store, agentCalls };
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
