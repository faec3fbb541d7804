import type { WorkloadTelemetry } from '@virtfleet/shared';
import { DriverTimeoutError } from '../errors.js';
import type { ObservedWorkload, WorkloadManager } from '../workload-manager.js';

/** Every workload's state as observed by one complete pass over the drivers. */
export interface WorkloadSnapshot {
  workloads: WorkloadTelemetry[];
  /** When the pass began, in ms since the epoch: what the coordinator compares with its commands. */
  startedAtMs: number;
}

interface CpuSample {
  cpuTimeNs: number;
  at: bigint;
}

/** Usage reads in flight at once. */
const USAGE_READS_AT_ONCE = 4;

interface Usage {
  cpuPercent: number;
  memoryUsedMiB: number;
}

/**
 * Reports each workload's state with its CPU and memory use. CPU comes from
 * drivers' cumulative counters, as a percentage (100 = one full CPU) between
 * successive readings.
 *
 * Usage can be slow to read (Docker's stats endpoint takes about a second
 * per container), so it is refreshed in the background: a sample carries the
 * latest usage read so far and is never held up by it. Reads are budgeted at
 * `usageReadsPerSecond`, a few at a time, the longest-unread workloads first:
 * a host with a thousand containers refreshes each one's figures less often
 * instead of keeping its engine busy with stats calls while creates wait.
 *
 * States can be slow too, when an engine stalls. `snapshot(budgetMs)` waits
 * at most that long for a pass begun after the call, and otherwise returns
 * the newest complete one. A pass in which a driver missed its deadline is
 * discarded whole: a workload is never reported `unknown` because its engine
 * was slow, only reported late, with the age of its observation.
 */
export class WorkloadSampler {
  private readonly previous = new Map<string, CpuSample>();
  private readonly latest = new Map<string, Usage>();
  /** When each workload's usage was last read (ms since the epoch); the oldest go first. */
  private readonly readAt = new Map<string, number>();
  private lastRefreshMs: number | undefined;
  private refreshing: Promise<void> | undefined;
  private pass: Promise<void> | undefined;
  private nextPass: Promise<void> | undefined;
  private latestSnapshot: WorkloadSnapshot | undefined;

  constructor(
    private readonly manager: WorkloadManager,
    private readonly usageReadsPerSecond = 20,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The newest complete observation: one begun after this call if it
   * finishes within `budgetMs`, else the newest before it (undefined before
   * the first pass completes).
   */
  async snapshot(budgetMs: number): Promise<WorkloadSnapshot | undefined> {
    const fresh = this.passFromNow();
    // A plain timer: aborting a timers/promises delay builds an AbortError with its stack on every call, which
    // at thousands of samples a second (a simulated fleet) cost more than the sample itself.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([fresh, new Promise<void>((resolve) => (timer = setTimeout(resolve, budgetMs)))]);
    clearTimeout(timer);
    return this.latestSnapshot;
  }

  /** One observation, waited for however long it takes. */
  async sample(): Promise<WorkloadTelemetry[]> {
    return this.toTelemetry(await this.manager.observeAll());
  }

  /** A pass that begins now, or right after the one in progress (coalesced). */
  private passFromNow(): Promise<void> {
    if (!this.pass) {
      this.pass = this.runPass().finally(() => (this.pass = undefined));
      return this.pass;
    }
    this.nextPass ??= this.pass.then(() => {
      this.nextPass = undefined;
      return this.passFromNow();
    });
    return this.nextPass;
  }

  private async runPass(): Promise<void> {
    const startedAtMs = Date.now();
    try {
      const observed = await this.manager.observeAll();
      if (observed.some((o) => o.error instanceof DriverTimeoutError)) return;
      this.latestSnapshot = { workloads: this.toTelemetry(observed), startedAtMs };
    } catch {
      // Keep the previous snapshot.
    }
  }

  private toTelemetry(observed: ObservedWorkload[]): WorkloadTelemetry[] {
    this.refreshing ??= this.refreshUsage(observed).finally(() => (this.refreshing = undefined));
    const seen = new Set(observed.map((o) => o.workload.workloadId));
    for (const id of this.latest.keys()) if (!seen.has(id)) this.latest.delete(id);
    for (const id of this.previous.keys()) if (!seen.has(id)) this.previous.delete(id);
    for (const id of this.readAt.keys()) if (!seen.has(id)) this.readAt.delete(id);
    return observed.map(({ driver, workload }) => {
      const usage = workload.state === 'running' ? this.latest.get(workload.workloadId) : undefined;
      return {
        workload_id: workload.workloadId,
        name: workload.name,
        kind: workload.kind,
        state: workload.state,
        driver: driver.name,
        driver_ref: workload.ref,
        cpu_percent: Math.round((usage?.cpuPercent ?? 0) * 100) / 100,
        memory_used_mib: Math.round((usage?.memoryUsedMiB ?? 0) * 100) / 100,
        ...(workload.addresses?.length ? { addresses: workload.addresses } : {}),
      };
    });
  }

  /** Resolves once the usage refresh in progress (if any) is done; for tests and shutdown. */
  async settled(): Promise<void> {
    await this.refreshing;
  }

  /** The running workloads whose usage this refresh reads: as many as the budget since the last one allows, longest unread first. */
  private dueForUsage(observed: ObservedWorkload[]): ObservedWorkload[] {
    const now = this.now();
    const elapsedMs = this.lastRefreshMs === undefined ? 1000 : now - this.lastRefreshMs;
    this.lastRefreshMs = now;
    // At least one, so every workload is read eventually; at most two seconds' worth after a pause.
    const budget = Math.max(1, Math.floor((Math.min(elapsedMs, 2000) * this.usageReadsPerSecond) / 1000));
    const running = observed.filter((o) => o.workload.state === 'running');
    if (running.length <= budget) return running;
    const age = (o: ObservedWorkload) => this.readAt.get(o.workload.workloadId) ?? 0;
    return running.sort((a, b) => age(a) - age(b)).slice(0, budget);
  }

  private async refreshUsage(observed: ObservedWorkload[]): Promise<void> {
    const due = this.dueForUsage(observed);
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(USAGE_READS_AT_ONCE, due.length) }, async () => {
        while (next < due.length) await this.readUsage(due[next++]!);
      }),
    );
  }

  private async readUsage({ driver, workload }: ObservedWorkload): Promise<void> {
    this.readAt.set(workload.workloadId, this.now());
    const usage = await driver.usage(workload.workloadId).catch(() => undefined);
    if (!usage) return;
    const at = process.hrtime.bigint();
    const before = this.previous.get(workload.workloadId);
    const cpuPercent = before && at > before.at && usage.cpuTimeNs >= before.cpuTimeNs ? ((usage.cpuTimeNs - before.cpuTimeNs) / Number(at - before.at)) * 100 : 0;
    this.previous.set(workload.workloadId, { cpuTimeNs: usage.cpuTimeNs, at });
    this.latest.set(workload.workloadId, { cpuPercent, memoryUsedMiB: usage.memoryUsedMiB });
  }
}
