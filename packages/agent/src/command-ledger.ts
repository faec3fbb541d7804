import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { FailedPreconditionError } from '@virtfleet/shared';

/** One command that ran to completion. */
export interface LedgerEntry<R = unknown> {
  commandId: string;
  method: string;
  /** Hash of the request, to catch a command id reused for a different request. */
  requestHash: string;
  result: R;
  at: number;
}

/**
 * Records the result of every completed command so that a command id runs at
 * most once, across agent restarts. Entries are appended to a JSON-lines file
 * (fsync'd through appendFileSync's sync write) and compacted to the newest
 * `capacity` entries when the file doubles.
 *
 * Failed commands are not recorded: a retry of a failed command runs again,
 * which is safe because every driver operation is idempotent by intent.
 */
export class CommandLedger {
  private readonly entries = new Map<string, LedgerEntry>();
  private readonly inFlight = new Map<string, { requestHash: string; promise: Promise<unknown> }>();
  private linesOnDisk = 0;

  constructor(
    private readonly file: string,
    /** @default 10_000 */
    private readonly capacity = 10_000,
  ) {
    mkdirSync(dirname(file), { recursive: true });
    if (existsSync(file)) this.load();
  }

  static hash(method: string, request: unknown): string {
    return createHash('sha256').update(method).update('\0').update(JSON.stringify(request)).digest('hex');
  }

  /**
   * Runs `execute` unless `commandId` already ran (returns its recorded result)
   * or is running now (joins it).
   * @throws FailedPreconditionError when the id was used for a different request.
   */
  async run<R>(commandId: string, method: string, request: unknown, execute: () => Promise<R>): Promise<R> {
    const requestHash = CommandLedger.hash(method, request);
    const done = this.entries.get(commandId);
    if (done) {
      this.checkSame(commandId, done.requestHash, requestHash);
      return done.result as R;
    }
    const running = this.inFlight.get(commandId);
    if (running) {
      this.checkSame(commandId, running.requestHash, requestHash);
      return running.promise as Promise<R>;
    }
    const promise = execute().then((result) => {
      this.record({ commandId, method, requestHash, result, at: Date.now() });
      return result;
    });
    this.inFlight.set(commandId, { requestHash, promise });
    try {
      return await promise;
    } finally {
      this.inFlight.delete(commandId);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  private checkSame(commandId: string, recorded: string, requested: string): void {
    if (recorded !== requested) throw new FailedPreconditionError(`command id ${commandId} was already used for a different request`);
  }

  private record(entry: LedgerEntry): void {
    this.entries.set(entry.commandId, entry);
    appendFileSync(this.file, `${JSON.stringify(entry)}\n`, { flush: true });
    this.linesOnDisk++;
    if (this.linesOnDisk > 2 * this.capacity) this.compact();
  }

  private load(): void {
    const lines = readFileSync(this.file, 'utf8').split('\n');
    for (const line of lines) {
      if (!line) continue;
      try {
        const entry = JSON.parse(line) as LedgerEntry;
        if (typeof entry.commandId === 'string' && typeof entry.requestHash === 'string') this.entries.set(entry.commandId, entry);
      } catch {
        // A torn last line from a crash mid-write: that command did not complete.
      }
      this.linesOnDisk++;
    }
    if (this.entries.size > this.capacity) this.compact();
  }

  private compact(): void {
    const newest = [...this.entries.values()].sort((a, b) => a.at - b.at).slice(-this.capacity);
    this.entries.clear();
    for (const e of newest) this.entries.set(e.commandId, e);
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, newest.map((e) => `${JSON.stringify(e)}\n`).join(''), { flush: true });
    renameSync(tmp, this.file);
    this.linesOnDisk = newest.length;
  }
}
