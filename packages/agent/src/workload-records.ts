import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { WORKLOAD_ID, type FailoverMode, type WorkloadKind } from '@virtfleet/shared';
import { Journal, readLines } from './journal.js';

/** What the agent remembers about a workload it owns, independent of the backend. */
export interface WorkloadRecord {
  workloadId: string;
  name: string;
  kind: WorkloadKind;
  driver: string;
  createdAt: string;
  /** From the spec; absent in records written before failover modes existed (the kind's default applies). */
  failover?: FailoverMode;
  /** Set when self-fencing stopped the workload; cleared when it is started again. */
  fencedAt?: string;
}

/**
 * The agent's workload records in a journal, `<stateDir>/workloads.jsonl`:
 * one line per change (`{"put": record}` or `{"remove": id}`), group
 * committed, compacted to one line per record when it holds more than twice
 * as many lines as records. `put` and `remove` change the records at once
 * and resolve when the change is on disk. Records kept one file each under
 * `<stateDir>/workloads/` (before the journal) are taken over at start-up.
 */
export class WorkloadRecords {
  private readonly records: Map<string, WorkloadRecord>;
  private readonly journal: Journal;

  constructor(stateDir: string) {
    this.journal = new Journal(journalFile(stateDir), { snapshot: () => this.snapshot(), compactAbove: () => Math.max(COMPACT_MIN_LINES, 2 * this.records.size) });
    this.records = replay(stateDir, this.journal.opened);
    const legacy = join(stateDir, LEGACY_DIR);
    if (existsSync(legacy)) {
      this.journal.rewriteSync(this.snapshot());
      rmSync(legacy, { recursive: true, force: true });
    }
  }

  /** The records as a journal on disk holds them now, without taking the journal over: for the fencer process. */
  static read(stateDir: string): WorkloadRecord[] {
    return [...replay(stateDir, readLines(journalFile(stateDir))).values()];
  }

  get(workloadId: string): WorkloadRecord | undefined {
    return this.records.get(workloadId);
  }

  all(): WorkloadRecord[] {
    return [...this.records.values()];
  }

  get size(): number {
    return this.records.size;
  }

  put(record: WorkloadRecord): Promise<void> {
    if (!WORKLOAD_ID.test(record.workloadId)) return Promise.reject(new Error(`unsafe workload id ${JSON.stringify(record.workloadId)}`));
    this.records.set(record.workloadId, record);
    return this.journal.append(JSON.stringify({ put: record }));
  }

  remove(workloadId: string): Promise<void> {
    if (!this.records.delete(workloadId)) return Promise.resolve();
    return this.journal.append(JSON.stringify({ remove: workloadId }));
  }

  /** Waits for changes on their way to disk. */
  close(): Promise<void> {
    return this.journal.close();
  }

  private snapshot(): string[] {
    return [...this.records.values()].map((record) => JSON.stringify({ put: record }));
  }
}

const LEGACY_DIR = 'workloads';
const COMPACT_MIN_LINES = 1_000;

function journalFile(stateDir: string): string {
  return join(stateDir, 'workloads.jsonl');
}

/** The records the journal's `lines` leave, applied over the legacy per-file records (which the journal, once written, supersedes). */
function replay(stateDir: string, lines: readonly string[]): Map<string, WorkloadRecord> {
  const records = new Map<string, WorkloadRecord>();
  const legacy = join(stateDir, LEGACY_DIR);
  if (existsSync(legacy)) {
    for (const file of readdirSync(legacy)) {
      if (!file.endsWith('.json')) continue;
      try {
        const record = JSON.parse(readFileSync(join(legacy, file), 'utf8')) as WorkloadRecord;
        if (WORKLOAD_ID.test(record.workloadId)) records.set(record.workloadId, record);
      } catch {
        // A record torn by a crash mid-write: recover() adopts its workload.
      }
    }
  }
  for (const line of lines) {
    try {
      const change = JSON.parse(line) as { put?: WorkloadRecord; remove?: string };
      if (change.put && WORKLOAD_ID.test(change.put.workloadId)) records.set(change.put.workloadId, change.put);
      else if (typeof change.remove === 'string') records.delete(change.remove);
    } catch {
      // Not a change; the next compaction drops it.
    }
  }
  return records;
}
