import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WORKLOAD_ID, type FailoverMode, type WorkloadKind } from '@virtfleet/shared';

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
 * One JSON file per owned workload under `<stateDir>/workloads/`. Written
 * atomically (temp file + rename) so a crash leaves the old or the new record.
 */
export class WorkloadRecords {
  private readonly dir: string;
  private readonly records = new Map<string, WorkloadRecord>();

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'workloads');
    mkdirSync(this.dir, { recursive: true });
    for (const file of readdirSync(this.dir)) {
      if (!file.endsWith('.json')) continue;
      try {
        const record = JSON.parse(readFileSync(join(this.dir, file), 'utf8')) as WorkloadRecord;
        if (WORKLOAD_ID.test(record.workloadId)) this.records.set(record.workloadId, record);
      } catch {
        rmSync(join(this.dir, file), { force: true });
      }
    }
  }

  get(workloadId: string): WorkloadRecord | undefined {
    return this.records.get(workloadId);
  }

  all(): WorkloadRecord[] {
    return [...this.records.values()];
  }

  put(record: WorkloadRecord): void {
    // The id passed WORKLOAD_ID validation, so it is a safe file name.
    const file = this.fileFor(record.workloadId);
    writeFileSync(`${file}.tmp`, JSON.stringify(record), { flush: true });
    renameSync(`${file}.tmp`, file);
    this.records.set(record.workloadId, record);
  }

  remove(workloadId: string): void {
    rmSync(this.fileFor(workloadId), { force: true });
    this.records.delete(workloadId);
  }

  private fileFor(workloadId: string): string {
    if (!WORKLOAD_ID.test(workloadId)) throw new Error(`unsafe workload id ${JSON.stringify(workloadId)}`);
    return join(this.dir, `${workloadId}.json`);
  }
}
