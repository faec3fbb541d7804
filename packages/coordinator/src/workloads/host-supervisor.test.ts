import { describe, expect, it } from 'vitest';
import { createLogger, EVENT_TYPES, NotFoundError, parseWorkloadSpec, WorkloadView, type pb, type RestartPolicy, type WorkloadTelemetry } from '@virtfleet/shared';
import { createScheduler } from '../scheduler/create-scheduler.js';
import { hostSnapshot } from '../scheduler/host-snapshot.test-support.js';
import type { HostSnapshot } from '../scheduler/scheduler.js';
import { HostSupervisor, repairFor, type FenceOracle, type SupervisorSettings } from './host-supervisor.js';
import type { Workload } from './workload.js';
import { testWorkload } from './workload.test-support.js';

const log = createLogger('test', 'silent');
const SETTINGS: SupervisorSettings = {
  ttlMs: 10_000,
  graceMs: 2_000,
  checkIntervalMs: 1_000,
  reconcileIntervalMs: 10_000,
  reschedulesPerSecond: 10,
  rescheduleBurst: 10,
  secondaryReschedulesPerSecond: 1,
  partialDisruptionFraction: 0.3,
  smallClusterHosts: 3,
  maxDownFraction: 0.5,
};
const scheduler = () => createScheduler({ placement: 'binpack', weights: {}, candidateLimit: 0 });

describe('repairFor', () => {
  const cases: { desired: Workload['desiredState']; state: string; exit?: number; policy: RestartPolicy; want: string }[] = [
    { desired: 'running', state: 'running', policy: 'always', want: 'none' },
    { desired: 'running', state: 'paused', policy: 'never', want: 'resume' },
    { desired: 'paused', state: 'running', policy: 'never', want: 'pause' },
    { desired: 'stopped', state: 'running', policy: 'always', want: 'stop' },
    { desired: 'stopped', state: 'paused', policy: 'always', want: 'stop' },
    { desired: 'stopped', state: 'failed', policy: 'always', want: 'none' },
    { desired: 'running', state: 'stopped', exit: 0, policy: 'always', want: 'start' },
    { desired: 'running', state: 'stopped', exit: 0, policy: 'on-failure', want: 'accept' },
    { desired: 'running', state: 'stopped', exit: 3, policy: 'on-failure', want: 'start' },
    { desired: 'running', state: 'stopped', policy: 'on-failure', want: 'accept' },
    { desired: 'running', state: 'failed', policy: 'on-failure', want: 'start' },
    { desired: 'running', state: 'failed', policy: 'never', want: 'accept' },
    { desired: 'paused', state: 'stopped', exit: 1, policy: 'always', want: 'start' },
    { desired: 'running', state: 'unknown', policy: 'always', want: 'none' },
    { desired: 'running', state: 'creating', policy: 'always', want: 'none' },
    { desired: 'deleted', state: 'running', policy: 'always', want: 'none' },
  ];
  it.each(cases)('desired $desired, observed $state (exit $exit), policy $policy: $want', ({ desired, state, exit, policy, want }) => {
    expect(repairFor(desired, { state, ...(exit !== undefined ? { exit_code: exit } : {}) }, policy).action).toBe(want);
  });
});

