import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, truncateSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SerialDrain } from '@virtfleet/shared';

export interface JournalOptions {
  /** The lines that describe the owner's whole state now: what a compaction writes instead of the history. */
  snapshot: () => string[];
  /** Compact once the file would hold more lines than this. */
  compactAbove: () => number;
}

interface Queued {
  line: string;
  resolve(): void;
  reject(err: Error): void;
}

/**
 * An append-only file of lines with group commit. Lines appended while a
 * write is on its way to disk go out together in the next write under one
 * fdatasync, so a burst of commands costs a few syncs, not one each, and no
 * file call blocks the event loop. `append` resolves once its line is
 * durable. When the file grows past `compactAbove`, the next write replaces
 * it with `snapshot()` instead (temp file, fsync, rename), which already
 * includes the effect of the lines waiting to be written.
 *
 * A crash mid-write leaves a torn last line; `readLines` skips it.
 */
export class Journal {
  private handle: FileHandle | undefined;
  private readonly queue: Queued[] = [];
  private readonly writer = new SerialDrain(() => this.drain(), () => this.queue.length > 0);
  private lines: number;
  /** The complete lines the file held when opened, oldest first: the owner's state to replay. */
  readonly opened: readonly string[];
  private closed = false;
  private syncCount = 0;

  constructor(
    readonly file: string,
    private readonly options: JournalOptions,
  ) {
    mkdirSync(dirname(file), { recursive: true });
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    const whole = text.slice(0, text.lastIndexOf('\n') + 1);
    // A torn last line would glue itself to the next append: cut it off.
    if (whole.length < text.length) truncateSync(file, Buffer.byteLength(whole));
    this.opened = linesOf(whole);
    this.lines = this.opened.length;
  }

  /** Disk writes (each one fdatasync or one compaction) so far: a burst of appends shares them. */
  get syncs(): number {
    return this.syncCount;
  }

  /** Replaces the file with `lines` at once, synchronously: for start-up, before anything is appended. */
  rewriteSync(lines: string[]): void {
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, lines.map((l) => `${l}\n`).join(''));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    this.lines = lines.length;
  }

  /** Number of lines in the file (written or about to be). */
  get length(): number {
    return this.lines + this.queue.length;
  }

  append(line: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`journal ${this.file} is closed`));
    const stored = new Promise<void>((resolve, reject) => this.queue.push({ line, resolve, reject }));
    this.writer.kick();
    return stored;
  }

  /** Waits for queued lines, then closes the file. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.writer.running) await this.writer.running;
    await this.handle?.close();
    this.handle = undefined;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0);
      this.syncCount++;
      try {
        if (this.lines + batch.length > this.options.compactAbove()) await this.compact();
        else {
          this.handle ??= await open(this.file, 'a');
          await this.handle.write(batch.map((q) => `${q.line}\n`).join(''));
          await this.handle.datasync();
          this.lines += batch.length;
        }
        for (const q of batch) q.resolve();
      } catch (err) {
        for (const q of batch) q.reject(err as Error);
      }
    }
  }

  private async compact(): Promise<void> {
    const lines = this.options.snapshot();
    const tmp = `${this.file}.tmp`;
    const out = await open(tmp, 'w');
    try {
      await out.write(lines.map((l) => `${l}\n`).join(''));
      await out.sync();
    } finally {
      await out.close();
    }
    await this.handle?.close();
    this.handle = undefined;
    renameSync(tmp, this.file);
    this.lines = lines.length;
  }
}

/** The complete lines of a journal file, oldest first; none when it does not exist. A torn last line is left out. */
export function readLines(file: string): string[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  return linesOf(text.slice(0, text.lastIndexOf('\n') + 1));
}

function linesOf(whole: string): string[] {
  return whole.split('\n').filter(Boolean);
}
