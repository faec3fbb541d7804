import { createHash } from 'node:crypto';
import { FailedPreconditionError } from '@virtfleet/shared';
import { Journal } from './journal.js';

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
 * most once, across agent restarts. Entries go to a JSON-lines journal (group
 * commit: a command's result is returned once its entry is on disk), which is
 * compacted to the newest `capacity` entries when it doubles.
 *
 * Failed commands are not recorded: a retry of a failed command runs again,
 * which is safe because every driver operation is idempotent by intent.
 */
export class CommandLedger {
  private readonly entries = new Map<string, LedgerEntry>();
  private readonly inFlight = new Map<string, { requestHash: string; promise: Promise<unknown> }>();
  private readonly journal: Journal;

  constructor(
    file: string,
    /** @default 10_000 */
    private readonly capacity = 10_000,
  ) {
    this.journal = new Journal(file, { snapshot: () => this.newest().map((e) => JSON.stringify(e)), compactAbove: () => 2 * this.capacity });
    this.load(this.journal.opened);
  }

  /** Waits for entries on their way to disk. */
  close(): Promise<void> {
    return this.journal.close();
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
    const promise = execute().then(async (result) => {
      await this.record({ commandId, method, requestHash, result, at: Date.now() });
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

  private record(entry: LedgerEntry): Promise<void> {
    this.entries.set(entry.commandId, entry);
    return this.journal.append(JSON.stringify(entry));
  }

  private load(lines: readonly string[]): void {
    for (const line of lines) {
      try {
        const entry = JSON.parse(line) as LedgerEntry;
        if (typeof entry.commandId === 'string' && typeof entry.requestHash === 'string') this.entries.set(entry.commandId, entry);
      } catch {
        // Not an entry; a compaction drops it.
      }
    }
    if (this.entries.size > this.capacity) this.journal.rewriteSync(this.newest().map((e) => JSON.stringify(e)));
  }

  /** Keeps only the newest `capacity` entries, and returns them oldest first. */
  private newest(): LedgerEntry[] {
    const newest = [...this.entries.values()].sort((a, b) => a.at - b.at).slice(-this.capacity);
    this.entries.clear();
    for (const e of newest) this.entries.set(e.commandId, e);
    return newest;
  }
}