describe('HostSupervisor.lostWorkloadVerdict', () => {
  // The spec's kind comes from each case; its name stays 'w'.
  const workload = (spec: Record<string, unknown>): Workload => testWorkload('w-1', {}, { name: 'w', kind: undefined, image: undefined, ...spec });
  const container = { kind: 'container', image: 'busybox' };
  const vm = { kind: 'vm' };
  const supervisor = (fenced: boolean) => {
    const oracle: FenceOracle = { verdict: () => ({ fenced, detail: fenced ? 'lease lapsed' : 'it fences itself 6000 ms after its last lease renewal' }) };
    return new HostSupervisor(undefined as never, undefined as never, oracle, undefined as never, undefined as never, scheduler(), SETTINGS, log);
  };
  const cases = [
    { name: 'a container within the grace period', spec: container, downForMs: 1_999, fenced: false, dead: false, move: false, reason: /rescheduling 2000 ms after that/ },
    { name: 'a container after the grace period', spec: container, downForMs: 2_000, fenced: false, dead: false, move: true, reason: /2000 ms grace/ },
    { name: 'a container with restart policy never', spec: { ...container, restart_policy: 'never' }, downForMs: 60_000, fenced: true, dead: true, move: false, reason: /restart policy never/ },
    { name: 'a VM on an unfenced host, however long it is down', spec: vm, downForMs: 600_000, fenced: false, dead: false, move: false, reason: /waits until the host is fenced: it fences itself 6000 ms/ },
    { name: 'a VM on a fenced host', spec: vm, downForMs: 0, fenced: true, dead: false, move: true, reason: /fenced: lease lapsed/ },
    { name: 'a VM on a host confirmed dead', spec: vm, downForMs: 0, fenced: false, dead: true, move: true, reason: /confirmed dead/ },
    { name: 'a container set to fence-first', spec: { ...container, failover: 'fence-first' }, downForMs: 600_000, fenced: false, dead: false, move: false, reason: /fence-first/ },
    { name: 'a VM set to reschedule', spec: { ...vm, failover: 'reschedule' }, downForMs: 2_000, fenced: false, dead: false, move: true, reason: /grace/ },
    { name: 'an on-failure VM on a fenced host (a lost host is a failure)', spec: { ...vm, restart_policy: 'on-failure' }, downForMs: 0, fenced: true, dead: false, move: true, reason: /fenced/ },
  ];
  it.each(cases)('$name: move $move', ({ spec, downForMs, fenced, dead, move, reason }) => {
    const verdict = supervisor(fenced).lostWorkloadVerdict(workload(spec), downForMs, dead);
    expect(verdict.move).toBe(move);
    expect(verdict.reason).toMatch(reason);
  });
});

