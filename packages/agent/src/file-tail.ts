import { open, stat, type FileHandle } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { lastLines } from '@virtfleet/shared';

const READ_CHUNK = 64 * 1024;

export interface TailOptions {
  /** Start this many lines before the end; undefined: from the start. */
  tailLines?: number;
  /** Keep reading what is appended, across rotation, until `signal` aborts or the file is removed. */
  follow: boolean;
  /** How often a followed file is looked at. @default 250 */
  pollMs?: number;
}

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';

/**
 * A file's content, as `tail` reads it: the whole file or its last lines,
 * then, with `follow`, what is appended. A file that is replaced (rotation
 * renames it and starts a new one) or truncated is read again from its
 * start. A followed file that is removed ends the stream; so does a file
 * that does not exist when not following.
 */
export async function* tailFile(path: string, options: TailOptions, signal: AbortSignal): AsyncGenerator<Buffer> {
  const pollMs = options.pollMs ?? 250;
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, 'r').catch((err: unknown) => {
      if (isMissing(err)) return undefined;
      throw err;
    });
    if (!handle) return;
    let { size, ino } = await handle.stat();
    const whole = await readRange(handle, 0, size);
    const first = options.tailLines !== undefined ? lastLines(whole, options.tailLines) : whole;
    if (first.length > 0) yield first;
    let position = size;
    while (options.follow && !signal.aborted) {
      try {
        await delay(pollMs, undefined, { signal });
      } catch {
        return;
      }
      const now = await stat(path).catch((err: unknown) => {
        if (isMissing(err)) return undefined;
        throw err;
      });
      if (!now) return;
      if (now.ino !== ino || now.size < position) {
        await handle.close();
        handle = await open(path, 'r');
        ({ size, ino } = await handle.stat());
        position = 0;
      }
      if (now.size > position) {
        const added = await readRange(handle, position, now.size);
        position += added.length;
        if (added.length > 0) yield added;
      }
    }
  } finally {
    await handle?.close();
  }
}

async function readRange(handle: FileHandle, from: number, to: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let at = from; at < to; ) {
    const buffer = Buffer.alloc(Math.min(READ_CHUNK, to - at));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, at);
    if (bytesRead === 0) break;
    parts.push(buffer.subarray(0, bytesRead));
    at += bytesRead;
  }
  return Buffer.concat(parts);
}
