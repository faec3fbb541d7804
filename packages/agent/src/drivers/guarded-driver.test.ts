import { describe, expect, it } from 'vitest';
import { createLogger, parseWorkloadSpec, UnavailableError } from '@virtfleet/shared';
import { DriverTimeoutError } from '../errors.js';
import type { Driver } from './driver.js';
import { createFakeDriver } from './fake/fake-driver.js';
import { GuardedDriver, type GuardOptions } from './guarded-driver.js';

const log = createLogger('test', 'silent');
const spec = parseWorkloadSpec({ name: 'c', kind: 'container', image: 'x', vcpus: 0.01, memory_mib: 8 });
const tick = () => new Promise<void>((r) => setImmediate(r));

/**
 * The fake driver behind a switch: while frozen, every call waits (like
 * dockerd under SIGSTOP) until thawed; `failWith` makes calls fail at once.
 */
async function engine() {
  const fake = await createFakeDriver({ kinds: ['container'], vcpus: 8, memoryMiB: 8192 }, { hostId: 'h1', log });
  let frozen: Promise<void> | undefined;
  let thaw = (): void => undefined;
  let failWith: Error | undefined;
  let calls = 0;
  const wrap =
    <A extends unknown[], R>(f: (...a: A) => Promise<R>) =>
    async (...a: A): Promise<R> => {
      calls++;
      if (failWith) throw failWith;
      await frozen;
      return f(...a);
    };
  const driver: Driver = {
    name: 'docker',
    kinds: ['container'],
    fingerprint: wrap(() => fake.fingerprint()),
    create: wrap((id: string, s: typeof spec) => fake.create(id, s)),
    start: wrap((id: string) => fake.start(id)),
    stop: wrap((id: string, o: { timeoutSeconds: number; force: boolean }) => fake.stop(id, o)),
    pause: wrap((id: string) => fake.pause(id)),
    resume: wrap((id: string) => fake.resume(id)),
    delete: wrap((id: string) => fake.delete(id)),
    inspect: wrap((id: string) => fake.inspect(id)),
    list: wrap(() => fake.list()),
    usage: wrap((id: string) => fake.usage(id)),
    close: () => fake.close(),
  };
  return {
    driver,
    freeze: (): void => {
      frozen = new Promise<void>((r) => (thaw = r));
    },
    thaw: () => {
      frozen = undefined;
      thaw();
    },
    fail: (e: Error | undefined) => (failWith = e),
    calls: () => calls,
  };
}

async function guarded(options: Partial<GuardOptions> = {}) {
  const e = await engine();
  const changes: string[] = [];
  const g = new GuardedDriver(e.driver, { concurrency: 2, readTimeoutMs: 50, changeTimeoutMs: 200, ...options }, (healthy, detail) => changes.push(healthy ? 'healthy' : `unhealthy: ${detail}`));
  return { g, e, changes };
}

