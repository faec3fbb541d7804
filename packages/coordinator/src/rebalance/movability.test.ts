import { describe, expect, it } from 'vitest';
import { testSpec } from './fleet.test-support.js';
import { pinnedReason, type MovabilityFacts } from './movability.js';

const running = (overrides: Partial<MovabilityFacts> = {}, spec: Record<string, unknown> = {}): MovabilityFacts => ({
  spec: testSpec('w', spec),
  state: 'running',
  desiredState: 'running',
  hostUp: true,
  ...overrides,
});

describe('pinnedReason', () => {
  it.each([
    { name: 'a running container moves', facts: running(), want: undefined },
    { name: 'a paused VM moves', facts: running({ state: 'paused', desiredState: 'paused' }, { kind: 'vm', image: undefined, vcpus: 1 }), want: undefined },
    { name: 'a stopped workload stays', facts: running({ state: 'stopped', desiredState: 'stopped' }), want: 'stopped: only running and paused workloads move' },
    { name: 'one being created stays', facts: running({ state: 'creating' }), want: 'creating: only running and paused workloads move' },
    { name: 'one migrating stays', facts: running({ migrating: true }), want: 'migrating' },
    { name: 'one on a host that is not up stays', facts: running({ hostUp: false }), want: 'its host is not up' },
    { name: 'one about to stop stays', facts: running({ desiredState: 'stopped' }), want: 'changing to stopped' },
    { name: 'one with a command under way stays', facts: running({ busy: true }), want: 'a command is under way' },
    { name: 'a container that must never restart stays', facts: running({}, { restart_policy: 'never' }), want: 'restart_policy never' },
    { name: 'a VM that must never restart stays too', facts: running({}, { kind: 'vm', image: undefined, vcpus: 1, restart_policy: 'never' }), want: 'restart_policy never' },
    { name: 'on-failure restarts are no obstacle', facts: running({}, { restart_policy: 'on-failure' }), want: undefined },
  ])('$name', ({ facts, want }) => {
    expect(pinnedReason(facts)).toBe(want);
  });
});
