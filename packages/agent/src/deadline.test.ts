import { describe, expect, it } from 'vitest';
import { withDeadline } from './deadline.js';

const never = new Promise<never>(() => undefined);

describe('withDeadline', () => {
  const cases: { name: string; work: () => Promise<unknown>; timeoutMs: number; want: { value?: unknown; error?: string } }[] = [
    { name: 'a value in time', work: () => Promise.resolve(7), timeoutMs: 1000, want: { value: 7 } },
    { name: 'an error in time', work: () => Promise.reject(new Error('engine said no')), timeoutMs: 1000, want: { error: 'engine said no' } },
    { name: 'a non-Error rejection, wrapped', work: () => Promise.reject('plain' as unknown as Error), timeoutMs: 1000, want: { error: 'plain' } },
    { name: 'no answer', work: () => never, timeoutMs: 20, want: { error: 'late' } },
    { name: 'an answer after the deadline', work: () => new Promise((r) => setTimeout(() => r('slow'), 200)), timeoutMs: 20, want: { error: 'late' } },
  ];
  it.each(cases)('$name', async ({ work, timeoutMs, want }) => {
    const outcome = await withDeadline(work(), timeoutMs, () => new Error('late')).then(
      (value) => ({ value }),
      (err: Error) => ({ error: err.message }),
    );
    expect(outcome).toEqual(want);
  });

  it('rejects at the deadline, not when the work ends', async () => {
    const started = performance.now();
    await expect(withDeadline(never, 50, () => new Error('late'))).rejects.toThrow('late');
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
