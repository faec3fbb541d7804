import { afterEach, describe, expect, it } from 'vitest';
import { EVENT_TYPES, FailedPreconditionError, NotFoundError } from '@virtfleet/shared';
import { MemoryStateStore } from '../state/memory-state-store.test-support.js';
import type { WorkloadMigration } from '../workloads/workload.js';
import { testWorkload } from '../workloads/workload.test-support.js';
import { MAX_DRAIN_WORKLOADS, type DrainRequest, type HostDrain } from './host-drainer.js';
import { controllers, harness, sleep, type Harness, type Plan } from './host-drainer.test-support.js';

afterEach(async () => {
  for (const c of controllers.splice(0)) await c.stop();
});

const vmSpec = { kind: 'vm', image: '/images/vm.qcow2' };
const vm = (id: string, spec: Record<string, unknown> = {}, arrivalSeq = 0) => testWorkload(id, { arrivalSeq }, { ...vmSpec, ...spec });
const container = (id: string, spec: Record<string, unknown> = {}, arrivalSeq = 0) => testWorkload(id, { arrivalSeq }, spec);
const request = (overrides: Partial<DrainRequest> = {}): DrainRequest => ({ requestId: 'r1', parallel: 2, deadlineMs: 0, mode: 'auto', ...overrides });
const CONTAINER_REFUSAL = 'workload c is a container; only VMs migrate, and only live';

async function drained(h: Harness, hostId = 'h1'): Promise<HostDrain> {
  await h.drainer.idle();
  return h.drainer.get(hostId);
}

