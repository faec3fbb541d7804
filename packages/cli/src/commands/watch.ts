import { Option, type Command } from 'commander';
import { InvalidArgumentError, type pb } from '@virtfleet/shared';
import type { CoordinatorApi } from '../coordinator-client.js';
import { formatted, stdoutClosed, write, type OutputFormat } from '../output.js';

/** Seconds between fetches under --watch unless --interval says otherwise. */
export const DEFAULT_WATCH_INTERVAL_SECONDS = 2;
const MAX_WATCH_INTERVAL_SECONDS = 3600;
/** Clears a terminal and puts the cursor at its top left. */
const CLEAR = '\x1b[H\x1b[2J';

export interface WatchOptions {
  watch?: boolean;
  interval: number;
}

function parseInterval(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0.1 || n > MAX_WATCH_INTERVAL_SECONDS)
    throw new InvalidArgumentError('--interval', `must be a number of seconds from 0.1 to ${MAX_WATCH_INTERVAL_SECONDS}, not ${JSON.stringify(v)}`);
  return n;
}

/** Adds --watch and --interval to a listing or get command. */
export function withWatchOptions(cmd: Command): Command {
  return cmd
    .option('-w, --watch', 'keep it on screen, redrawn when it changes (each event that concerns it, and every --interval), until Ctrl-C; into a pipe, each new version after a blank line')
    .addOption(new Option('--interval <seconds>', 'with --watch: fetch again at least this often').argParser(parseInterval).default(DEFAULT_WATCH_INTERVAL_SECONDS));
}

/** What one fetch shows: the data (compared to tell a change) and how it prints. */
export interface Snapshot {
  data: unknown;
  text: string;
}

export interface WatchLoop {
  /** Reads the current state. */
  fetch: () => Promise<Snapshot>;
  /** Fetches again at least this often. */
  intervalMs: number;
  /**
   * Calls `changed` whenever something it shows may have changed (the event
   * stream), until `signal` aborts; a fetch follows at once. Optional: polling
   * alone finds every change, later. If it fails, polling carries on.
   */
  follow?: (changed: () => void, signal: AbortSignal) => Promise<void>;
  /** A terminal: redraw in place. Otherwise each new snapshot is written after a blank line. */
  tty: boolean;
  /** The first line of a redrawn screen. */
  title: string;
  out: (text: string) => void;
  signal: AbortSignal;
  /** Called after each fetch, with whether it printed. */
  onFetch?: (printed: boolean) => void;
}

/** Resolves with `p`'s value, or with undefined once `signal` aborts. */
async function unlessAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return undefined;
  let stop: (() => void) | undefined;
  const aborted = new Promise<undefined>((resolve) => signal.addEventListener('abort', (stop = () => resolve(undefined)), { once: true }));
  try {
    return await Promise.race([p, aborted]);
  } finally {
    if (stop) signal.removeEventListener('abort', stop);
  }
}

/**
 * Shows a snapshot, then each changed one until `signal` aborts. On a
 * terminal the screen is redrawn whenever the text changes (ages tick); into a
 * pipe a snapshot is written only when its data changed, after a blank line,
 * so that a reader can split the stream. A failed fetch ends the watch with
 * its error.
 */
export async function watchSnapshots(loop: WatchLoop): Promise<void> {
  let lastData: string | undefined;
  let lastText: string | undefined;
  let dirty = false;
  let wake: (() => void) | undefined;
  const changed = () => {
    dirty = true;
    wake?.();
  };
  const following = loop.follow?.(changed, loop.signal).catch(() => undefined);
  try {
    while (!loop.signal.aborted) {
      dirty = false;
      const s = await unlessAborted(loop.fetch(), loop.signal);
      if (s === undefined) break;
      const data = JSON.stringify(s.data);
      let printed = false;
      if (loop.tty ? s.text !== lastText : data !== lastData) {
        loop.out(loop.tty ? `${CLEAR}${loop.title}  ${new Date().toLocaleTimeString()}\n\n${s.text}\n` : `${lastData === undefined ? '' : '\n'}${s.text}\n`);
        printed = true;
      }
      lastData = data;
      lastText = s.text;
      loop.onFetch?.(printed);
      if (dirty || loop.signal.aborted) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, loop.intervalMs);
        function done() {
          clearTimeout(timer);
          loop.signal.removeEventListener('abort', done);
          wake = undefined;
          resolve();
        }
        wake = done;
        loop.signal.addEventListener('abort', done, { once: true });
      });
    }
  } finally {
    await following;
  }
}

/** Runs `run` until it ends, or until Ctrl-C, SIGTERM or a closed stdout stops it quietly. */
export async function untilInterrupted(run: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const stop = new AbortController();
  const abort = () => stop.abort();
  process.once('SIGINT', abort);
  process.once('SIGTERM', abort);
  stdoutClosed.signal.addEventListener('abort', abort, { once: true });
  try {
    await run(stop.signal);
  } finally {
    process.off('SIGINT', abort);
    process.off('SIGTERM', abort);
    stdoutClosed.signal.removeEventListener('abort', abort);
  }
}

/**
 * `--watch` for a command that prints `data` as `format` says: fetches and
 * prints until Ctrl-C, fetching again on each event of `typePrefix` that
 * `relevant` accepts, and every `interval` seconds.
 */
export async function watchCommand<T>(options: {
  client: CoordinatorApi;
  format: OutputFormat;
  interval: number;
  title: string;
  fetch: () => Promise<T>;
  render: (data: T, wide: boolean) => string;
  typePrefix: string;
  relevant?: (e: pb.Event__Output) => boolean;
  onFetch?: (data: T) => void;
}): Promise<void> {
  const { client, format } = options;
  const tty = process.stdout.isTTY === true;
  await untilInterrupted((signal) =>
    watchSnapshots({
      fetch: async () => {
        const data = await options.fetch();
        options.onFetch?.(data);
        const text = formatted(format, data, (wide) => options.render(data, wide));
        // Into a pipe, YAML snapshots are documents of one stream.
        return { data, text: format === 'yaml' && !tty ? `---\n${text}` : text };
      },
      intervalMs: options.interval * 1000,
      follow: (changed, s) =>
        client.streamEvents(
          { type_prefix: options.typePrefix, follow: true, from_start: false, since_seq: '0', since_time: '' },
          (e) => {
            if (!options.relevant || options.relevant(e)) changed();
          },
          s,
        ),
      tty,
      title: options.title,
      out: write,
      signal,
    }),
  );
}
