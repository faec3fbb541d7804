import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, type pb } from '@virtfleet/shared';
import { EXIT } from '../exit-codes.js';
import { DrainProgress, drainLine, drainOutcome, parseDuration, progressBar } from './host-maintenance.js';

const item = (workload_id: string, outcome: string, host_id = '', reason = ''): pb.HostDrainWorkload__Output => ({ workload_id, name: workload_id.split('-')[0]!, kind: 'vm', outcome, host_id, reason, updated_at: '' });

function drain(state: string, workloads: pb.HostDrainWorkload__Output[], message = ''): pb.HostDrain__Output {
  const count = (...outcomes: string[]) => workloads.filter((w) => outcomes.includes(w.outcome)).length;
  return {
    host_id: 'h1',
    id: 'drain-1',
    state,
    mode: 'auto',
    parallel: 2,
    started_at: '',
    deadline: '',
    ended_at: '',
    message,
    workloads,
    moved: count('moved'),
    left: count('never', 'no_host', 'refused', 'failed', 'not_tried'),
    moving: count('moving'),
    waiting: count('waiting'),
  };
}

describe('parseDuration (--deadline)', () => {
  it.each([
    ['90', 90],
    ['90s', 90],
    ['30m', 1800],
    ['2h', 7200],
    ['1h30m', 5400],
    ['7d', 604_800],
  ])('%s is %i s', (given, want) => {
    expect(parseDuration(given)).toBe(want);
  });
  it.each(['0', '0s', '8d', '1.5h', '30 m', 'soon', '', 'm'])('rejects %j naming --deadline', (given) => {
    expect(() => parseDuration(given)).toThrow(InvalidArgumentError);
    expect(() => parseDuration(given)).toThrow(/^--deadline: must be a duration from 1s to 7d/);
  });
});

describe('drainLine', () => {
  it.each([
    [item('web-1', 'moving', 'h2'), 'web (vm, web-1): moving to h2'],
    [item('web-1', 'moved', 'h2'), 'web (vm, web-1): moved to h2'],
    [item('db-1', 'never'), 'db (vm, db-1): left: restart_policy never'],
    [item('big-1', 'no_host', '', '3 hosts: 3 insufficient memory'), 'big (vm, big-1): left: no host fits: 3 hosts: 3 insufficient memory'],
    [item('c-1', 'refused', '', 'only VMs migrate'), 'c (vm, c-1): left: cannot move: only VMs migrate'],
    [item('v-1', 'failed', '', 'migration to h2 failed: reset'), 'v (vm, v-1): left: failed: migration to h2 failed: reset'],
    [item('v-2', 'not_tried', '', 'the deadline passed before its turn'), 'v (vm, v-2): left: not tried: the deadline passed before its turn'],
    [item('g-1', 'gone', '', 'deleted'), 'g (vm, g-1): gone: deleted'],
  ])('%o', (w, want) => {
    expect(drainLine(w)).toBe(want);
  });
});

describe('progressBar', () => {
  it.each([
    { name: 'nothing done', d: drain('draining', [item('a-1', 'waiting'), item('b-1', 'moving', 'h2')]), want: '[--------] 0/2  moved 0, left 0, moving 1, waiting 1' },
    { name: 'half done', d: drain('draining', [item('a-1', 'moved', 'h2'), item('b-1', 'moving', 'h2')]), want: '[####----] 1/2  moved 1, left 0, moving 1, waiting 0' },
    { name: 'all done', d: drain('incomplete', [item('a-1', 'moved', 'h2'), item('b-1', 'never')]), want: '[########] 2/2  moved 1, left 1, moving 0, waiting 0' },
    { name: 'an empty host', d: drain('drained', []), want: '[########] 0/0  moved 0, left 0, moving 0, waiting 0' },
  ])('$name', ({ d, want }) => {
    expect(progressBar(d, 8)).toBe(want);
  });
});

describe('drainOutcome', () => {
  it.each([
    { state: 'drained', code: EXIT.ok, message: /^host h1 is empty/ },
    { state: 'incomplete', code: EXIT.conflict, message: /^drain of h1 left 1 workload\(s\) on it: .*\n {2}db \(vm, db-1\): left: restart_policy never$/ },
    { state: 'deadline_exceeded', code: EXIT.unavailable, message: /^drain of h1 stopped at its deadline: / },
    { state: 'cancelled', code: EXIT.conflict, message: /^drain of h1 was stopped: / },
  ])('$state exits $code', ({ state, code, message }) => {
    const d = drain(state, state === 'drained' ? [item('a-1', 'moved', 'h2')] : [item('a-1', 'moved', 'h2'), item('db-1', 'never')], state === 'drained' ? 'host h1 is empty and stays cordoned' : 'something');
    expect(drainOutcome(d)).toEqual({ code, message: expect.stringMatching(message) });
  });
});

describe('DrainProgress', () => {
  const steps = [
    drain('draining', [item('a-1', 'waiting'), item('b-1', 'waiting')]),
    drain('draining', [item('a-1', 'moving', 'h2'), item('b-1', 'waiting')]),
    drain('draining', [item('a-1', 'moving', 'h2'), item('b-1', 'waiting')]),
    drain('incomplete', [item('a-1', 'moved', 'h2'), item('b-1', 'never')]),
  ];

  it('prints one line per change of outcome, and nothing else, into a pipe', () => {
    let out = '';
    const p = new DrainProgress((t) => (out += t), false);
    for (const d of steps) p.update(d);
    p.finish();
    expect(out).toBe('a (vm, a-1): moving to h2\na (vm, a-1): moved to h2\nb (vm, b-1): left: restart_policy never\n');
  });

  it('keeps a progress bar on the last line of a terminal, the outcome lines above it', () => {
    let out = '';
    const p = new DrainProgress((t) => (out += t), true);
    for (const d of steps) p.update(d);
    p.finish();
    const bar = (text: string) => text.replace(/\[[#-]+\]/, '[bar]');
    expect(out.split('\r\x1b[K').map(bar)).toEqual([
      '[bar] 0/2  moved 0, left 0, moving 0, waiting 2',
      'a (vm, a-1): moving to h2\n[bar] 0/2  moved 0, left 0, moving 1, waiting 1',
      '[bar] 0/2  moved 0, left 0, moving 1, waiting 1',
      'a (vm, a-1): moved to h2\nb (vm, b-1): left: restart_policy never\n[bar] 2/2  moved 1, left 1, moving 0, waiting 0\n',
    ]);
  });
});
