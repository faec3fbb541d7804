import { describe, expect, it } from 'vitest';
import { HostCommandLimiter } from './host-command-limiter.js';

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { open, opened };
}

describe('HostCommandLimiter', () => {
  it('runs at most the limit per host at once, in arrival order, and starts the next as one completes', async () => {
    const limiter = new HostCommandLimiter(2);
    const started: number[] = [];
    const gates = [gate(), gate(), gate(), gate()];
    const runs = gates.map((g, i) =>
      limiter.run('h1', async () => {
        started.push(i);
        await g.opened;
        return i;
      }),
    );
    await Promise.resolve();
    expect(started).toEqual([0, 1]);
    expect(limiter.queued('h1')).toBe(2);
    gates[1]!.open();
    await runs[1];
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1, 2]);
    for (const g of gates) g.open();
    expect(await Promise.all(runs)).toEqual([0, 1, 2, 3]);
    expect(limiter.queued('h1')).toBe(0);
  });

  it('limits each host on its own', async () => {
    const limiter = new HostCommandLimiter(1);
    const hold = gate();
    const started: string[] = [];
    const a = limiter.run('a', async () => {
      started.push('a');
      await hold.opened;
    });
    const b = limiter.run('b', () => {
      started.push('b');
      return Promise.resolve();
    });
    await b;
    expect(started).toEqual(['a', 'b']);
    hold.open();
    await a;
  });

  it('frees the slot when a command fails', async () => {
    const limiter = new HostCommandLimiter(1);
    await expect(limiter.run('h1', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await limiter.run('h1', () => Promise.resolve('next'))).toBe('next');
  });
});
