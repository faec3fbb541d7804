import { describe, expect, it } from 'vitest';
import { watchSnapshots, type Snapshot, type WatchLoop } from './watch.js';

/** A watch over a list of states: each fetch returns the next (the last one repeats); it stops after `fetches` fetches. */
function harness(states: unknown[], options: { fetches: number; tty?: boolean; intervalMs?: number; follow?: WatchLoop['follow'] }) {
  const stop = new AbortController();
  const out: string[] = [];
  let n = 0;
  const started = Date.now();
  const fetchedAt: number[] = [];
  const loop: WatchLoop = {
    fetch: (): Promise<Snapshot> => {
      const data = states[Math.min(n++, states.length - 1)];
      fetchedAt.push(Date.now() - started);
      return Promise.resolve({ data, text: `state: ${JSON.stringify(data)}` });
    },
    intervalMs: options.intervalMs ?? 5,
    ...(options.follow ? { follow: options.follow } : {}),
    tty: options.tty ?? false,
    title: 'virtfleet test',
    out: (t) => out.push(t),
    signal: stop.signal,
    onFetch: () => {
      if (n >= options.fetches) stop.abort();
    },
  };
  return { run: () => watchSnapshots(loop), out, fetchedAt, stop };
}

describe('watchSnapshots', () => {
  it.each([
    { name: 'prints each change after a blank line, nothing while it stays the same', states: ['a', 'a', 'b', 'b', 'c'], fetches: 6, want: 'state: "a"\n\nstate: "b"\n\nstate: "c"\n' },
    { name: 'prints a state that comes back', states: ['a', 'b', 'a'], fetches: 3, want: 'state: "a"\n\nstate: "b"\n\nstate: "a"\n' },
    { name: 'prints the first snapshot alone when nothing changes', states: [{ x: 1 }], fetches: 4, want: 'state: {"x":1}\n' },
  ])('into a pipe: $name', async ({ states, fetches, want }) => {
    const h = harness(states, { fetches });
    await h.run();
    expect(h.out.join('')).toBe(want);
  });

  it('on a terminal, redraws the screen with a title when the text changes', async () => {
    const h = harness(['a', 'a', 'b'], { fetches: 3, tty: true });
    await h.run();
    expect(h.out).toHaveLength(2);
    for (const [i, s] of ['a', 'b'].entries()) {
      expect(h.out[i]!.startsWith('\x1b[H\x1b[2Jvirtfleet test  ')).toBe(true);
      expect(h.out[i]!.endsWith(`\n\nstate: "${s}"\n`)).toBe(true);
    }
  });

  it('fetches at once on an event, without waiting for the interval', async () => {
    const h = harness(['a', 'b'], {
      fetches: 2,
      intervalMs: 60_000,
      follow: async (changed, signal) => {
        setTimeout(changed, 20);
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      },
    });
    await h.run();
    expect(h.out.join('')).toBe('state: "a"\n\nstate: "b"\n');
    expect(h.fetchedAt[1]!, 'the second fetch came with the event, long before the interval').toBeLessThan(5_000);
  });

  it('keeps polling when the event stream fails', async () => {
    const h = harness(['a', 'b', 'c'], { fetches: 3, follow: () => Promise.reject(new Error('no events for you')) });
    await h.run();
    expect(h.out.join('')).toBe('state: "a"\n\nstate: "b"\n\nstate: "c"\n');
  });

  it('stops at once when interrupted while waiting, and ends with the error of a failed fetch', async () => {
    const stop = new AbortController();
    const waiting = watchSnapshots({ fetch: () => Promise.resolve({ data: 1, text: '1' }), intervalMs: 60_000, tty: false, title: '', out: () => undefined, signal: stop.signal });
    setTimeout(() => stop.abort(), 20);
    const t0 = Date.now();
    await waiting;
    expect(Date.now() - t0).toBeLessThan(5_000);

    const failing = watchSnapshots({ fetch: () => Promise.reject(new Error('coordinator gone')), intervalMs: 5, tty: false, title: '', out: () => undefined, signal: new AbortController().signal });
    await expect(failing).rejects.toThrow('coordinator gone');
  });
});
