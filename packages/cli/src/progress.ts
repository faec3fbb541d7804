/** Back to the start of the line, and erase it. */
const REDRAW = '\r\x1b[K';
const SPINNER = ['|', '/', '-', '\\'];
export const BAR_WIDTH = 24;

/** `[######------------------] 25%`: a fraction 0-1 as a bar of `width` cells and a whole percentage. */
export function bar(fraction: number, width = BAR_WIDTH): string {
  const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
  const filled = Math.round(width * f);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${Math.floor(f * 100)}%`;
}

/** One frame of a spinner, for work whose size is unknown. */
export function spinner(frame: number): string {
  return SPINNER[frame % SPINNER.length]!;
}

/** Seconds since `startMs`, for a person: `7s`, `2m05s`. */
export function elapsed(startMs: number, now = Date.now()): string {
  const s = Math.max(0, Math.floor((now - startMs) / 1000));
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/**
 * A status line kept at the bottom of a terminal and redrawn in place, with
 * whole lines printed above it. Only for a terminal: into a pipe, commands
 * print their plain lines as they always have and make none of these.
 */
export class ProgressLine {
  private shown = false;

  constructor(private readonly out: (text: string) => void) {}

  /** Prints `above` (whole lines), then `status` as the new last line, replacing the old one. */
  draw(status: string, above: readonly string[] = []): void {
    this.out(`${this.shown ? REDRAW : ''}${above.map((l) => `${l}\n`).join('')}${status}`);
    this.shown = true;
  }

  /** Removes the status line, leaving the cursor where it began. */
  clear(): void {
    if (this.shown) this.out(REDRAW);
    this.shown = false;
  }

  /** Keeps the status line as it is and ends it. */
  finish(): void {
    if (this.shown) this.out('\n');
    this.shown = false;
  }
}

/**
 * Redraws `status(frame)` every `everyMs` while `work` runs, then removes the
 * line; for work that reports no progress of its own (a backup, a restore).
 * Without `progress` (not a terminal) it only awaits `work`.
 */
export async function whileRunning<T>(progress: ProgressLine | undefined, status: (frame: number) => string, work: Promise<T>, everyMs = 125): Promise<T> {
  if (!progress) return work;
  let frame = 0;
  progress.draw(status(frame++));
  const timer = setInterval(() => progress.draw(status(frame++)), everyMs);
  try {
    return await work;
  } finally {
    clearInterval(timer);
    progress.clear();
  }
}

/** A status line for `stream` when it is a terminal (and `forPeople`), else undefined. */
export function progressFor(stream: { isTTY?: boolean; write(text: string): unknown }, forPeople = true): ProgressLine | undefined {
  return forPeople && stream.isTTY === true ? new ProgressLine((t) => stream.write(t)) : undefined;
}
