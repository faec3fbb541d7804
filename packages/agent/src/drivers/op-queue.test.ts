import { describe, expect, it } from 'vitest';
import { OpQueue } from './op-queue.js';

/** A task the test finishes by hand. */
function gate(): { promise: Promise<void>; open: () => void; fail: (e: Error) => void } {
  let open!: () => void;
  let fail!: (e: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('OpQueue', () => {
  it('runs at most `concurrency` tasks at once and starts the waiting ones in arrival order', async () => {
    const q = new OpQueue(2);
    const gates = [gate(), gate(), gate(), gate(), gate()];
    const started: number[] = [];
    const done = gates.map((g, i) =>
      q.run(async () => {
        started.push(i);
        await g.promise;
        return i;
      }),
    );
    done.forEach((p) => p.catch(() => undefined)); // handled below, after allSettled
    await tick();
    expect(started).toEqual([0, 1]);
    expect([q.inFlight, q.depth]).toEqual([2, 3]);
    gates[1]!.open();
    await tick();
    expect(started, 'the first waiting task takes the freed slot').toEqual([0, 1, 2]);
    gates[0]!.fail(new Error('boom'));
    await tick();
    expect(started, 'a failed task frees its slot too').toEqual([0, 1, 2, 3]);
    gates[2]!.open();
    gates[3]!.open();
    gates[4]!.open();
    const outcomes = await Promise.allSettled(done);
    expect(outcomes.map((o) => (o.status === 'fulfilled' ? o.value : (o.reason as Error).message))).toEqual([0, 1, 2, 3, 4].map((i) => (i === 0 ? 'boom' : i)));
    expect(started).toEqual([0, 1, 2, 3, 4]);
    expect([q.inFlight, q.depth]).toEqual([0, 0]);
  });

  it('refuses nothing: 1000 tasks through a queue of 4 all run, never more than 4 at once', async () => {
    const q = new OpQueue(4);
    let running = 0;
    let peak = 0;
    const results = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        q.run(async () => {
          peak = Math.max(peak, ++running);
          await tick();
          running--;
          return i;
        }),
      ),
    );
    expect(results).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(peak).toBe(4);
  });

  it('turns a task that throws synchronously into a rejection and frees its slot', async () => {
    const q = new OpQueue(1);
    await expect(
      q.run(() => {
        throw new Error('sync');
      }),
    ).rejects.toThrow('sync');
    await expect(q.run(() => Promise.resolve('next'))).resolves.toBe('next');
  });

  it.each([0, -1, 1.5])('refuses a concurrency of %s', (c) => {
    expect(() => new OpQueue(c)).toThrow(RangeError);
  });
});
