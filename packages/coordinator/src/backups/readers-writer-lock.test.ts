import { describe, expect, it } from 'vitest';
import { ReadersWriterLock } from './readers-writer-lock.js';

/** A promise and the function that settles it. */
function gate(): { open: () => void; opened: Promise<void> } {
  let open = () => {};
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

describe('readers-writer lock', () => {
  const cases: { name: string; first: 'shared' | 'exclusive'; then: ('shared' | 'exclusive')[]; want: string[] }[] = [
    { name: 'shared holders overlap', first: 'shared', then: ['shared'], want: ['start 0', 'start 1', 'end 1', 'end 0'] },
    { name: 'exclusive waits for the shared holder', first: 'shared', then: ['exclusive'], want: ['start 0', 'end 0', 'start 1', 'end 1'] },
    { name: 'shared waits for the exclusive holder', first: 'exclusive', then: ['shared'], want: ['start 0', 'end 0', 'start 1', 'end 1'] },
    {
      name: 'a shared caller queues behind a waiting exclusive one',
      first: 'shared',
      then: ['exclusive', 'shared'],
      want: ['start 0', 'end 0', 'start 1', 'end 1', 'start 2', 'end 2'],
    },
  ];

  it.each(cases)('$name', async ({ first, then, want }) => {
    const lock = new ReadersWriterLock();
    const log: string[] = [];
    const held = gate();
    const firstDone = lock[first](async () => {
      log.push('start 0');
      await held.opened;
      log.push('end 0');
    });
    const later = then.map((side, i) =>
      lock[side](async () => {
        log.push(`start ${i + 1}`);
        await Promise.resolve();
        log.push(`end ${i + 1}`);
      }),
    );
    // Let every caller that can run run; only then release the first holder.
    await Promise.race([Promise.all(later), new Promise((resolve) => setImmediate(resolve))]);
    held.open();
    await Promise.all([firstDone, ...later]);
    expect(log).toEqual(want);
  });

  it('passes the result and the error of the function on, and is free again after an error', async () => {
    const lock = new ReadersWriterLock();
    await expect(lock.exclusive(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(lock.exclusive(() => Promise.resolve(7))).resolves.toBe(7);
    await expect(lock.shared(() => Promise.resolve('ok'))).resolves.toBe('ok');
  });
});
