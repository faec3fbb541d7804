import { UnavailableError, UnimplementedError, type LogChunk, type LogRequest, type WorkloadKind, type WorkloadSpec } from '@virtfleet/shared';
import { DriverTimeoutError } from '../errors.js';
import { withDeadline } from '../deadline.js';
import type { Driver, DriverFingerprint, DriverWorkload, LiveMigration, StopOptions, WorkloadStateTransfer, WorkloadUsage } from './driver.js';
import { every, type Periodic } from '../periodic.js';
import { OpQueue } from './op-queue.js';

export interface GuardOptions {
  /** Engine operations that change something (create, start, stop, pause, resume, delete) running at once; the rest wait in order. */
  concurrency: number;
  /** Deadline of a read (inspect, list, usage, fingerprint, the health probe). */
  readTimeoutMs: number;
  /** Deadline of a change, counted from when it leaves the queue; a stop adds its graceful timeout. */
  changeTimeoutMs: number;
}

/** A driver's health and queue, as telemetry reports them. */
export interface DriverStatus {
  healthy: boolean;
  /** Why it is unhealthy; empty when healthy. */
  detail: string;
  /** When the engine last answered a call (success or a definite error), in ms since the epoch. */
  answeredAtMs: number | undefined;
  queueDepth: number;
  inFlight: number;
  concurrency: number;
}

/**
 * Puts every call to a driver under a deadline, and its changes through a
 * bounded queue (`OpQueue`). A call that misses its deadline fails with
 * DriverTimeoutError and marks the driver unhealthy; so does an
 * UnavailableError from the engine. Any answer marks it healthy again. A
 * health probe (a listing) runs every `probe` interval so that a driver with
 * nothing to do is still watched and recovers without waiting for work.
 *
 * Nothing here waits on another caller: reads bypass the queue, so telemetry
 * sampling never stands behind a create storm.
 *
 * While a call is overdue (past its deadline, still unanswered), reads other
 * than the probe fail at once instead of reaching the engine: a frozen engine
 * would hold each one forever, and native bindings (libvirt's) hold a libuv
 * thread per call, so a pile of them would starve every other fs and crypto
 * call of the agent. The first answer, even a late one, ends that.
 */
export class GuardedDriver implements Driver {
  readonly name: string;
  readonly kinds: readonly WorkloadKind[];
  private readonly queue: OpQueue;
  private unhealthyDetail = '';
  private answeredAtMs: number | undefined;
  private probing = false;
  /** Calls that missed their deadline and have not answered yet. */
  private overdue = 0;
  private probeTimer: Periodic | undefined;

