import {
  defaultFailoverMode,
  errorMessage,
  FailedPreconditionError,
  MAX_HOST_WORKLOADS,
  NotFoundError,
  ResourceExhaustedError,
  UnavailableError,
  UnimplementedError,
  type LogChunk,
  type Logger,
  type LogRequest,
  type pb,
  type WorkloadKind,
  type WorkloadSpec,
} from '@virtfleet/shared';
import type { CommandLedger } from './command-ledger.js';
import { WORKLOAD_RESOURCE, type Driver, type DriverWorkload, type IncomingMigration, type LiveMigration, type MigrationOptions, type MigrationProgressReport, type StateOptions, type WorkloadStateTransfer } from './drivers/driver.js';
import { KeyedLock } from './keyed-lock.js';
import type { Fenceable } from './fencing/host-lease.js';
import type { WorkloadRecord, WorkloadRecords } from './workload-records.js';

export type LifecycleAction = 'start' | 'stop' | 'pause' | 'resume' | 'delete';

export interface ActionOptions {
  /** Stop only; 0 means the configured default. */
  timeoutSeconds?: number;
  force?: boolean;
}

/** A workload's state plus the driver that holds it. */
export interface ObservedWorkload {
  driver: Driver;
  workload: DriverWorkload;
  /** Why the workload could not be observed (its state is then `unknown`). */
  error?: unknown;
}

/**
 * Carries out lifecycle commands on the workloads this host owns. Every
 * command runs at most once per command id (through the ledger) and one at a
 * time per workload (through a keyed lock).
 */
export class WorkloadManager implements Fenceable {
  private readonly lock = new KeyedLock();
  private readonly driversByName: Map<string, Driver>;
  /** Whether this host holds its lease; without it, fence-first workloads may not run. No lease kept: always. */
  private leaseHeld = true;

  constructor(
    private readonly drivers: readonly Driver[],
    private readonly records: WorkloadRecords,
    private readonly ledger: CommandLedger,
    private readonly log: Logger,
    /** Stop timeout when a request gives none. */
    private readonly stopTimeoutSeconds: number,
    /** Called after any command changed a workload, to publish telemetry early. */
    private readonly onChange: () => void = () => undefined,
    /** The most workloads this host holds; a create beyond it is refused with RESOURCE_EXHAUSTED. @default MAX_HOST_WORKLOADS */
    private readonly maxWorkloads = MAX_HOST_WORKLOADS,
  ) {
    this.driversByName = new Map(drivers.map((d) => [d.name, d]));
  }

  /**
   * Makes the records match what the backends hold after a restart: adopts
   * owned workloads that have no record (a crash between create and record),
   * and forgets records whose workload is gone. A backend that cannot be
   * listed is left alone, so an outage does not erase records.
   */
  /**
   * Reconciles records with what each engine holds: adopts labelled workloads without a record,
   * forgets records whose workload is gone. A driver that cannot list now keeps its records as they
   * are and is named in `unlisted`, for the caller to retry once it answers.
   */
  async recover(only?: readonly string[]): Promise<{ adopted: number; forgotten: number; unlisted: string[] }> {
    let adopted = 0;
    let forgotten = 0;
    const unlisted: string[] = [];
    for (const driver of this.drivers) {
      if (only && !only.includes(driver.name)) continue;
      let owned: DriverWorkload[];
      try {
        owned = await driver.list();
      } catch (err) {
        this.log.warn({ driver: driver.name, err }, 'cannot list workloads; keeping records as they are until it answers');
        unlisted.push(driver.name);
        continue;
      }
      const present = new Set(owned.map((w) => w.workloadId));
      for (const w of owned) {
        if (this.records.get(w.workloadId)) continue;
        await this.records.put({ workloadId: w.workloadId, name: w.name, kind: w.kind, driver: driver.name, createdAt: new Date().toISOString() });
        adopted++;
      }
      for (const record of this.records.all()) {
        if (record.driver === driver.name && !present.has(record.workloadId)) {
          await this.records.remove(record.workloadId);
          forgotten++;
        }
      }
    }
    return { adopted, forgotten, unlisted };
  }