describe('GuardedDriver', () => {
  it('fails a read that misses its deadline with DriverTimeoutError, turns unhealthy once, and healthy again on the next answer', async () => {
    const { g, e, changes } = await guarded();
    await g.list();
    expect(g.status()).toMatchObject({ healthy: true, detail: '' });
    e.freeze();
    await expect(g.list()).rejects.toBeInstanceOf(DriverTimeoutError);
    await expect(g.probe()).resolves.toBeUndefined();
    expect(g.status()).toMatchObject({ healthy: false, detail: expect.stringContaining('did not answer within 50 ms') as string });
    e.thaw();
    await tick();
    expect(g.status().healthy).toBe(true);
    expect(changes).toEqual([expect.stringMatching(/^unhealthy: docker: list did not answer within 50 ms/), 'healthy']);
  });

  it('while a call is overdue, fails reads at once without sending them and holds at most one probe at the engine; a late answer ends it', async () => {
    const { g, e } = await guarded();
    e.freeze();
    await expect(g.usage('w1')).rejects.toThrow('docker: usage did not answer within 50 ms');
    expect(e.calls()).toBe(1);
    await expect(g.inspect('w1')).rejects.toThrow('docker: inspect not sent: 1 earlier call(s) still unanswered');
    await expect(g.list()).rejects.toBeInstanceOf(DriverTimeoutError);
    for (let i = 0; i < 5; i++) await g.probe();
    expect(e.calls(), 'the reads were not sent; one probe reached the engine').toBe(2);
    expect(g.status().healthy).toBe(false);
    e.thaw();
    await tick();
    await tick();
    expect(g.status().healthy, 'the late answers made it healthy').toBe(true);
    await expect(g.inspect('w1')).resolves.toBeUndefined();
    expect(e.calls()).toBe(3);
  });

  const answers: { name: string; error: Error; healthy: boolean }[] = [
    { name: 'an UnavailableError (engine unreachable) marks it unhealthy', error: new UnavailableError('connect ENOENT /run/docker.sock'), healthy: false },
    { name: 'any other error is an answer and keeps it healthy', error: new Error('no such image'), healthy: true },
  ];
  it.each(answers)('$name', async ({ error, healthy }) => {
    const { g, e } = await guarded();
    e.fail(error);
    await expect(g.create('w1', spec)).rejects.toBe(error);
    expect(g.status().healthy).toBe(healthy);
  });

  it('queues changes beyond its concurrency in order and reports the depth, while reads pass the queue', async () => {
    const { g, e } = await guarded({ concurrency: 2, changeTimeoutMs: 5_000, readTimeoutMs: 5_000 });
    e.freeze();
    const creates = ['w1', 'w2', 'w3', 'w4', 'w5'].map((id) => g.create(id, spec));
    await tick();
    expect(g.status()).toMatchObject({ inFlight: 2, queueDepth: 3, concurrency: 2 });
    expect(e.calls(), 'only two reached the engine').toBe(2);
    const read = g.list();
    await tick();
    expect(e.calls(), 'a read does not wait behind the queue').toBe(3);
    e.thaw();
    const created = await Promise.all(creates);
    expect(created.map((w) => w.workloadId)).toEqual(['w1', 'w2', 'w3', 'w4', 'w5']);
    expect((await read).length).toBeGreaterThanOrEqual(0);
    expect(g.status()).toMatchObject({ inFlight: 0, queueDepth: 0, healthy: true });
  });

  it('counts a change deadline from when it leaves the queue, not from its arrival', async () => {
    const { g, e } = await guarded({ concurrency: 1, changeTimeoutMs: 150 });
    e.freeze();
    const first = g.create('w1', spec);
    const second = g.create('w2', spec);
    await new Promise((r) => setTimeout(r, 100));
    e.thaw();
    e.freeze(); // the second call reaches the engine after the first settles, and waits another 100 ms there
    await expect(first).resolves.toMatchObject({ workloadId: 'w1' });
    await new Promise((r) => setTimeout(r, 100));
    e.thaw();
    // 200 ms after its arrival, 100 ms after it left the queue: within its 150 ms deadline.
    await expect(second).resolves.toMatchObject({ workloadId: 'w2' });
    expect(g.status().healthy).toBe(true);
  });

  it('keeps the slot of a change that missed its deadline until the engine answers, so a stalled engine gets no more work', async () => {
    const { g, e } = await guarded({ concurrency: 1, changeTimeoutMs: 30 });
    e.freeze();
    const late = g.create('w1', spec);
    const waiting = g.create('w2', spec);
    await expect(late).rejects.toThrow('docker: create did not answer within 30 ms');
    await tick();
    expect(g.status()).toMatchObject({ inFlight: 1, queueDepth: 1, healthy: false });
    expect(e.calls()).toBe(1);
    e.thaw();
    await expect(waiting).resolves.toMatchObject({ workloadId: 'w2' });
    expect(g.status()).toMatchObject({ inFlight: 0, queueDepth: 0, healthy: true });
  });

  it('gives a stop its graceful timeout on top of the change deadline', async () => {
    const { g, e } = await guarded({ concurrency: 1, changeTimeoutMs: 30 });
    await g.create('w1', spec);
    e.freeze();
    const stop = g.stop('w1', { timeoutSeconds: 1, force: false });
    await new Promise((r) => setTimeout(r, 100));
    e.thaw();
    await expect(stop).resolves.toMatchObject({ state: 'stopped' });
  });

  it('reports an unreachable engine as an unhealthy fingerprint instead of throwing', async () => {
    const { g, e } = await guarded();
    e.freeze();
    await expect(g.fingerprint()).resolves.toMatchObject({ name: 'docker', healthy: false, detail: 'docker: fingerprint did not answer within 50 ms' });
    e.thaw();
  });
});
