/** A repeating timer, stopped with `stop()`. */
export interface Periodic {
  stop(): void;
}

/**
 * Runs `run` every `intervalMs`, the first time `phase × intervalMs` after
 * the call (at once is the caller's business). Many hosts in one process
 * (`simulate`) take different phases so their timers do not all fire in the
 * same tick; a single agent uses phase 0, a plain `setInterval`.
 * @param phase 0 ≤ phase < 1. @default 0
 */
export function every(intervalMs: number, run: () => void, phase = 0, options: { unref?: boolean } = {}): Periodic {
  const delayMs = Math.floor((phase % 1) * intervalMs);
  let interval: NodeJS.Timeout | undefined;
  let first: NodeJS.Timeout | undefined;
  const repeat = () => {
    interval = setInterval(run, intervalMs);
    if (options.unref) interval.unref();
  };
  if (delayMs <= 0) repeat();
  else {
    first = setTimeout(() => {
      first = undefined;
      repeat();
      run();
    }, delayMs);
    if (options.unref) first.unref();
  }
  return {
    stop() {
      if (first) clearTimeout(first);
      if (interval) clearInterval(interval);
    },
  };
}
