import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { pb } from '@virtfleet/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { applyPlan, readPlan, type MigrationApi, type PlannedMove } from './rebalance-apply.js';

/**
 * A coordinator stand-in: workloads by id and host; a migration takes `ms`
 * and lands on its target unless the workload is in `failing`. Records the
 * order migrations start and the most at once.
 */
function fakeApi(placement: Record<string, string>, failing = new Set<string>(), ms = 20) {
  const started: string[] = [];
  let inFlight = 0;
  let most = 0;
  const moving = new Map<string, { to: string; until: number }>();
  const view = (id: string): pb.Workload__Output => {
    const m = moving.get(id);
    if (m && Date.now() >= m.until) {
      moving.delete(id);
      inFlight--;
      if (!failing.has(id)) placement[id] = m.to;
    }
    const still = moving.get(id);
    return { id, host_id: placement[id]!, message: failing.has(id) ? 'migration failed: no room' : 'migrated', ...(still ? { migration: { target_host_id: still.to } } : {}) } as pb.Workload__Output;
  };
  const api: MigrationApi = {
    get: (id) => Promise.resolve(view(id)),
    migrate: (req) => {
      started.push(req.id!);
      inFlight++;
      most = Math.max(most, inFlight);
      moving.set(req.id!, { to: req.target_host_id!, until: Date.now() + ms });
      return Promise.resolve(view(req.id!));
    },
  };
  return { api, started, most: () => most, placement };
}

const move = (w: string, from: string, to: string): PlannedMove => ({ workload_id: w, name: w, from, to });

describe('applyPlan', () => {
  it('runs independent moves side by side, at most `parallel` at once, and a move after every earlier one that shares a host', async () => {
    const f = fakeApi({ w1: 'a', w2: 'c', w3: 'e', w4: 'b' });
    // w4 (b -> a) shares host a with w1 (a -> b): it waits for w1; w2 and w3 touch other hosts.
    const outcomes = await applyPlan(f.api, [move('w1', 'a', 'b'), move('w2', 'c', 'd'), move('w3', 'e', 'f'), move('w4', 'b', 'a')], { parallel: 2, stopOnError: false, planKey: 'k', pollMs: 5 });
    expect(outcomes.map((o) => o.result)).toEqual(['moved', 'moved', 'moved', 'moved']);
    expect(f.most()).toBe(2);
    expect(f.started.indexOf('w4')).toBeGreaterThan(f.started.indexOf('w1'));
    expect(f.placement).toEqual({ w1: 'b', w2: 'd', w3: 'f', w4: 'a' });
  });

  it('skips a workload that is no longer where the plan found it', async () => {
    const f = fakeApi({ w1: 'z' });
    const [o] = await applyPlan(f.api, [move('w1', 'a', 'b')], { parallel: 1, stopOnError: false, planKey: 'k', pollMs: 5 });
    expect([o?.result, o?.message]).toEqual(['skipped', 'it is on z now, not on a']);
    expect(f.started).toEqual([]);
  });

  it.each([
    [false, ['failed', 'moved', 'moved']],
    [true, ['failed', 'not_started', 'not_started']],
  ])('after a failure, with stop-on-error %s, goes on or starts nothing more', async (stopOnError, results) => {
    const f = fakeApi({ w1: 'a', w2: 'a', w3: 'a' }, new Set(['w1']));
    const outcomes = await applyPlan(f.api, [move('w1', 'a', 'b'), move('w2', 'a', 'b'), move('w3', 'a', 'c')], { parallel: 1, stopOnError, planKey: 'k', pollMs: 5 });
    expect(outcomes.map((o) => o.result)).toEqual(results);
    expect(outcomes[0]?.message).toBe('migration failed: no room');
  });
});

describe('readPlan', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
  const file = (text: string) => {
    const d = mkdtempSync(join(tmpdir(), 'vf-plan-'));
    dirs.push(d);
    writeFileSync(join(d, 'plan.json'), text);
    return join(d, 'plan.json');
  };

  it('reads the moves of `rebalance plan -o json`, with a key that is the same for the same plan', () => {
    const text = JSON.stringify({ goal: 'consolidate', moves: [move('w1', 'a', 'b')], hosts_used_before: 2, hosts_used_after: 1 });
    const a = readPlan(file(text));
    expect(a.moves).toEqual([move('w1', 'a', 'b')]);
    expect(readPlan(file(text)).key).toBe(a.key);
  });

  it.each([
    ['not JSON', 'moves:', /is not JSON/],
    ['no moves', '{}', /: moves/],
    ['a move without a target', JSON.stringify({ moves: [{ workload_id: 'w', name: 'w', from: 'a' }] }), /moves\.0\.to/],
  ])('refuses a plan that is %s, naming the file and field', (_name, text, message) => {
    expect(() => readPlan(file(text))).toThrow(message);
  });
});