  create(commandId: string, workloadId: string, spec: WorkloadSpec): Promise<pb.WorkloadStatus> {
    return this.ledger.run(commandId, 'create', { workloadId, spec }, () =>
      this.makeWorkload(workloadId, spec, (driver) => {
        this.requireLease(spec.failover, workloadId);
        return () => driver.create(workloadId, spec);
      }),
    );
  }

  /**
   * Makes a workload on this host (a create, an import), one at a time per
   * workload: checks the id against the record and the host's limit, picks
   * the driver, records the intent first (after a crash, recover() reconciles
   * it with the backend), then runs what `prepare` answers. The record is
   * forgotten again only when the engine says there is no such workload: one
   * that timed out may still be making it.
   */
  private makeWorkload(workloadId: string, spec: WorkloadSpec, prepare: (driver: Driver) => () => Promise<DriverWorkload>): Promise<pb.WorkloadStatus> {
    return this.lock.run(workloadId, async () => {
      const existing = this.records.get(workloadId);
      if (existing && (existing.name !== spec.name || existing.kind !== spec.kind))
        throw new FailedPreconditionError(`workload id ${workloadId} already holds ${existing.kind} ${existing.name}`);
      // Telemetry lists every workload of a host in one message: a host never holds more than that can carry.
      if (!existing && this.records.size >= this.maxWorkloads)
        throw new ResourceExhaustedError(`this host holds ${this.records.size} workloads, the most it may hold`);
      const driver = existing ? this.driverNamed(existing.driver) : this.driverFor(spec.kind);
      const make = prepare(driver);
      if (!existing) await this.records.put({ workloadId, name: spec.name, kind: spec.kind, driver: driver.name, createdAt: new Date().toISOString(), failover: spec.failover });
      else if (existing.fencedAt) await this.records.put({ ...existing, fencedAt: undefined });
      try {
        return this.changed(driver, await make());
      } catch (err) {
        if (!existing && (await driver.inspect(workloadId).then((w) => w === undefined, () => false))) await this.records.remove(workloadId);
        throw err;
      }
    });
  }

  act(action: LifecycleAction, commandId: string, workloadId: string, options: ActionOptions = {}): Promise<pb.WorkloadStatus> {
    return this.ledger.run(commandId, action, { workloadId, ...options }, () =>
      this.lock.run(workloadId, async () => {
        const record = this.records.get(workloadId);
        if (!record) {
          if (action === 'delete') return deletedStatus(workloadId);
          throw new NotFoundError(WORKLOAD_RESOURCE, workloadId);
        }
        const driver = this.driverNamed(record.driver);
        if (action === 'start' || action === 'resume') {
          this.requireLease(failoverOf(record), workloadId);
          if (record.fencedAt) await this.records.put({ ...record, fencedAt: undefined });
        }
        switch (action) {
          case 'start':
            return this.changed(driver, await driver.start(workloadId));
          case 'stop':
            return this.changed(
              driver,
              await driver.stop(workloadId, { timeoutSeconds: options.timeoutSeconds || this.stopTimeoutSeconds, force: options.force ?? false }),
            );
          case 'pause':
            return this.changed(driver, await driver.pause(workloadId));
          case 'resume':
            return this.changed(driver, await driver.resume(workloadId));
          case 'delete':
            await driver.delete(workloadId);
            await this.records.remove(workloadId);
            this.onChange();
            return { ...deletedStatus(workloadId), name: record.name, kind: record.kind, driver: driver.name };
        }
      }),
    );
  }

