export interface WaitOptions {
  /** Give up after this long (default 15 s). */
  timeoutMs?: number;
  /** Pause between attempts (default 100 ms). */
  intervalMs?: number;
}

/** A probe or condition that returned the wrong kind of value: a bug in the test, reported at once. */
class WaitMisuseError extends TypeError {}

/**
 * Thrown by a probe or condition to stop waiting at once, when what it saw
 * means the awaited state can no longer come (a workload that failed, say).
 * Any other error counts as "not yet" and is kept for the timeout message.
 */
export class GiveUp extends Error {}

const DEFAULT_TIMEOUT_MS = 15_000;
const DEFAULT_INTERVAL_MS = 100;

const show = (last: unknown): string => (last instanceof Error ? `error: ${last.message}` : last === undefined ? 'undefined' : JSON.stringify(last));

async function poll<R>(what: string, attempt: () => Promise<{ done: true; value: R } | { done: false; last: unknown }>, opts: WaitOptions): Promise<R> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const intervalMs = opts.intervalMs ?? DEFAULT_INTERVAL_MS;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  let attempts = 0;
  for (;;) {
    attempts++;
    try {
      const result = await attempt();
      if (result.done) return result.value;
      last = result.last;
    } catch (err) {
      if (err instanceof WaitMisuseError) throw err;
      if (err instanceof GiveUp) throw new Error(`gave up waiting for ${what}: ${err.message}`, { cause: err });
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms (${attempts} attempts) waiting for ${what}; last: ${show(last)}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Polls `condition` until it returns exactly `true`, or fails after the
 * timeout naming `what` and the last result (`false` or the error thrown).
 * A condition that throws counts as not yet met, except with `GiveUp`.
 */
export async function waitUntil(what: string, condition: () => boolean | Promise<boolean>, opts: WaitOptions = {}): Promise<void> {
  await poll(
    what,
    async () => {
      const value: unknown = await condition();
      if (typeof value !== 'boolean') throw new WaitMisuseError(`waitUntil(${what}): the condition returned ${typeof value}, not a boolean`);
      return value ? { done: true, value: undefined } : { done: false, last: value };
    },
    opts,
  );
}

/** What `waitFor` may find: an object, and not a promise (which would make T the promise, not its value). */
type Found = object & { then?: never };

/**
 * Polls `probe` until it returns an object (not `undefined`), and returns it;
 * fails after the timeout naming `what` and the last error thrown, or at once
 * if the probe throws `GiveUp`. `T` must be an object type, so a probe cannot
 * return `0`, `''`, `false` or `null` and have it mistaken for "not yet" or
 * "done": return `undefined` for "not yet", and use `waitUntil` for a plain
 * condition.
 */
export async function waitFor<T extends Found>(what: string, probe: () => T | undefined | Promise<T | undefined>, opts: WaitOptions = {}): Promise<T> {
  return poll(
    what,
    async () => {
      const value: unknown = await probe();
      if (value === undefined) return { done: false, last: value };
      if (value === null || (typeof value !== 'object' && typeof value !== 'function')) {
        throw new WaitMisuseError(`waitFor(${what}): the probe returned ${value === null ? 'null' : typeof value}; return an object when done, undefined when not yet`);
      }
      return { done: true, value: value as T };
    },
    opts,
  );
}