describe('HostDrainer', () => {
  it.each([
    { name: 'a VM that moves', w: vm('w'), plan: { to: 'h2' }, outcome: 'moved', onHost: 'h2', reason: /migrated from h1 to h2/, tried: true, state: 'drained' },
    { name: 'a container the migrator refuses', w: container('w'), plan: { refuse: CONTAINER_REFUSAL }, outcome: 'refused', onHost: '', reason: /only VMs migrate/, tried: true, state: 'incomplete' },
    { name: 'a VM with restart_policy never', w: vm('w', { restart_policy: 'never' }), plan: { to: 'h2' }, outcome: 'never', onHost: '', reason: /restart_policy: never/, tried: false, state: 'incomplete' },
    { name: 'a container with restart_policy never', w: container('w', { restart_policy: 'never' }), plan: { refuse: CONTAINER_REFUSAL }, outcome: 'never', onHost: '', reason: /restart_policy: never/, tried: false, state: 'incomplete' },
    { name: 'a VM no other host can take', w: vm('w'), plan: { refuse: 'no host can take workload w: 2 hosts: 2 insufficient memory' }, outcome: 'no_host', onHost: '', reason: /2 insufficient memory/, tried: true, state: 'incomplete' },
    { name: 'a VM whose migration fails', w: vm('w'), plan: { fail: 'connection reset' }, outcome: 'failed', onHost: '', reason: /migration to h2 failed: connection reset; it runs on h1/, tried: true, state: 'incomplete' },
  ] as const)('$name: $outcome, and the drain ends $state with the host cordoned', async ({ w, plan, outcome, onHost, reason, tried, state }) => {
    const h = await harness(() => plan, [w]);
    const started = await h.drainer.start('h1', request({ mode: 'live' }));
    expect([started.state, started.workloads.map((x) => x.outcome)]).toEqual(['draining', ['waiting']]);
    const d = await drained(h);
    expect(d.workloads).toEqual([expect.objectContaining({ workloadId: 'w', outcome, hostId: onHost, reason: expect.stringMatching(reason) })]);
    expect(d.state).toBe(state);
    expect([h.registry.get('h1')?.cordoned, h.store.hostsMarked('cordon')]).toEqual([true, ['h1']]);
    // A move that fails is made once more (under its own request id) before the workload counts as failed.
    const requestIds = !tried ? [] : outcome === 'failed' ? [`${d.id}.w`, `${d.id}.w.2`] : [`${d.id}.w`];
    expect(h.migrator.calls).toEqual(requestIds.map((requestId) => ({ requestId, targetHostId: '', mode: 'live', maxDowntimeMs: 0, bandwidthMiBs: 0 })));
    expect(h.store.operations<HostDrain>('drain').get('h1'), 'the stored record is the last one').toEqual(d);
    expect(h.events.map((e) => e.type)).toEqual([
      EVENT_TYPES.hostCordoned,
      EVENT_TYPES.hostDrainStarted,
      ...(outcome === 'moved' ? [EVENT_TYPES.hostDrainProgress] : outcome === 'failed' ? [EVENT_TYPES.hostDrainProgress, EVENT_TYPES.hostDrainProgress] : []),
      EVENT_TYPES.hostDrainProgress,
      EVENT_TYPES.hostDrainEnded,
    ]);
    expect(h.events.at(-2)?.data).toMatchObject({ id: 'h1', drain_id: d.id, workload_id: 'w', outcome });
    expect(h.events.at(-1)?.data).toMatchObject({ id: 'h1', state, moved: outcome === 'moved' ? 1 : 0, left: outcome === 'moved' ? [] : [{ workload_id: 'w', outcome }] });
  });

  it('makes a move again when the first one ended with the workload still on the host, and counts it moved', async () => {
    let tries = 0;
    const h = await harness(() => (++tries === 1 ? { fail: 'the coordinator leading it stopped before it finished' } : { to: 'h2' }), [vm('w')]);
    await h.drainer.start('h1', request({ mode: 'live' }));
    const d = await drained(h);
    expect([d.state, d.workloads.map((x) => [x.outcome, x.hostId])]).toEqual(['drained', [['moved', 'h2']]]);
    expect(h.migrator.calls.map((c) => c.requestId)).toEqual([`${d.id}.w`, `${d.id}.w.2`]);
  });

  it('drains a mixed host: moves what may move, lists what is left and why, and counts them', async () => {
    const plans: Record<string, Plan> = { v1: { to: 'h2' }, v2: { to: 'h3' }, c1: { refuse: CONTAINER_REFUSAL }, v3: { refuse: 'no host can take workload v3: 2 hosts: 2 insufficient memory' } };
    const h = await harness((w) => plans[w.id] ?? { refuse: 'unexpected' }, [vm('v1', {}, 1), container('c1', {}, 2), vm('n1', { restart_policy: 'never' }, 3), vm('v2', {}, 4), vm('v3', {}, 5)]);
    await h.drainer.start('h1', request());
    const d = await drained(h);
    expect(d.workloads.map((w) => [w.workloadId, w.outcome, w.hostId])).toEqual([
      ['v1', 'moved', 'h2'],
      ['c1', 'refused', ''],
      ['n1', 'never', ''],
      ['v2', 'moved', 'h3'],
      ['v3', 'no_host', ''],
    ]);
    expect([d.state, d.message]).toEqual(['incomplete', expect.stringMatching(/^3 workload\(s\) left on host h1, which stays cordoned: c1 \(refused: .*only VMs migrate.*\), n1 \(never: restart_policy: never\), v3 \(no_host: /)]);
    expect(h.controller.workloadsOn('h1').map((w) => w.id).sort()).toEqual(['c1', 'n1', 'v3']);
    expect(h.events.find((e) => e.type === EVENT_TYPES.hostDrainEnded)?.data).toMatchObject({ state: 'incomplete', total: 5, moved: 2 });
  });

  it.each([
    { parallel: 1, want: 1 },
    { parallel: 2, want: 2 },
    { parallel: 8, want: 5 },
  ])('runs at most $parallel migrations at once ($want with 5 VMs)', async ({ parallel, want }) => {
    const ids = ['a', 'b', 'c', 'd', 'e'];
    const h = await harness(() => ({ to: 'h2', ms: 20 }), ids.map((id, i) => vm(id, {}, i)));
    await h.drainer.start('h1', request({ parallel }));
    const d = await drained(h);
    expect([d.state, h.migrator.maxInFlight, h.migrator.startedIds]).toEqual(['drained', want, ids]);
  });

  it('starts no move after the deadline and reports the rest as not tried; the move under way finishes', async () => {
    let release = () => undefined as void;
    const gate = new Promise<void>((r) => (release = r));
    const h = await harness(() => ({ to: 'h2', gate }), [vm('a', {}, 1), vm('b', {}, 2), vm('c', {}, 3)]);
    await h.drainer.start('h1', request({ parallel: 1, deadlineMs: 60_000 }));
    await expect.poll(() => h.migrator.startedIds).toEqual(['a']);
    h.advance(60_000);
    release();
    const d = await drained(h);
    expect(d.workloads.map((w) => [w.workloadId, w.outcome])).toEqual([
      ['a', 'moved'],
      ['b', 'not_tried'],
      ['c', 'not_tried'],
    ]);
    expect(d.workloads[1]?.reason).toBe('the deadline 2025-01-01T00:01:00.000Z passed before its turn');
    expect([d.state, d.message, h.registry.get('h1')?.cordoned]).toEqual(['deadline_exceeded', expect.stringMatching(/with 2 workload\(s\) not tried; 2 still on host h1/), true]);
    expect(h.migrator.startedIds).toEqual(['a']);
  });

  it.each([
    { name: 'undrain', stop: (h: Harness) => h.drainer.undrain('h1'), message: 'stopped by host undrain' },
    { name: 'an uncordon', stop: (h: Harness) => Promise.resolve(h.controller.cordon('h1', false)), message: 'the host was uncordoned' },
  ])('stops on $name: the move under way finishes, no other starts, and the host is schedulable', async ({ stop, message }) => {
    let release = () => undefined as void;
    const gate = new Promise<void>((r) => (release = r));
    const h = await harness(() => ({ to: 'h2', gate }), [vm('a', {}, 1), vm('b', {}, 2)]);
    await h.drainer.start('h1', request({ parallel: 1 }));
    await expect.poll(() => h.migrator.startedIds).toEqual(['a']);
    await stop(h);
    release();
    const d = await drained(h);
    expect([d.state, d.workloads.map((w) => [w.workloadId, w.outcome])]).toEqual(['cancelled', [['a', 'moved'], ['b', 'not_tried']]]);
    expect(d.message).toBe(`${message}; 1 workload(s) still on host h1`);
    expect([h.registry.get('h1')?.cordoned, h.store.hostsMarked('cordon'), h.migrator.startedIds]).toEqual([false, [], ['a']]);
  });

  it('drains an empty host at once: the answer says drained, and the host is cordoned', async () => {
    const h = await harness(() => ({ refuse: 'unexpected' }));
    const d = await h.drainer.start('h1', request());
    expect([d.state, d.endedAt, d.workloads, h.registry.get('h1')?.cordoned]).toEqual(['drained', d.startedAt, [], true]);
    expect(h.events.map((e) => e.type)).toEqual([EVENT_TYPES.hostCordoned, EVENT_TYPES.hostDrainStarted, EVENT_TYPES.hostDrainEnded]);
  });

  it('answers a repeat of the request id with the drain under way, and refuses another drain of the host meanwhile, changing nothing', async () => {
    let release = () => undefined as void;
    const gate = new Promise<void>((r) => (release = r));
    const h = await harness(() => ({ to: 'h2', gate }), [vm('a')]);
    const first = await h.drainer.start('h1', request({ requestId: 'r1' }));
    const again = await h.drainer.start('h1', request({ requestId: 'r1' }));
    expect(again.id).toBe(first.id);
    await expect.poll(() => h.store.operations<HostDrain>('drain').get('h1')?.workloads[0]?.outcome).toBe('moving');
    const writes = h.store.writes;
    await expect(h.drainer.start('h1', request({ requestId: 'r2' }))).rejects.toThrow(new RegExp(`host h1 is being drained already \\(${first.id}, since `));
    expect(h.store.writes).toBe(writes);
    release();
    expect((await drained(h)).state).toBe('drained');
    expect(h.events.filter((e) => e.type === EVENT_TYPES.hostDrainStarted)).toHaveLength(1);
  });

  it.each([
    { name: 'an unknown host', host: 'h9', down: false, workloads: 1, error: NotFoundError },
    { name: 'a host that is down', host: 'h1', down: true, workloads: 1, error: FailedPreconditionError },
    { name: 'a host with more workloads than one drain takes', host: 'h1', down: false, workloads: MAX_DRAIN_WORKLOADS + 1, error: FailedPreconditionError },
  ])('refuses to drain $name and changes nothing', async ({ host, down, workloads, error }) => {
    const h = await harness(() => ({ to: 'h2' }), Array.from({ length: workloads }, (_, i) => container(`c${i}`, {}, i)));
    if (down) {
      h.advance(10_001);
      h.registry.sweep();
    }
    const writes = h.store.writes;
    await expect(h.drainer.start(host, request())).rejects.toBeInstanceOf(error);
    expect([h.store.writes, h.store.hostsMarked('cordon'), h.events.filter((e) => e.type.startsWith('io.virtfleet.host.drain'))]).toEqual([writes, [], []]);
  });

  it('carries on after a change of leader: follows the move its predecessor started and takes the workloads not tried yet', async () => {
    const store = new MemoryStateStore();
    const migration: WorkloadMigration = { id: 'm0', sourceHostId: 'h1', targetHostId: 'h2', mode: 'live', phase: 'transferring', startedAt: '', maxDowntimeMs: 0, bandwidthMiBs: 0, requestId: 'drain-old.a' };
    const item = (workloadId: string, outcome: 'moving' | 'waiting') => ({ workloadId, name: workloadId, kind: 'vm', outcome, hostId: outcome === 'moving' ? 'h2' : '', reason: '', updatedAt: '' });
    const record: HostDrain = { id: 'drain-old', hostId: 'h1', requestId: 'r0', state: 'draining', mode: 'auto', parallel: 1, startedAt: '2025-01-01T00:00:00.000Z', message: '', workloads: [item('a', 'moving'), item('b', 'waiting')] };
    await store.putOperation('drain', 'h1', record);
    const h = await harness(() => ({ to: 'h3' }), [vm('a', {}, 1), vm('b', {}, 2)], store);
    h.controller.change(h.controller.get('a'), { migration });
    h.controller.cordon('h1', true);
    h.drainer.resume();
    expect((await h.drainer.get('h1')).id).toBe('drain-old');
    // The migrator settles the predecessor's migration; the drainer waits for that, then takes b.
    await sleep(20);
    expect(h.migrator.startedIds).toEqual([]);
    h.controller.change(h.controller.get('a'), { hostId: 'h2', migration: undefined, message: 'migrated from h1 to h2' });
    await expect.poll(async () => (await h.drainer.get('h1')).state).toBe('drained');
    const d = await drained(h);
    expect(d.workloads.map((w) => [w.workloadId, w.outcome, w.hostId])).toEqual([
      ['a', 'moved', 'h2'],
      ['b', 'moved', 'h3'],
    ]);
    expect(h.migrator.startedIds).toEqual(['b']);
  });
});