  /**
   * Live migration, on the target: makes the workload's files without
   * creating it. The workload gets a record here only when the coordinator
   * takes it over after the move (a create, which adopts the running copy).
   * @throws FailedPreconditionError when this host already holds the workload
   * @throws UnimplementedError when no driver here can receive its kind
   */
  prepareIncoming(commandId: string, workloadId: string, spec: WorkloadSpec): Promise<pb.IncomingMigration> {
    return this.ledger.run(commandId, 'prepare-incoming', { workloadId, spec }, () =>
      this.lock.run(workloadId, async () => {
        if (this.records.get(workloadId)) throw new FailedPreconditionError(`this host already holds workload ${workloadId}`);
        const incoming = await migrationOf(this.driverFor(spec.kind)).prepareIncoming(workloadId, spec);
        return {
          host_id: incoming.hostId,
          hypervisor_uri: incoming.hypervisorUri,
          transfer_uri: incoming.transferUri,
          files: Object.entries(incoming.files).map(([role, path]) => ({ role, path })),
          backend_name: incoming.backendName,
        };
      }),
    );
  }

  /**
   * Live migration, on the source: moves the workload to the prepared
   * target and forgets it here once it runs there. A repeat of a finished
   * command answers from the ledger without moving anything.
   * @throws NotFoundError when this host does not hold the workload
   * @throws AbortedError when abortMigration called it off; it still runs here
   */
  migrateOut(commandId: string, workloadId: string, target: IncomingMigration, options: MigrationOptions, onProgress: (p: MigrationProgressReport) => void): Promise<pb.WorkloadStatus> {
    return this.ledger.run(commandId, 'migrate', { workloadId, target, options }, () =>
      this.lock.run(workloadId, async () => {
        const record = this.records.get(workloadId);
        if (!record) throw new NotFoundError(WORKLOAD_RESOURCE, workloadId);
        const driver = this.driverNamed(record.driver);
        await migrationOf(driver).migrateOut(workloadId, target, options, onProgress);
        await this.records.remove(workloadId);
        this.onChange();
        return { ...deletedStatus(workloadId), name: record.name, kind: record.kind, driver: driver.name, message: `migrated to ${target.hostId}` };
      }),
    );
  }

  /** Calls off this host's migration of the workload. @throws FailedPreconditionError when none runs */
  async abortMigration(workloadId: string): Promise<void> {
    const record = this.records.get(workloadId);
    if (!record) throw new NotFoundError(WORKLOAD_RESOURCE, workloadId);
    await migrationOf(this.driverNamed(record.driver)).abortMigration(workloadId);
  }

  /**
   * Removes the files a migration that did not finish prepared here.
   * @throws FailedPreconditionError when the workload is held here (the migration finished)
   */
  discardIncoming(workloadId: string): Promise<void> {
    return this.lock.run(workloadId, async () => {
      if (this.records.get(workloadId)) throw new FailedPreconditionError(`this host holds workload ${workloadId}; its files stay`);
      for (const driver of this.drivers) await driver.migration?.discardIncoming(workloadId);
    });
  }

  /**
   * Cold migration, on the source: exports the stopped workload's state and
   * hands its files to `send`, holding the workload meanwhile so nothing
   * starts it while its files are read. With `snapshot` (a backup), the state
   * as it is now, while it may run. `options.memory` carries a running VM's
   * memory (see WorkloadStateTransfer).
   * @throws NotFoundError / FailedPreconditionError (not stopped) / UnimplementedError
   */
  exportState(workloadId: string, dir: string, send: (files: Record<string, string>) => Promise<void>, snapshot: boolean, options: StateOptions): Promise<void> {
    return this.lock.run(workloadId, async () => {
      const record = this.records.get(workloadId);
      if (!record) throw new NotFoundError(WORKLOAD_RESOURCE, workloadId);
      const transfer = stateTransferOf(this.driverNamed(record.driver));
      const exported = await (snapshot ? transfer.snapshotState(workloadId, dir, options) : transfer.exportState(workloadId, dir, options));
      try {
        await send(exported.files);
      } finally {
        await exported.release();
      }
    });
  }

