import { describe, expect, it } from 'vitest';
import { createLogger } from '@virtfleet/shared';
import { RequestLedger } from '../requests/request-ledger.js';
import type { Workload } from '../workloads/workload.js';
import { testWorkload } from '../workloads/workload.test-support.js';
import { MemoryStateStore } from './memory-state-store.test-support.js';
import { RetentionSweeper } from './retention-sweeper.js';

const log = createLogger('test', 'silent');
const HOUR = 3_600_000;

function workload(id: string, state: Workload['state'], updatedAt: string): Workload {
  return testWorkload(id, { state, desiredState: state === 'deleted' ? 'deleted' : 'running', createdAt: updatedAt, updatedAt });
}

describe('RetentionSweeper.sweep', () => {
  const now = Date.parse('2026-06-01T12:00:00Z');
  const cases = [
    { name: 'a workload deleted before the retention', w: workload('old', 'deleted', '2026-06-01T09:59:59Z'), forgotten: true },
    { name: 'a workload deleted within the retention', w: workload('recent', 'deleted', '2026-06-01T10:00:01Z'), forgotten: false },
    { name: 'a live workload, however old', w: workload('live', 'running', '2020-01-01T00:00:00Z'), forgotten: false },
    { name: 'a stopped workload, however old', w: workload('stopped', 'stopped', '2020-01-01T00:00:00Z'), forgotten: false },
  ];
  it.each(cases)('$name: forgotten $forgotten', async ({ w, forgotten }) => {
    const store = new MemoryStateStore();
    await store.put(w);
    const sweeper = new RetentionSweeper(store, new RequestLedger(store, log, () => now), { deletedWorkloadsMs: 2 * HOUR, requestsMs: HOUR }, () => true, log, () => now);
    expect((await sweeper.sweep()).workloads).toBe(forgotten ? 1 : 0);
    expect(store.get(w.id) === undefined).toBe(forgotten);
  });

  it('does nothing on a follower', async () => {
    const store = new MemoryStateStore();
    await store.put(workload('old', 'deleted', '2020-01-01T00:00:00Z'));
    const sweeper = new RetentionSweeper(store, new RequestLedger(store, log, () => now), { deletedWorkloadsMs: HOUR, requestsMs: HOUR }, () => false, log, () => now);
    expect(await sweeper.sweep()).toEqual({ workloads: 0, requests: 0 });
    expect(store.get('old')).toBeDefined();
  });

  it('expires request ids past their retention', async () => {
    const store = new MemoryStateStore();
    let clock = now - 2 * HOUR;
    const ledger = new RequestLedger(store, log, () => clock);
    await ledger.run('r-old', { method: 'StopWorkload', subject: 'w', params: {} }, () => Promise.resolve({}));
    clock = now;
    await ledger.run('r-new', { method: 'StopWorkload', subject: 'w', params: {} }, () => Promise.resolve({}));
    const sweeper = new RetentionSweeper(store, ledger, { deletedWorkloadsMs: HOUR, requestsMs: HOUR }, () => true, log, () => now);
    expect((await sweeper.sweep()).requests).toBe(1);
    expect([...store.requests.keys()]).toEqual(['r-new']);
  });
});