describe('HostSupervisor.reconcileHost (fake host and controller)', () => {
  const placed = (id: string, extra: Partial<Workload> = {}): Workload => testWorkload(id, { driverRef: 'ref', ...extra });
  const copy = (id: string, state: string): pb.WorkloadStatus__Output =>
    ({ workload_id: id, name: id, kind: 'container', state, driver: 'docker', driver_ref: 'ref', message: '', cpu_percent: 0, memory_used_mib: 0 }) as pb.WorkloadStatus__Output;

  /** One host `h1` whose agent lists `copies`; `repairFails` makes start/resume answer NOT_FOUND. */
  const NOW = 5_000_000;
  /** Telemetry from h1: its copies, sampled and published so long before NOW (on the agent's clock), applied so long before NOW here. */
  interface TelemetryCase {
    copies: pb.WorkloadStatus__Output[];
    sampledAgoMs: number;
    publishedAgoMs: number;
    appliedAgoMs: number;
    /** A delta was missed since the last full list. */
    gap?: boolean;
  }
  const run = async (
    workloads: Workload[],
    copies: pb.WorkloadStatus__Output[],
    options: { repairFails?: boolean; recovering?: boolean; telemetry?: TelemetryCase; commandFinishedAt?: number } = {},
  ) => {
    const calls: string[] = [];
    const drift: string[] = [];
    // The agent's clock runs an hour ahead of this one: only spans measured on one clock may be compared.
    const agentIso = (agoMs: number) => new Date(NOW + 3_600_000 - agoMs).toISOString();
    const t = options.telemetry;
    const view = new WorkloadView();
    view.apply({ boot_id: 'b', seq: 0, workloads: (t?.copies ?? []) as WorkloadTelemetry[] });
    if (t?.gap) view.apply({ boot_id: 'b', seq: 2, workloads: [], workloads_base_seq: 1, workloads_removed: [] });
    const host = {
      id: 'h1',
      status: options.recovering ? 'recovering' : 'up',
      workloads: view,
      telemetry: { address: '127.0.0.1:1', ...(t ? { workloads_sampled_at: agentIso(t.sampledAgoMs), published_at: agentIso(t.publishedAgoMs) } : {}) },
      ...(t ? { telemetryAppliedMs: NOW - t.appliedAgoMs } : {}),
    };
    const hosts = { get: () => host, list: () => [host], markReady: () => void calls.push('ready') };
    const agents = { for: () => ({ list: () => (calls.push('agent list'), Promise.resolve(copies)), act: (action: string, _c: string, id: string) => (calls.push(`agent ${action} ${id}`), Promise.resolve()) }) };
    const controller = {
      isLeader: true,
      find: (id: string) => workloads.find((w) => w.id === id),
      workloads: () => workloads,
      workloadsOn: (hostId: string) => workloads.filter((w) => w.hostId === hostId),
      isBusy: () => false,
      commandFinishedAt: () => options.commandFinishedAt ?? 0,
      note: (w: Workload, patch: Partial<Workload>) => void calls.push(`note ${w.id} ${patch.state}`),
      repair: (w: Workload, action: string) => (calls.push(`repair ${action} ${w.id}`), options.repairFails ? Promise.reject(new NotFoundError('workload', w.id)) : Promise.resolve()),
      recreate: (w: Workload) => (calls.push(`recreate ${w.id}`), Promise.resolve()),
      reclaim: (w: Workload, hostId: string, state: string) => (calls.push(`reclaim ${w.id} on ${hostId} ${state}`), true),
    };
    const events = { emit: (_type: string, subject: string, data: { drift: string; repair: string }) => void drift.push(`${subject} ${data.drift}/${data.repair}`) };
    const supervisor = new HostSupervisor(controller as never, hosts as never, { verdict: () => ({ fenced: false, detail: '' }) }, agents as never, events as never, scheduler(), { ...SETTINGS, reconcileIntervalMs: 60_000 }, log, () => NOW);
    supervisor.start();
    await supervisor.reconcileHost('h1');
    supervisor.stop();
    return { calls: calls.filter((c) => c !== 'agent list'), drift, askedAgent: calls.includes('agent list') };
  };

  // 'gone' is placed on h1 and missing from every observation below; 'fine' runs. The agent's own listing is the same.
  const observed = [copy('fine', 'running')];
  const telemetryCases: { name: string; telemetry?: TelemetryCase; recovering?: boolean; commandFinishedAt?: number; askedAgent: boolean; recreated: boolean }[] = [
    { name: 'fresh telemetry, everything running: read from it', telemetry: { copies: observed, sampledAgoMs: 1_500, publishedAgoMs: 500, appliedAgoMs: 400 }, askedAgent: false, recreated: true },
    { name: 'no telemetry stamps (an older agent): the agent is asked', askedAgent: true, recreated: true },
    { name: 'telemetry older than the reconcile interval: the agent is asked', telemetry: { copies: observed, sampledAgoMs: 61_000, publishedAgoMs: 60_000, appliedAgoMs: 59_000 }, askedAgent: true, recreated: true },
    { name: 'a stopped copy in telemetry (no exit code there): the agent is asked', telemetry: { copies: [...observed, copy('other', 'stopped')], sampledAgoMs: 1_000, publishedAgoMs: 500, appliedAgoMs: 400 }, askedAgent: true, recreated: true },
    { name: 'a delta missed since the last full list: the agent is asked', telemetry: { copies: observed, sampledAgoMs: 1_500, publishedAgoMs: 500, appliedAgoMs: 400, gap: true }, askedAgent: true, recreated: true },
    { name: 'a recovering host: the agent is asked', telemetry: { copies: observed, sampledAgoMs: 1_000, publishedAgoMs: 500, appliedAgoMs: 400 }, recovering: true, askedAgent: true, recreated: true },
    // Observation began 1,500 - 500 = 1,000 ms before sending; arrived 400 ms ago; less the 2,000 ms margin: NOW - 3,400.
    { name: 'a command that finished after the observation began (margin included): not judged by it', telemetry: { copies: observed, sampledAgoMs: 1_500, publishedAgoMs: 500, appliedAgoMs: 400 }, commandFinishedAt: NOW - 3_399, askedAgent: false, recreated: false },
    { name: 'a command that finished before the observation began: judged by it', telemetry: { copies: observed, sampledAgoMs: 1_500, publishedAgoMs: 500, appliedAgoMs: 400 }, commandFinishedAt: NOW - 3_401, askedAgent: false, recreated: true },
  ];
  it.each(telemetryCases)('$name', async ({ telemetry, recovering, commandFinishedAt, askedAgent, recreated }) => {
    const result = await run([placed('gone'), placed('fine')], observed, { ...(telemetry ? { telemetry } : {}), ...(recovering ? { recovering } : {}), ...(commandFinishedAt !== undefined ? { commandFinishedAt } : {}) });
    expect(result.askedAgent).toBe(askedAgent);
    expect(result.calls.includes('recreate gone')).toBe(recreated);
  });

  it('re-creates a missing copy, deletes an extra one, and restarts a stopped one', async () => {
    const { calls, drift } = await run(
      [placed('gone'), placed('stopped'), placed('fine'), placed('moved', { hostId: 'h2' }), placed('deleted', { state: 'deleted', desiredState: 'deleted' })],
      [copy('stopped', 'stopped'), copy('fine', 'running'), copy('moved', 'running'), copy('deleted', 'running'), copy('stranger', 'running')],
    );
    expect(drift.sort()).toEqual(['deleted extra/delete', 'gone missing/create', 'moved extra/delete', 'stopped state/start', 'stranger extra/delete']);
    expect(calls.sort()).toEqual(['agent delete deleted', 'agent delete moved', 'agent delete stranger', 'recreate gone', 'repair start stopped']);
  });

  it('re-creates a copy that vanished between the listing and the repair', async () => {
    const { calls, drift } = await run([placed('racing')], [copy('racing', 'stopped')], { repairFails: true });
    expect(drift).toEqual(['racing state/start', 'racing missing/create']);
    expect(calls).toEqual(['repair start racing', 'recreate racing']);
  });

  it('a returning host keeps a copy whose workload is not yet confirmed running elsewhere, and reports it once', async () => {
    const { calls, drift } = await run(
      [placed('creating-elsewhere', { hostId: 'h2', state: 'creating' }), placed('queued', { hostId: '', state: 'pending' }), placed('running-elsewhere', { hostId: 'h2', state: 'running' })],
      [copy('creating-elsewhere', 'running'), copy('queued', 'running'), copy('running-elsewhere', 'running')],
      { recovering: true },
    );
    expect(drift.sort()).toEqual(['creating-elsewhere extra/none', 'queued extra/none', 'running-elsewhere extra/delete']);
    expect(calls).toEqual(['agent delete running-elsewhere', 'ready']);
  });

  it('a returning host takes back a running copy whose workload still waits in the queue after leaving it', async () => {
    const { calls, drift } = await run(
      [placed('left-here', { hostId: '', leftHostId: 'h1', state: 'pending' }), placed('left-elsewhere', { hostId: '', leftHostId: 'h3', state: 'pending' }), placed('stopped-here', { hostId: '', leftHostId: 'h1', state: 'pending' })],
      [copy('left-here', 'running'), copy('left-elsewhere', 'running'), copy('stopped-here', 'failed')],
      { recovering: true },
    );
    expect(calls).toEqual(['reclaim left-here on h1 running', 'ready']);
    // Neither of the others is deleted: each still waits for a placement.
    expect(drift.sort()).toEqual(['left-elsewhere extra/none', 'stopped-here extra/none']);
  });

  it('leaves a workload whose create failed alone, and makes a recovering host ready once clean', async () => {
    const { calls, drift } = await run([placed('never-created', { state: 'failed', driverRef: '' })], [copy('stale', 'running')], { recovering: true });
    expect(drift).toEqual(['stale extra/delete']);
    expect(calls).toEqual(['agent delete stale', 'ready']);
  });
});

