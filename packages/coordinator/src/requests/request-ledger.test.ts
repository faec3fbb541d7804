import { describe, expect, it } from 'vitest';
import { createLogger, FailedPreconditionError } from '@virtfleet/shared';
import { MemoryStateStore } from '../state/memory-state-store.test-support.js';
import { canonicalJson, RequestLedger } from './request-ledger.js';

const log = createLogger('test', 'silent');

function ledger(now = () => 1_000) {
  const store = new MemoryStateStore();
  return { store, requests: new RequestLedger(store, log, now) };
}

const stop = { method: 'StopWorkload', subject: 'web', params: { timeoutSeconds: 0, force: false }, aliases: (r: { id: string }) => [r.id] };

describe('RequestLedger.run', () => {
  it('runs a call without a request id every time', async () => {
    const { requests } = ledger();
    let runs = 0;
    await requests.run('', stop, () => Promise.resolve({ id: `w-${++runs}` }));
    await requests.run('', stop, () => Promise.resolve({ id: `w-${++runs}` }));
    expect(runs).toBe(2);
  });

  it('returns the first response for a repeated id, by the name or by an alias, without acting again', async () => {
    const { requests } = ledger();
    let runs = 0;
    const first = await requests.run('r1', stop, () => Promise.resolve({ id: `w-${++runs}` }));
    expect(await requests.run('r1', stop, () => Promise.resolve({ id: `w-${++runs}` }))).toEqual(first);
    expect(await requests.run('r1', { ...stop, subject: 'w-1' }, () => Promise.resolve({ id: `w-${++runs}` }))).toEqual(first);
    expect(runs).toBe(1);
  });

  const different = [
    { name: 'another method', call: { ...stop, method: 'StartWorkload' } },
    { name: 'another target', call: { ...stop, subject: 'db' } },
    { name: 'other parameters', call: { ...stop, params: { timeoutSeconds: 5, force: false } } },
  ];
  it.each(different)('refuses the id for $name, and does not act', async ({ call }) => {
    const { requests } = ledger();
    await requests.run('r1', stop, () => Promise.resolve({ id: 'w-1' }));
    let ran = false;
    await expect(
      requests.run('r1', call, () => {
        ran = true;
        return Promise.resolve({ id: 'w-1' });
      }),
    ).rejects.toThrow(/request_id r1 was already used for a different request \(StopWorkload on web\)/);
    expect(ran).toBe(false);
  });

  it('refuses an id a create already used', async () => {
    const { store, requests } = ledger();
    await store.put({ id: 'w-9', requestId: 'r9', spec: { name: 'x' } } as never);
    await expect(requests.run('r9', stop, () => Promise.resolve({ id: 'w-1' }))).rejects.toThrow(/already used for SubmitWorkload of w-9/);
  });

  it('records nothing when the call fails, so the id can be used again', async () => {
    const { store, requests } = ledger();
    await expect(requests.run('r1', stop, () => Promise.reject(new FailedPreconditionError('no')))).rejects.toThrow('no');
    expect(store.requests.size).toBe(0);
    expect(await requests.run('r1', stop, () => Promise.resolve({ id: 'w-1' }))).toEqual({ id: 'w-1' });
  });

  it('lets a concurrent repeat wait for the first and share its result', async () => {
    const { requests } = ledger();
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const first = requests.run('r1', stop, async () => {
      runs++;
      await gate;
      return { id: 'w-1' };
    });
    const second = requests.run('r1', stop, () => Promise.resolve({ id: `w-${++runs}` }));
    release();
    expect(await Promise.all([first, second])).toEqual([{ id: 'w-1' }, { id: 'w-1' }]);
    expect(runs).toBe(1);
  });
});

describe('RequestLedger.expire', () => {
  it('forgets ids older than the retention, keeps newer ones', async () => {
    let now = 0;
    const { store, requests } = ledger(() => now);
    await requests.run('old', stop, () => Promise.resolve({ id: 'w-1' }));
    now = 5_000;
    await requests.run('new', { ...stop, subject: 'db' }, () => Promise.resolve({ id: 'w-2' }));
    now = 10_000;
    expect(requests.expire(6_000)).toBe(1);
    expect([...store.requests.keys()]).toEqual(['new']);
  });
});

describe('canonicalJson', () => {
  it('ignores key order', () => {
    expect(canonicalJson({ b: 1, a: { d: 2, c: 3 } })).toBe(canonicalJson({ a: { c: 3, d: 2 }, b: 1 }));
  });
});
