import { errorMessage, parseDurationMs, type BackupPolicy, type Logger } from '@virtfleet/shared';
import type { Workload } from '../workloads/workload.js';
import type { BackupSummary } from './backup-repository.js';
import { BACKED_UP_STATES, type BackupService } from './backup-service.js';
import { planRetention } from './retention.js';

export interface BackupSchedulerOptions {
  /** How often the leader looks for workloads whose backup is due. @default 60_000 */
  checkIntervalMs: number;
}

/** What the scheduler uses of BackupService. */
export type ScheduledBackups = Pick<BackupService, 'create' | 'list' | 'remove'>;

/** What one check did, for tests and logs. */
export interface BackupCheckResult {
  /** Names of the workloads backed up. */
  created: string[];
  /** Ids of the backups pruned. */
  removed: string[];
  /** Names of the workloads whose backup or pruning failed; tried again at the next check. */
  failed: string[];
}

/**
 * Scheduled backups: while leading, every check backs up each workload with a
 * `spec.backup` policy whose newest backup (by name) is older than `every`
 * (or that has none), then prunes that workload's backups by the policy's
 * keep_* rules. At most one job per workload at a time; a failure is logged
 * and the next check tries again. Only workloads that have a copy now
 * (running, paused, stopped) are backed up; pruning needs no copy.
 */
export class BackupScheduler {
  private timer: NodeJS.Timeout | undefined;
  /** Workload names with a job under way. */
  private readonly busy = new Set<string>();

  constructor(
    private readonly backups: ScheduledBackups,
    private readonly workloads: () => Workload[],
    private readonly isLeader: () => boolean,
    private readonly options: BackupSchedulerOptions,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  start(): void {
    clearInterval(this.timer);
    this.timer = setInterval(() => void this.check(), this.options.checkIntervalMs);
    this.timer.unref();
  }

  /** Stops checking; a job under way finishes its backup but prunes nothing once this coordinator no longer leads. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One check over every workload with a policy; never throws. */
  async check(): Promise<BackupCheckResult> {
    const result: BackupCheckResult = { created: [], removed: [], failed: [] };
    if (!this.isLeader()) return result;
    const jobs: Promise<void>[] = [];
    for (const w of this.workloads()) {
      const policy = w.spec.backup;
      if (!policy || w.state === 'deleting' || w.state === 'deleted' || w.desiredState === 'deleted' || this.busy.has(w.spec.name)) continue;
      this.busy.add(w.spec.name);
      jobs.push(
        this.run(w, policy, result)
          .catch((err: unknown) => {
            result.failed.push(w.spec.name);
            this.log.warn({ workload: w.id, name: w.spec.name, err: errorMessage(err) }, 'scheduled backup failed; trying again at the next check');
          })
          .finally(() => this.busy.delete(w.spec.name)),
      );
    }
    await Promise.all(jobs);
    return result;
  }

  private async run(w: Workload, policy: BackupPolicy, result: BackupCheckResult): Promise<void> {
    const name = w.spec.name;
    let backups: Pick<BackupSummary, 'id' | 'created_at' | 'workload_name'>[] = await this.backups.list(name);
    if (this.isDue(backups, policy) && w.hostId && BACKED_UP_STATES.has(w.state)) {
      if (!this.isLeader()) return;
      const made = await this.backups.create(w.id, { memory: false });
      result.created.push(name);
      backups = [made, ...backups];
    }
    const { prune } = planRetention(
      backups.filter((b) => b.workload_name === name),
      policy,
    );
    for (const b of prune) {
      if (!this.isLeader()) return;
      await this.backups.remove(b.id);
      result.removed.push(b.id);
    }
    if (prune.length > 0) this.log.info({ workload: w.id, name, pruned: prune.map((b) => b.id) }, 'pruned backups by the workload’s retention');
  }

  private isDue(backups: readonly Pick<BackupSummary, 'created_at'>[], policy: BackupPolicy): boolean {
    // The spec was validated, so `every` parses; an hour is a safe fallback should it not.
    const everyMs = parseDurationMs(policy.every) ?? 3_600_000;
    let newest = Number.NEGATIVE_INFINITY;
    for (const b of backups) {
      const ms = Date.parse(b.created_at);
      if (ms > newest) newest = ms;
    }
    return this.now() - newest >= everyMs;
  }
}