describe('HostSupervisor.checkLostHosts (fake hosts and controller, real scheduler)', () => {
  const T0 = 1_000_000;
  const lostOn = (id: string, hostId: string, seq: number, spec: Record<string, unknown> = {}): Workload => ({
    id,
    spec: parseWorkloadSpec({ name: id, kind: 'container', image: 'busybox', vcpus: 1, memory_mib: 64, ...spec }),
    hostId,
    desiredState: 'running',
    state: 'unknown',
    message: '',
    driverRef: 'ref',
    requestId: '',
    arrivalSeq: seq,
    arrivalMs: 0,
    createdAt: '',
    updatedAt: '',
  });

  /**
   * Hosts by id with `true` for down (silent since long before T0). The
   * scheduler sees every host as a snapshot, down hosts schedulable too
   * unless `downUnschedulable`, so that only the avoid rule keeps a lost host
   * from being chosen.
   */
  const harness = (hostsDown: Record<string, boolean>, workloads: Workload[], settings: Partial<SupervisorSettings> = {}, snapshotOverrides: Record<string, Partial<HostSnapshot>> = {}) => {
    let now = T0;
    const rescheduled: { id: string; from: string; at: number }[] = [];
    const notes = new Map<string, string>();
    const events: { type: string; data: Record<string, unknown> }[] = [];
    const placedAvoiding: string[][] = [];
    const hostList = Object.entries(hostsDown).map(([id, down]) => ({ id, status: down ? 'down' : 'up', lastSeenMs: down ? T0 - 60_000 : T0, telemetry: { address: '127.0.0.1:1' } }));
    const hosts = { get: (id: string) => hostList.find((h) => h.id === id), list: () => hostList, markReady: () => undefined };
    const agents = { for: () => ({ list: () => Promise.resolve([]), act: () => Promise.resolve() }) };
    const controller = {
      isLeader: true,
      find: (id: string) => workloads.find((w) => w.id === id),
      workloads: () => workloads.filter((w) => w.hostId),
      workloadsOn: (hostId: string) => workloads.filter((w) => w.hostId === hostId),
      confirmedDead: () => new Set<string>(),
      isBusy: () => false,
      commandFinishedAt: () => 0,
      note: (w: Workload, patch: Partial<Workload>) => void notes.set(w.id, patch.message ?? ''),
      snapshots: () => Object.keys(hostsDown).map((id) => hostSnapshot(id, snapshotOverrides[id] ?? {})),
      reschedule: (w: Workload) => {
        rescheduled.push({ id: w.id, from: w.hostId, at: now });
        w.hostId = '';
        w.state = 'pending';
        return Promise.resolve();
      },
    };
    const real = scheduler();
    const spy = { place: (r: Parameters<typeof real.place>[0], h: Parameters<typeof real.place>[1]) => (placedAvoiding.push([...(r.avoidHosts ?? [])]), real.place(r, h)) };
    const sink = { emit: (type: string, _subject: string, data: Record<string, unknown>) => void events.push({ type, data }) };
    const supervisor = new HostSupervisor(
      controller as never,
      hosts as never,
      { verdict: () => ({ fenced: false, detail: 'not fenced' }) },
      agents as never,
      sink as never,
      spy,
      { ...SETTINGS, graceMs: 0, checkIntervalMs: 3_600_000, reconcileIntervalMs: 3_600_000, ...settings },
      log,
      () => now,
    );
    supervisor.start();
    return {
      supervisor,
      rescheduled,
      notes,
      events,
      placedAvoiding,
      hostList,
      at(ms: number) {
        now = T0 + ms;
        supervisor.checkLostHosts();
      },
    };
  };

  it('moves the workloads of one lost host of three, avoiding it, in arrival order', () => {
    const h = harness({ h1: true, h2: false, h3: false }, [lostOn('b', 'h1', 2), lostOn('a', 'h1', 1), lostOn('stays', 'h2', 3)]);
    h.at(0);
    h.supervisor.stop();
    expect(h.rescheduled.map((r) => `${r.id} from ${r.from}`)).toEqual(['a from h1', 'b from h1']);
    expect(h.placedAvoiding).toEqual([['h1'], ['h1']]);
    expect(h.events).toEqual([]);
  });

  it('never counts the host being left as a place to go: a lost host the scheduler would otherwise pick is not an eligible host', () => {
    // h1 is down but its snapshot looks free and schedulable, h2 is full: without the avoid rule h1 would be chosen.
    const h = harness({ h1: true, h2: false, h3: false }, [lostOn('w', 'h1', 1, { vcpus: 4 })], {}, { h2: { schedulable: false, unschedulableReason: 'cordoned' }, h3: { allocated: { vcpus: 8, memoryMiB: 0, diskGiB: 0 } } });
    h.at(0);
    h.supervisor.stop();
    expect(h.rescheduled).toEqual([]);
    expect(h.notes.get('w')).toBe('host h1 is down; not moved, as no other host could take it: 3 hosts: 1 being left by this workload, 1 cordoned, 1 insufficient cpu');
  });

  const noHost: { name: string; hosts: Record<string, boolean>; spec: Record<string, unknown>; why: RegExp }[] = [
    { name: 'the only host is lost', hosts: { h1: true }, spec: {}, why: /failover suspended: 1 of 1 host down/ },
    { name: 'the other host lacks the label the workload needs', hosts: { h1: true, h2: false }, spec: { host_selector: { zone: 'b' } }, why: /no other host could take it: 2 hosts: 1 being left by this workload, 1 / },
    { name: 'the other hosts are too small', hosts: { h1: true, h2: false, h3: false }, spec: { vcpus: 16 }, why: /no other host could take it: 3 hosts: / },
  ];
  it.each(noHost)('does not move a workload when no other host could take it: $name', ({ hosts, spec, why }) => {
    const h = harness(hosts, [lostOn('w', 'h1', 1, spec)]);
    h.at(0);
    h.supervisor.stop();
    expect(h.rescheduled).toEqual([]);
    expect(h.notes.get('w')).toMatch(why);
  });

  it('books each move on the snapshots, so a pass moves only what the other hosts can hold', () => {
    // h2 has 8 vCPUs; four 3-vCPU workloads: two fit.
    const h = harness({ h1: true, h2: false }, [1, 2, 3, 4].map((i) => lostOn(`w${i}`, 'h1', i, { vcpus: 3 })));
    h.at(0);
    h.supervisor.stop();
    expect(h.rescheduled.map((r) => r.id)).toEqual(['w1', 'w2']);
    expect(h.notes.get('w3')).toMatch(/no other host could take it: 2 hosts: 1 being left by this workload, 1 insufficient cpu/);
  });

  it('moves no faster than reschedulesPerSecond after the burst', () => {
    const h = harness({ h1: true, h2: false, h3: false }, [1, 2, 3, 4, 5, 6].map((i) => lostOn(`w${i}`, 'h1', i)), { reschedulesPerSecond: 2, rescheduleBurst: 2 });
    for (const ms of [0, 100, 499, 500, 999, 1000, 1400, 1500, 3000]) h.at(ms);
    h.supervisor.stop();
    expect(h.rescheduled.map((r) => [r.id, r.at - T0])).toEqual([
      ['w1', 0],
      ['w2', 0],
      ['w3', 500],
      ['w4', 1000],
      ['w5', 1500],
      ['w6', 3000],
    ]);
  });

  it('says a throttled workload waits its turn', () => {
    const h = harness({ h1: true, h2: false, h3: false }, [lostOn('first', 'h1', 1), lostOn('second', 'h1', 2)], { reschedulesPerSecond: 1, rescheduleBurst: 1 });
    h.at(0);
    h.supervisor.stop();
    expect(h.rescheduled.map((r) => r.id)).toEqual(['first']);
    expect(h.notes.get('second')).toBe('host h1 is down; waiting its turn (at most 1 reschedule per second)');
  });

  /** `n` hosts h0…h(n-1), the first `down` of them down. */
  const cluster = (n: number, down: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`h${i}`, i < down]));

  it('says a workload waiting in a partial disruption waits for the secondary rate', () => {
    const h = harness(cluster(10, 4), [lostOn('first', 'h0', 1), lostOn('second', 'h0', 2)], { rescheduleBurst: 1 });
    h.at(0);
    h.supervisor.stop();
    expect(h.rescheduled.map((r) => r.id)).toEqual(['first']);
    expect(h.notes.get('second')).toBe('host h0 is down; waiting its turn (at most 1 reschedule per second: partial disruption, 4 of 10 hosts down)');
  });

  it('slows to secondaryReschedulesPerSecond in a partial disruption and back, keeping the tokens earned across each switch', () => {
    // Ten hosts, four down: partial disruption, one a second. A burst of one makes each token visible.
    const h = harness(cluster(10, 4), [1, 2, 3, 4, 5, 6].map((i) => lostOn(`w${i}`, 'h0', i)), { reschedulesPerSecond: 10, secondaryReschedulesPerSecond: 1, rescheduleBurst: 1 });
    for (const ms of [0, 100, 999, 1000, 1400]) h.at(ms);
    // h1 and h2 return at 1500: two of ten down, back to ten a second. Half a token was earned at one a second
    // since 1000, so the next is due 50 ms later, not at once (a refilled bucket) nor 100 ms later (an emptied one).
    h.hostList[1]!.status = 'up';
    h.hostList[2]!.status = 'up';
    for (const ms of [1500, 1549, 1550, 1600, 1650]) h.at(ms);
    h.supervisor.stop();
    expect(h.rescheduled.map((r) => [r.id, r.at - T0])).toEqual([
      ['w1', 0],
      ['w2', 1000],
      ['w3', 1550],
      ['w4', 1650],
    ]);
    expect(h.events.map((e) => [e.type, e.data.mode, e.data.rate_per_second])).toEqual([
      [EVENT_TYPES.failoverSlowed, 'partial', 1],
      [EVENT_TYPES.failoverFullRate, 'normal', 10],
    ]);
    expect(h.events[0]!.data).toMatchObject({ down_hosts: ['h0', 'h1', 'h2', 'h3'], down: 4, total: 10, partial_disruption_fraction: 0.3, max_down_fraction: 0.5 });
  });

  const smallClusters: { name: string; settings: Partial<SupervisorSettings>; at: number[]; want: number[]; events: string[] }[] = [
    { name: 'within smallClusterHosts (the default 3): the primary rate', settings: {}, at: [0, 500, 1000], want: [0, 500, 1000], events: [] },
    { name: 'smallClusterHosts 0: the secondary rate', settings: { smallClusterHosts: 0 }, at: [0, 500, 1000, 1999, 2000, 4000], want: [0, 2000, 4000], events: [EVENT_TYPES.failoverSlowed] },
    { name: 'smallClusterHosts 2: a cluster of three is not small', settings: { smallClusterHosts: 2 }, at: [0, 500, 2000], want: [0, 2000], events: [EVENT_TYPES.failoverSlowed] },
    { name: 'partialDisruptionFraction 0.4: one of three is no partial disruption', settings: { smallClusterHosts: 0, partialDisruptionFraction: 0.4 }, at: [0, 500, 1000], want: [0, 500, 1000], events: [] },
  ];
  it.each(smallClusters)('one of three hosts lost, $name', ({ settings, at, want, events }) => {
    const h = harness(cluster(3, 1), [1, 2, 3].map((i) => lostOn(`w${i}`, 'h0', i)), { reschedulesPerSecond: 2, secondaryReschedulesPerSecond: 0.5, rescheduleBurst: 1, ...settings });
    for (const ms of at) h.at(ms);
    h.supervisor.stop();
    expect(h.rescheduled.map((r) => r.at - T0)).toEqual(want);
    expect(h.events.map((e) => e.type)).toEqual(events);
  });

  it('emits one event per change of mode, and resumes at the rate the disruption calls for', () => {
    // Ten hosts, no workloads: only the mode is watched. Each step sets how many are down.
    const steps: { down: number; want?: [string, string] }[] = [
      { down: 1 },
      { down: 4, want: [EVENT_TYPES.failoverSlowed, 'partial'] },
      { down: 5 },
      { down: 6, want: [EVENT_TYPES.failoverSuspended, 'suspended'] },
      { down: 4, want: [EVENT_TYPES.failoverResumed, 'partial'] },
      { down: 2, want: [EVENT_TYPES.failoverFullRate, 'normal'] },
      { down: 7, want: [EVENT_TYPES.failoverSuspended, 'suspended'] },
      { down: 3, want: [EVENT_TYPES.failoverResumed, 'normal'] },
      { down: 3 },
    ];
    const h = harness(cluster(10, 0), []);
    steps.forEach(({ down }, i) => {
      h.hostList.forEach((host, j) => (host.status = j < down ? 'down' : 'up'));
      h.at(i * 1000);
    });
    h.supervisor.stop();
    expect(h.events.map((e) => [e.type, e.data.mode])).toEqual(steps.flatMap((s) => (s.want ? [s.want] : [])));
  });

  it('suspends failover while more than maxDownFraction of the hosts are down, with one event per change', () => {
    const h = harness({ h1: true, h2: true, h3: false }, [lostOn('a', 'h1', 1), lostOn('b', 'h2', 2)]);
    h.at(0);
    h.at(1000);
    expect(h.rescheduled).toEqual([]);
    expect(h.notes.get('a')).toMatch(/^host h1 is down; failover suspended: 2 of 3 hosts down \(h1, h2\), more than failover.maxDownFraction 0.5/);
    expect(h.events).toEqual([{ type: EVENT_TYPES.failoverSuspended, data: expect.objectContaining({ down_hosts: ['h1', 'h2'], down: 2, total: 3, max_down_fraction: 0.5 }) }]);
    // h2 comes back (and takes no work of its own): one of three is down, so h1's workload moves.
    h.hostList[1]!.status = 'up';
    h.at(2000);
    h.at(3000);
    h.supervisor.stop();
    expect(h.events.map((e) => e.type)).toEqual([EVENT_TYPES.failoverSuspended, EVENT_TYPES.failoverResumed]);
    expect(h.rescheduled.map((r) => `${r.id} from ${r.from}`)).toEqual(['a from h1']);
  });
});