  constructor(
    private readonly inner: Driver,
    private readonly options: GuardOptions,
    /** Called when the driver turns unhealthy or healthy again. */
    private readonly onHealthChange: (healthy: boolean, detail: string) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {
    this.name = inner.name;
    this.kinds = inner.kinds;
    this.queue = new OpQueue(options.concurrency);
    if (inner.stateTransfer) this.stateTransfer = inner.stateTransfer;
    const migration = inner.migration;
    // Preparing and discarding are changes like any other; a migration itself takes as long as its
    // data does and ends with the backend's own verdict (or an abort), so it has no deadline or slot.
    if (migration)
      this.migration = {
        prepareIncoming: (workloadId, spec) => this.change('prepare-incoming', () => migration.prepareIncoming(workloadId, spec)),
        discardIncoming: (workloadId) => this.change('discard-incoming', () => migration.discardIncoming(workloadId)),
        migrateOut: (workloadId, target, options, onProgress) => migration.migrateOut(workloadId, target, options, onProgress),
        abortMigration: (workloadId) => migration.abortMigration(workloadId),
      };
  }

  readonly migration?: LiveMigration;
  /** Passed through: an export or import takes as long as its data does. */
  readonly stateTransfer?: WorkloadStateTransfer;

  status(): DriverStatus {
    return {
      healthy: this.unhealthyDetail === '',
      detail: this.unhealthyDetail,
      answeredAtMs: this.answeredAtMs,
      queueDepth: this.queue.depth,
      inFlight: this.queue.inFlight,
      concurrency: this.queue.concurrency,
    };
  }

  /** Probes the engine with a listing every `intervalMs`, one probe at a time, from `phase × intervalMs` on (see `every`). */
  startProbing(intervalMs: number, phase = 0): void {
    this.probeTimer?.stop();
    this.probeTimer = every(intervalMs, () => void this.probe(), phase, { unref: true });
  }

  /**
   * One probe: a listing under the read deadline. Never throws. The next probe
   * waits for this one's answer, however late, so a frozen engine holds at most
   * one of them.
   */
  async probe(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    const work = this.inner.list();
    work.then(
      () => (this.probing = false),
      () => (this.probing = false),
    );
    try {
      await this.guard('list', work, this.options.readTimeoutMs);
    } catch {
      // Recorded in the health state.
    }
  }

  fingerprint(): Promise<DriverFingerprint> {
    return this.read('fingerprint', () => this.inner.fingerprint()).catch(
      (err: unknown): DriverFingerprint => ({ name: this.name, version: '', kinds: [...this.kinds], domain_types: [], healthy: false, detail: err instanceof Error ? err.message : String(err) }),
    );
  }

  create(workloadId: string, spec: WorkloadSpec): Promise<DriverWorkload> {
    return this.change('create', () => this.inner.create(workloadId, spec));
  }
  start(workloadId: string): Promise<DriverWorkload> {
    return this.change('start', () => this.inner.start(workloadId));
  }
  stop(workloadId: string, options: StopOptions): Promise<DriverWorkload> {
    return this.change('stop', () => this.inner.stop(workloadId, options), options.force ? 0 : options.timeoutSeconds * 1000);
  }
  pause(workloadId: string): Promise<DriverWorkload> {
    return this.change('pause', () => this.inner.pause(workloadId));
  }
  resume(workloadId: string): Promise<DriverWorkload> {
    return this.change('resume', () => this.inner.resume(workloadId));
  }
  delete(workloadId: string): Promise<void> {
    return this.change('delete', () => this.inner.delete(workloadId));
  }
  inspect(workloadId: string): Promise<DriverWorkload | undefined> {
    return this.read('inspect', () => this.inner.inspect(workloadId));
  }
  list(): Promise<DriverWorkload[]> {
    return this.read('list', () => this.inner.list());
  }
  usage(workloadId: string): Promise<WorkloadUsage | undefined> {
    return this.read('usage', () => this.inner.usage(workloadId));
  }
  /** Streams straight from the backend: a log read takes as long as the reader wants, so it has no deadline and no queue slot. */
  logs(workloadId: string, request: LogRequest, signal: AbortSignal): AsyncIterable<LogChunk> {
    if (!this.inner.logs) throw new UnimplementedError(`the ${this.inner.name} driver keeps no workload logs`);
    return this.inner.logs(workloadId, request, signal);
  }

  close(): Promise<void> {
    this.probeTimer?.stop();
    return this.inner.close();
  }

  private read<T>(operation: string, call: () => Promise<T>): Promise<T> {
    if (this.overdue > 0) return Promise.reject(new DriverTimeoutError(this.name, operation, this.options.readTimeoutMs, `not sent: ${this.overdue} earlier call(s) still unanswered`));
    return this.guard(operation, call(), this.options.readTimeoutMs);
  }

  /** Waits for a queue slot (as long as it takes), then runs under the change deadline. */
  private change<T>(operation: string, call: () => Promise<T>, extraMs = 0): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue
        .run(() => {
          const work = call();
          this.guard(operation, work, this.options.changeTimeoutMs + extraMs).then(resolve, reject);
          return work;
        })
        .catch(() => undefined); // the caller got the outcome through guard()
    });
  }

  private async guard<T>(operation: string, work: Promise<T>, timeoutMs: number): Promise<T> {
    try {
      const value = await withDeadline(work, timeoutMs, () => new DriverTimeoutError(this.name, operation, timeoutMs));
      this.answered();
      return value;
    } catch (err) {
      if (err instanceof DriverTimeoutError) {
        this.unhealthy(`${err.message} (at ${new Date(this.now()).toISOString()})`);
        this.awaitOverdue(work);
      }
      else if (err instanceof UnavailableError) this.unhealthy(`${this.name}: ${operation}: ${err.message}`);
      else this.answered(); // a definite answer, such as NotFound, means the engine is there
      throw err;
    }
  }

  /** Counts `work` as overdue until it settles; a late success still proves the engine answers. */
  private awaitOverdue(work: Promise<unknown>): void {
    this.overdue++;
    work.then(
      () => {
        this.overdue--;
        this.answered();
      },
      () => {
        this.overdue--;
      },
    );
  }

  private answered(): void {
    this.answeredAtMs = this.now();
    if (this.unhealthyDetail === '') return;
    this.unhealthyDetail = '';
    this.onHealthChange(true, '');
  }

  private unhealthy(detail: string): void {
    const was = this.unhealthyDetail;
    this.unhealthyDetail = detail.slice(0, 1000);
    if (was === '') this.onHealthChange(false, this.unhealthyDetail);
  }
}
