import { describe, expect, it } from 'vitest';
import { createLogger, NotFoundError, parseWorkloadSpec, type pb, type RestartPolicy } from '@virtfleet/shared';
import { HostSupervisor, repairFor, type FenceOracle } from './host-supervisor.js';
import type { Workload } from './workload.js';

const log = createLogger('test', 'silent');

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
  const workload = (spec: Record<string, unknown>): Workload => ({
    id: 'w-1',
    spec: parseWorkloadSpec({ name: 'w', vcpus: 1, memory_mib: 64, ...spec }),
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
  });
  const container = { kind: 'container', image: 'busybox' };
  const vm = { kind: 'vm' };
  const supervisor = (fenced: boolean) => {
    const oracle: FenceOracle = { verdict: () => ({ fenced, detail: fenced ? 'lease lapsed' : 'it fences itself 6000 ms after its last lease renewal' }) };
    return new HostSupervisor(undefined as never, undefined as never, oracle, undefined as never, undefined as never, { ttlMs: 10_000, graceMs: 2_000, checkIntervalMs: 1_000, reconcileIntervalMs: 10_000 }, log);
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
  const placed = (id: string, extra: Partial<Workload> = {}): Workload => ({
    id,
    spec: parseWorkloadSpec({ name: id, kind: 'container', image: 'busybox', vcpus: 1, memory_mib: 64 }),
    hostId: 'h1',
    desiredState: 'running',
    state: 'running',
    message: '',
    driverRef: 'ref',
    requestId: '',
    arrivalSeq: 0,
    arrivalMs: 0,
    createdAt: '',
    updatedAt: '',
    ...extra,
  });
  const copy = (id: string, state: string): pb.WorkloadStatus__Output =>
    ({ workload_id: id, name: id, kind: 'container', state, driver: 'docker', driver_ref: 'ref', message: '', cpu_percent: 0, memory_used_mib: 0 }) as pb.WorkloadStatus__Output;

  /** One host `h1` whose agent lists `copies`; `repairFails` makes start/resume answer NOT_FOUND. */
  const run = async (workloads: Workload[], copies: pb.WorkloadStatus__Output[], options: { repairFails?: boolean; recovering?: boolean } = {}) => {
    const calls: string[] = [];
    const drift: string[] = [];
    const host = { id: 'h1', status: options.recovering ? 'recovering' : 'up', telemetry: { address: '127.0.0.1:1' } };
    const hosts = { get: () => host, list: () => [host], markReady: () => void calls.push('ready') };
    const agents = { for: () => ({ list: () => Promise.resolve(copies), act: (action: string, _c: string, id: string) => (calls.push(`agent ${action} ${id}`), Promise.resolve()) }) };
    const controller = {
      isLeader: true,
      find: (id: string) => workloads.find((w) => w.id === id),
      workloads: () => workloads,
      workloadsOn: (hostId: string) => workloads.filter((w) => w.hostId === hostId),
      isBusy: () => false,
      commandFinishedAt: () => 0,
      note: (w: Workload, patch: Partial<Workload>) => void calls.push(`note ${w.id} ${patch.state}`),
      repair: (w: Workload, action: string) => (calls.push(`repair ${action} ${w.id}`), options.repairFails ? Promise.reject(new NotFoundError('workload', w.id)) : Promise.resolve()),
      recreate: (w: Workload) => (calls.push(`recreate ${w.id}`), Promise.resolve()),
    };
    const events = { emit: (_type: string, subject: string, data: { drift: string; repair: string }) => void drift.push(`${subject} ${data.drift}/${data.repair}`) };
    const supervisor = new HostSupervisor(controller as never, hosts as never, { verdict: () => ({ fenced: false, detail: '' }) }, agents as never, events as never, { ttlMs: 10_000, graceMs: 2_000, checkIntervalMs: 1_000, reconcileIntervalMs: 60_000 }, log);
    supervisor.start();
    await supervisor.reconcileHost('h1');
    supervisor.stop();
    return { calls, drift };
  };

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

  it('leaves a workload whose create failed alone, and makes a recovering host ready once clean', async () => {
    const { calls, drift } = await run([placed('never-created', { state: 'failed', driverRef: '' })], [copy('stale', 'running')], { recovering: true });
    expect(drift).toEqual(['stale extra/delete']);
    expect(calls).toEqual(['agent delete stale', 'ready']);
  });
});