describe('HostSupervisor.keepReason (a returning host deletes a copy only once another copy runs)', () => {
  const moved = (hostId: string, state: Workload['state']): Workload => testWorkload('w', { hostId, state });
  const MAY_GO = /^\(none: it may be deleted\)$/;
  const cases: { name: string; hostId: string; state: Workload['state']; otherHost: 'up' | 'down'; keep: RegExp }[] = [
    { name: 'running elsewhere', hostId: 'h2', state: 'running', otherHost: 'up', keep: MAY_GO },
    { name: 'paused elsewhere', hostId: 'h2', state: 'paused', otherHost: 'up', keep: MAY_GO },
    { name: 'waiting in the queue', hostId: '', state: 'pending', otherHost: 'up', keep: /not placed yet/ },
    { name: 'being created elsewhere', hostId: 'h2', state: 'creating', otherHost: 'up', keep: /on h2 is creating, not confirmed running/ },
    { name: 'failed elsewhere', hostId: 'h2', state: 'failed', otherHost: 'up', keep: /on h2 is failed/ },
    { name: 'placed on a host that is down too', hostId: 'h2', state: 'unknown', otherHost: 'down', keep: /host h2 is down/ },
  ];
  it.each(cases)('$name: keep $keep', ({ hostId, state, otherHost, keep }) => {
    const hosts = { get: (id: string) => ({ id, status: otherHost }) };
    const supervisor = new HostSupervisor(undefined as never, hosts as never, { verdict: () => ({ fenced: false, detail: '' }) }, undefined as never, undefined as never, scheduler(), SETTINGS, log);
    expect(supervisor.keepReason(moved(hostId, state)) ?? '(none: it may be deleted)').toMatch(keep);
  });
});
