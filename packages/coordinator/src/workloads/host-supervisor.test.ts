import { describe, expect, it } from 'vitest';
import { createLogger, parseWorkloadSpec, type RestartPolicy } from '@virtfleet/shared';
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