  /**
   * Cold migration, on the target: makes the workload, stopped, from the
   * received files. Runs once per command id; the workload gets its record
   * first, as a create does.
   */
  importState(commandId: string, workloadId: string, spec: WorkloadSpec, files: Record<string, string>): Promise<pb.WorkloadStatus> {
    return this.ledger.run(commandId, 'import-state', { workloadId, spec }, () =>
      this.makeWorkload(workloadId, spec, (driver) => {
        const transfer = stateTransferOf(driver);
        return () => transfer.importState(workloadId, spec, files);
      }),
    );
  }

  async get(workloadId: string): Promise<pb.WorkloadStatus> {
    const observed = await this.observe(workloadId);
    if (!observed) throw new NotFoundError(WORKLOAD_RESOURCE, workloadId);
    return toStatus(observed.driver, observed.workload);
  }

  /**
   * The workload's log from its driver.
   * @throws NotFoundError when this host does not own it
   * @throws UnimplementedError when its driver keeps no logs
   */
  logs(workloadId: string, request: LogRequest, signal: AbortSignal): AsyncIterable<LogChunk> {
    const record = this.records.get(workloadId);
    if (!record) throw new NotFoundError(WORKLOAD_RESOURCE, workloadId);
    const driver = this.driverNamed(record.driver);
    if (!driver.logs) throw new UnimplementedError(`the ${driver.name} driver keeps no workload logs`);
    return driver.logs(workloadId, request, signal);
  }

  /** The workload as its backend sees it now; undefined if this host does not own it. */
  async observe(workloadId: string): Promise<ObservedWorkload | undefined> {
    const record = this.records.get(workloadId);
    if (!record) return undefined;
    const driver = this.driverNamed(record.driver);
    const workload = await driver.inspect(workloadId);
    if (!workload) {
      // Mid-create the record comes first; otherwise the copy was removed behind our back. Forget it,
      // so this host reports it missing and the coordinator can create it again.
      if (this.lock.busy(workloadId)) return { driver, workload: { workloadId, name: record.name, kind: record.kind, state: 'creating', ref: '', message: 'being created' } };
      const again = await this.lock.run(workloadId, async () => {
        const found = await driver.inspect(workloadId);
        if (!found && this.records.get(workloadId)) {
          await this.records.remove(workloadId);
          this.log.warn({ workload: workloadId }, 'workload vanished from its backend; record forgotten');
        }
        return found;
      });
      return again ? { driver, workload: again } : undefined;
    }
    // Stopped by fencing is a failure, not an exit: restart policies treat it so.
    if (record.fencedAt && workload.state === 'stopped') return { driver, workload: { ...workload, state: 'failed', message: `stopped by self-fencing at ${record.fencedAt}` } };
    return { driver, workload };
  }

  setLeaseHeld(held: boolean): void {
    this.leaseHeld = held;
  }

  /**
   * Self-fencing: force-stops every fence-first workload, each under its own
   * lock so a command in progress finishes first. Workloads stay stopped;
   * only a later start (from the coordinator) runs them again.
   */
  async fence(reason: string): Promise<{ stopped: number; failed: number; workloads: string[] }> {
    let stopped = 0;
    let failed = 0;
    const workloads: string[] = [];
    await Promise.all(
      this.records
        .all()
        .filter((r) => failoverOf(r) === 'fence-first')
        .map((r) =>
          this.lock.run(r.workloadId, async () => {
            const record = this.records.get(r.workloadId);
            if (!record) return;
            try {
              const driver = this.driverNamed(record.driver);
              const current = await driver.inspect(record.workloadId);
              if (current && (current.state === 'running' || current.state === 'paused' || current.state === 'creating')) {
                await driver.stop(record.workloadId, { timeoutSeconds: 0, force: true });
                await this.records.put({ ...record, fencedAt: new Date().toISOString() });
                stopped++;
                workloads.push(record.workloadId);
              }
            } catch (err) {
              failed++;
              this.log.error({ workload: record.workloadId, reason, err: errorMessage(err) }, 'could not stop a fence-first workload');
            }
          }),
        ),
    );
    if (stopped > 0) this.onChange();
    return { stopped, failed, workloads };
  }

