import { describe, expect, it } from 'vitest';
import { KeyedLock } from './keyed-lock.js';

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('KeyedLock', () => {
  it('serialises tasks under one key and keeps going after a failure', async () => {
    const lock = new KeyedLock();
    const order: string[] = [];
    const task = (name: string, fail = false) => async () => {
      order.push(`start ${name}`);
      await tick();
      order.push(`end ${name}`);
      if (fail) throw new Error(name);
      return name;
    };
    const results = await Promise.allSettled([lock.run('k', task('a')), lock.run('k', task('b', true)), lock.run('k', task('c'))]);
    expect(order).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  });

  it('runs different keys concurrently', async () => {
    const lock = new KeyedLock();
    const order: string[] = [];
    const task = (name: string) => async () => {
      order.push(`start ${name}`);
      await tick();
      order.push(`end ${name}`);
    };
    await Promise.all([lock.run('x', task('x')), lock.run('y', task('y'))]);
    expect(order.slice(0, 2).sort()).toEqual(['start x', 'start y']);
  });
});
