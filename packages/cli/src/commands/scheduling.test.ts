import { describe, expect, it } from 'vitest';
import type { pb } from '@virtfleet/shared';
import { renderDecision } from './scheduling.js';

type Candidate = pb.PlacementDecision__Output['candidates'][number];

const FILTERS = ['schedulable', 'driver', 'trust-level', 'features'];
const ok = (plugin: string) => ({ plugin, status: 'ok', reason: '' });

/** A candidate with every filter ok except the ones given. */
function candidate(host_id: string, failed: Record<string, { status: string; reason: string }> = {}, total = 0): Candidate {
  const filters = FILTERS.map((plugin) => (failed[plugin] ? { plugin, ...failed[plugin] } : ok(plugin)));
  const feasible = Object.keys(failed).length === 0;
  return { host_id, feasible, filters, scores: feasible ? [{ plugin: 'binpack', score: total, weight: 1 }] : [], total };
}

function decision(candidates: Candidate[], overrides: Partial<pb.PlacementDecision__Output> = {}): pb.PlacementDecision__Output {
  return {
    workload_id: 'w1',
    host_id: '',
    summary: '',
    candidates,
    runner_up: '',
    margin: 0,
    hosts_total: candidates.length,
    hosts_evaluated: candidates.length,
    rejections: {},
    unresolvable: false,
    decided_at: '2025-01-01T00:00:00.000Z',
    queue_policy: '',
    waited_seconds: 0,
    stopped_reservation: '',
    ...overrides,
  };
}

const rowOf = (out: string, host: string) => out.split('\n').find((l) => l.startsWith(`${host} `)) ?? '';

describe('renderDecision', () => {
  const trust = { status: 'unresolvable', reason: 'trust level below 2' };
  const features = { status: 'unresolvable', reason: 'missing feature secure-boot' };
  const d = decision(
    [candidate('h-two', { 'trust-level': trust, features }), candidate('h-one', { 'trust-level': trust }), candidate('h-ok', {}, 60)],
    { host_id: 'h-ok', summary: 'placed on h-ok: score 60.0, the only feasible host', rejections: { 'trust level below 2': 2 } },
  );
  const out = renderDecision(d, 'w1');

  it.each([
    {
      name: 'a host failing two filters shows both, in run order, then the filters that passed',
      host: 'h-two',
      want: 'trust-level: trust level below 2 (unresolvable); features: missing feature secure-boot (unresolvable); ok: schedulable, driver',
    },
    { name: 'a host failing one filter shows it and the rest ok', host: 'h-one', want: 'trust-level: trust level below 2 (unresolvable); ok: schedulable, driver, features' },
    { name: 'a feasible host passed them all', host: 'h-ok', want: 'all 4 filters ok' },
  ])('$name', ({ host, want }) => {
    expect(rowOf(out, host), out).toMatch(new RegExp(`${host}\\s+(rejected|chosen)\\s.*\\s${want.replace(/[()]/g, '\\$&')}$`));
  });

  it('keeps the rejection counts as recorded: each host once, under its first failure', () => {
    expect(out).toContain('hosts: 3 registered, 3 evaluated; rejected: 2 trust level below 2');
    expect(out).toContain('the first is the one counted under rejected');
  });

  it('renders a plan and an explanation of the same decision alike, but for the title', () => {
    const plan = renderDecision(d, 'plan for web');
    expect(plan.split('\n').slice(1)).toEqual(out.split('\n').slice(1));
  });

  it('says which filters a record stored before every verdict was kept did not run', () => {
    const old = decision([{ ...candidate('h-old', { driver: { status: 'unresolvable', reason: 'no vm driver' } }), filters: [ok('schedulable'), { plugin: 'driver', status: 'unresolvable', reason: 'no vm driver' }] }, candidate('h-ok', {}, 50)], {
      host_id: 'h-ok',
    });
    expect(rowOf(renderDecision(old, 'w1'), 'h-old')).toMatch(/driver: no vm driver \(unresolvable\); ok: schedulable; 2 later not run$/);
  });
});

describe('renderDecision: what a stopped workload does with its booking', () => {
  it.each([
    { policy: 'keep', want: /when stopped: keeps its booking on the host \(stopped_reservation: keep\)/ },
    { policy: 'release', want: /when stopped: releases its booking; a start needs room again \(stopped_reservation: release\)/ },
  ])('$policy', ({ policy, want }) => {
    expect(renderDecision(decision([], { stopped_reservation: policy }), 'explain w1')).toMatch(want);
  });

  it('says nothing for a plan', () => {
    expect(renderDecision(decision([]), 'plan for w1')).not.toMatch(/when stopped/);
  });
});