  /** Notes that the fencer process stopped these workloads, so they report as stopped by self-fencing. */
  async markFenced(workloadIds: string[], at: string): Promise<void> {
    await Promise.all(
      workloadIds.map((id) => {
        const record = this.records.get(id);
        return record ? this.records.put({ ...record, fencedAt: at }) : undefined;
      }),
    );
    this.onChange();
  }

  private requireLease(failover: WorkloadRecord['failover'] | undefined, workloadId: string): void {
    if (failover === 'fence-first' && !this.leaseHeld)
      throw new UnavailableError(`workload ${workloadId} is fence-first and this host does not hold its lease (NATS unreachable or fenced); not started`);
  }

  /** Every owned workload, minus ones that vanished meanwhile; one that cannot be inspected shows as `unknown`. */
  async observeAll(): Promise<ObservedWorkload[]> {
    const observed = await Promise.all(
      this.records.all().map(async (record): Promise<ObservedWorkload | undefined> => {
        try {
          return await this.observe(record.workloadId);
        } catch (err) {
          const driver = this.driverNamed(record.driver);
          return { driver, workload: { workloadId: record.workloadId, name: record.name, kind: record.kind, state: 'unknown' as const, ref: '', message: String(err) }, error: err };
        }
      }),
    );
    return observed.filter((o): o is ObservedWorkload => o !== undefined);
  }

  async list(): Promise<pb.WorkloadStatus[]> {
    return (await this.observeAll()).map((o) => toStatus(o.driver, o.workload));
  }

  private changed(driver: Driver, workload: DriverWorkload): pb.WorkloadStatus {
    this.onChange();
    return toStatus(driver, workload);
  }

  private driverFor(kind: WorkloadKind): Driver {
    const driver = this.drivers.find((d) => d.kinds.includes(kind));
    if (!driver) throw new FailedPreconditionError(`this host has no driver for kind ${kind}`);
    return driver;
  }

  private driverNamed(name: string): Driver {
    const driver = this.driversByName.get(name);
    if (!driver) throw new UnavailableError(`driver ${name} is not enabled on this host`);
    return driver;
  }
}

function failoverOf(record: WorkloadRecord): NonNullable<WorkloadRecord['failover']> {
  return record.failover ?? defaultFailoverMode(record.kind);
}

export function toStatus(driver: Driver, w: DriverWorkload, usage?: { cpuPercent: number; memoryUsedMiB: number }): pb.WorkloadStatus {
  return {
    workload_id: w.workloadId,
    name: w.name,
    kind: w.kind,
    state: w.state,
    driver: driver.name,
    driver_ref: w.ref,
    message: w.message ?? '',
    cpu_percent: usage?.cpuPercent ?? 0,
    memory_used_mib: usage?.memoryUsedMiB ?? 0,
    ...(w.exitCode !== undefined ? { exit_code: w.exitCode } : {}),
    addresses: w.addresses ?? [],
  };
}

function deletedStatus(workloadId: string): pb.WorkloadStatus {
  return { workload_id: workloadId, state: 'deleted', name: '', kind: '', driver: '', driver_ref: '', message: '', cpu_percent: 0, memory_used_mib: 0 };
}

function migrationOf(driver: Driver): LiveMigration {
  if (!driver.migration) throw new UnimplementedError(`the ${driver.name} driver cannot migrate workloads live`);
  return driver.migration;
}

function stateTransferOf(driver: Driver): WorkloadStateTransfer {
  if (!driver.stateTransfer) throw new UnimplementedError(`the ${driver.name} driver cannot export or import a workload's state`);
  return driver.stateTransfer;
}
