import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { AbortedError, EVENT_TYPES, errorMessage, FailedPreconditionError, InvalidArgumentError, NotFoundError, UnavailableError, type Logger, type pb, type WorkloadState } from '@virtfleet/shared';
import type { AgentClientPool } from '../dispatch/agent-client.js';
import type { EventSink } from '../events/event-log.js';
import type { HostRegistry } from '../hosts/host-registry.js';
import type { WorkloadMigration, Workload } from './workload.js';
import { createCommandId, type WorkloadController } from './workload-controller.js';
import type { MigrationLeftovers } from './migration-leftovers.js';

export interface MigrateRequest {
  requestId: string;
  /** Empty: the scheduler chooses. */
  targetHostId: string;
  mode: string;
  maxDowntimeMs: number;
  bandwidthMiBs: number;
}

/** What a migration under way has reported last; kept in memory, not stored. */
export interface MigrationProgressView {
  dataTotalBytes: number;
  dataProcessedBytes: number;
  dataRemainingBytes: number;
  bytesPerSecond: number;
  expectedDowntimeMs: number;
}

/** Progress events go out at most this often per migration. */
const PROGRESS_EVENT_INTERVAL_MS = 2000;
/** How often an abort is repeated until the source says no migration runs. */
const ABORT_POLL_MS = 1000;
/** How soon an unsettled migration is tried again when its hosts do not answer yet (after a leader change they report within seconds). */
const RECOVERY_RETRY_MS = 3000;
const MOVABLE_STATES: ReadonlySet<WorkloadState> = new Set(['running', 'paused']);
const COLD_MOVABLE_STATES: ReadonlySet<WorkloadState> = new Set(['running', 'paused', 'stopped']);

/**
 * Moves workloads between hosts while they run (VMs, live). The migration is
 * a durable record on the workload (`migration`): written before any agent
 * is asked to do anything, and while it exists the target is booked too and
 * reconciliation leaves the workload alone. The target prepares the files,
 * the source migrates (libvirt switches over atomically: the copy runs on
 * exactly one host at any time), then the workload is handed to the target
 * (a create there adopts the running copy). A failed or cancelled migration
 * leaves the workload running on the source and the target's files removed.
 */
export class WorkloadMigrator {
  private readonly progress = new Map<string, MigrationProgressView>();
  private readonly running = new Map<string, Promise<void>>();
  /** Cold migrations' transfers under way, to cancel them. */
  private readonly transfers = new Map<string, AbortController>();

  constructor(
    private readonly controller: WorkloadController,
    private readonly hosts: HostRegistry,
    private readonly agents: AgentClientPool,
    private readonly events: EventSink,
    private readonly leftovers: MigrationLeftovers,
    private readonly log: Logger,
  ) {}

  /** The last progress of the workload's migration under way, if any. */
  progressOf(workloadId: string): MigrationProgressView | undefined {
    return this.progress.get(workloadId);
  }

  /**
   * Starts a migration and returns the workload with its migration record,
   * durable. Idempotent by request id while that migration runs.
   * @throws InvalidArgumentError for a mode other than live or auto
   * @throws FailedPreconditionError when the workload cannot move now (not a running VM, already moving, no target)
   */
  async start(ref: string, request: MigrateRequest): Promise<Workload> {
    const w = this.controller.get(ref);
    if (request.requestId && w.migration?.requestId === request.requestId) return w;
    if (!['', 'auto', 'live', 'cold'].includes(request.mode)) throw new InvalidArgumentError('mode', 'must be live, cold or auto');
    // auto: VMs live, containers cold (a container cannot move while it runs).
    const mode = request.mode === 'cold' || (request.mode !== 'live' && w.spec.kind === 'container') ? 'cold' : 'live';
    if (mode === 'live' && w.spec.kind !== 'vm') throw new FailedPreconditionError(`workload ${w.id} is a container; containers migrate cold (stopped, their writable layer carried, started again)`);
    if (w.migration) throw new FailedPreconditionError(`workload ${w.id} is already migrating to ${w.migration.targetHostId}`);
    const movable = mode === 'live' ? MOVABLE_STATES : COLD_MOVABLE_STATES;
    if (w.desiredState === 'deleted' || !movable.has(w.state)) throw new FailedPreconditionError(`workload ${w.id} is ${w.state}; only ${[...movable].join(', ')} workloads migrate ${mode}`);
    const source = this.hosts.get(w.hostId);
    if (source?.status !== 'up') throw new FailedPreconditionError(`workload ${w.id}'s host ${w.hostId} is ${source?.status ?? 'unknown'}, not up`);
    if (request.targetHostId) {
      if (request.targetHostId === w.hostId) throw new InvalidArgumentError('target_host_id', `is the host workload ${w.id} already runs on`);
      if (!this.hosts.get(request.targetHostId)) throw new NotFoundError('host', request.targetHostId);
    }
    const decision = this.controller.chooseTarget(w, request.targetHostId || undefined);
    if (decision.hostId === undefined) throw new FailedPreconditionError(`no host can take workload ${w.id}: ${decision.summary}`);
    const migration: WorkloadMigration = {
      id: `mig-${randomBytes(6).toString('hex')}`,
      sourceHostId: w.hostId,
      targetHostId: decision.hostId,
      mode,
      phase: mode === 'live' ? 'preparing' : 'stopping',
      ...(mode === 'cold' ? { wasRunning: w.state !== 'stopped' } : {}),
      startedAt: new Date().toISOString(),
      maxDowntimeMs: request.maxDowntimeMs,
      bandwidthMiBs: request.bandwidthMiBs,
      requestId: request.requestId,
    };
    if (this.controller.isBusy(w.id)) throw new FailedPreconditionError(`workload ${w.id} has a command under way; try again when it ends`);
    const { workload: started, stored } = this.controller.change(w, { migration, message: `migrating to ${migration.targetHostId}` });
    await stored;
    this.events.emit(EVENT_TYPES.workloadMigrationStarted, w.id, { id: w.id, from_host: migration.sourceHostId, to_host: migration.targetHostId, mode: migration.mode, reason: decision.summary });
    const done = this.controller
      .whileBusy(w.id, () => this.carryOut(started, migration))
      // Errors end in the workload's record and events; the caller has its answer already.
      .catch((err: unknown) => this.fail(w.id, migration, err))
      .catch((err: unknown) => this.log.error({ workload: w.id, err: errorMessage(err) }, 'migration ended abnormally'))
      .finally(() => this.running.delete(w.id));
    this.running.set(w.id, done);
    return started;
  }

  /**
   * Cancels the workload's migration under way; it keeps running where it was.
   * @throws FailedPreconditionError when none is under way, or it is past the point of no return
   */
  async cancel(ref: string): Promise<Workload> {
    const w = this.controller.get(ref);
    const m = w.migration;
    if (!m) throw new FailedPreconditionError(`workload ${w.id} is not migrating`);
    if (m.phase !== 'transferring') throw new FailedPreconditionError(`the migration of workload ${w.id} is ${m.phase}; it can be cancelled while it transfers`);
    if (m.mode === 'cold') {
      const transfer = this.transfers.get(w.id);
      if (!transfer) throw new FailedPreconditionError(`the migration of workload ${w.id} is not transferring here`);
      transfer.abort(new AbortedError(`the migration of workload ${w.id} was cancelled`));
      return this.controller.change(w, { migration: { ...m, phase: 'cancelling' } }).workload;
    }
    const source = this.hosts.get(m.sourceHostId);
    if (!source) throw new FailedPreconditionError(`workload ${w.id}'s host ${m.sourceHostId} is unknown`);
    await this.agents.for(source.id, source.telemetry.address).abortMigration(w.id);
    return this.controller.change(w, { migration: { ...m, phase: 'cancelling' } }).workload;
  }

  /**
   * On becoming leader: settles the migrations a previous leader left
   * unfinished. The source's migration is aborted if it still runs (libvirt
   * then keeps the copy there); once none runs, a source that still holds
   * the workload keeps it and the target's files go, and a source that no
   * longer does means the move finished, so the target takes it over.
   */
  recoverInterrupted(): void {
    for (const w of this.controller.workloads()) {
      const m = w.migration;
      if (!m || this.running.has(w.id)) continue;
      this.log.warn({ workload: w.id, from: m.sourceHostId, to: m.targetHostId, phase: m.phase }, 'settling a migration a previous leader left unfinished');
      const done = this.controller
        .whileBusy(w.id, () => this.settle(w.id, m, new FailedPreconditionError('the coordinator leading it stopped before it finished')))
        .catch((err: unknown) => this.log.error({ workload: w.id, err: errorMessage(err) }, 'interrupted migration not settled'))
        .finally(() => this.running.delete(w.id));
      this.running.set(w.id, done);
    }
  }

  private hostAgent(hostId: string) {
    const host = this.hosts.get(hostId);
    if (!host || host.status !== 'up') throw new UnavailableError(`host ${hostId} is ${host?.status ?? 'unknown'}; waiting for it`);
    return this.agents.for(host.id, host.telemetry.address);
  }

  /** Resolves when the workload's migration under way (if any) has ended, however it ended; read the workload then. */
  async ended(workloadId: string): Promise<void> {
    await this.running.get(workloadId);
  }

  /** Waits for every migration under way to end (tests, shutdown). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.running.values()]);
  }

  private async carryOut(w: Workload, m: WorkloadMigration): Promise<void> {
    return m.mode === 'cold' ? this.carryOutCold(w, m) : this.carryOutLive(w, m);
  }

  /**
   * Stops the workload (a running VM is saved, its memory carried too, so
   * it resumes where it was), relays its state (disks, or the writable
   * layer) from the source's agent to the target's, which makes it stopped; then moves
   * ownership durably, starts it there if it ran, and removes the source's
   * copy. Until ownership moves, a failure puts everything back: the
   * target's copy removed, the source's started again.
   */
  private async carryOutCold(w: Workload, m: WorkloadMigration): Promise<void> {
    const target = this.hostAgent(m.targetHostId);
    const source = this.hostAgent(m.sourceHostId);
    const abort = new AbortController();
    this.transfers.set(w.id, abort);
    let made: pb.WorkloadStatus__Output;
    // A VM that runs is saved rather than shut down: it resumes on the target where it was.
    const withMemory = w.spec.kind === 'vm' && this.controller.get(w.id).state !== 'stopped';
    try {
      if (this.controller.get(w.id).state !== 'stopped' && !withMemory) {
        const stopped = await source.act('stop', `${m.id}.stop`, w.id);
        await this.controller.change(this.controller.get(w.id), { state: stopped.state as WorkloadState, message: `stopped to migrate to ${m.targetHostId}` }).stored;
      }
      await this.setPhase(w.id, 'transferring');
      const progress: MigrationProgressView = { dataTotalBytes: 0, dataProcessedBytes: 0, dataRemainingBytes: 0, bytesPerSecond: 0, expectedDowntimeMs: 0 };
      this.progress.set(w.id, progress);
      const startedAt = Date.now();
      const bytesPerSecondAllowed = m.bandwidthMiBs * 1024 * 1024;
      const counted = async function* (chunks: AsyncIterable<pb.WorkloadStateChunk__Output>) {
        for await (const chunk of chunks) {
          if (chunk.file) progress.dataTotalBytes += chunk.file.size_bytes;
          if (chunk.data) progress.dataProcessedBytes += chunk.data.length;
          progress.dataRemainingBytes = progress.dataTotalBytes - progress.dataProcessedBytes;
          progress.bytesPerSecond = progress.dataProcessedBytes / Math.max(0.001, (Date.now() - startedAt) / 1000);
          yield chunk;
          // --bandwidth holds for the relay too: ahead of the allowed rate, wait (the agent's stream waits with it).
          if (bytesPerSecondAllowed > 0) {
            const ahead = (progress.dataProcessedBytes / bytesPerSecondAllowed) * 1000 - (Date.now() - startedAt);
            if (ahead > 0) await delay(ahead, undefined, { signal: abort.signal });
          }
        }
      };
      made = await target.importState({ command_id: `${m.id}.import`, workload_id: w.id, spec: w.spec }, counted(source.exportState(w.id, abort.signal, { memory: withMemory })), abort.signal);
    } catch (err) {
      const why = abort.signal.aborted && abort.signal.reason instanceof AbortedError ? abort.signal.reason : err;
      await this.putBack(w.id, m);
      return this.fail(w.id, m, why);
    } finally {
      this.transfers.delete(w.id);
      this.progress.delete(w.id);
    }
    const now = this.controller.get(w.id);
    const { workload: moved, stored } = this.controller.change(now, {
      hostId: m.targetHostId,
      generation: (now.generation ?? 0) + 1,
      state: made.state as WorkloadState,
      driverRef: made.driver_ref,
      addresses: [],
      migration: { ...m, phase: 'switching' },
      message: `moved from ${m.sourceHostId}; starting on ${m.targetHostId}`,
    });
    await stored;
    await this.finishCold(moved.id, m);
  }

  /** After ownership moved: starts the workload on the target if it ran, removes the source's copy, ends the migration. */
  private async finishCold(workloadId: string, m: WorkloadMigration): Promise<void> {
    let patch: Partial<Workload> = {};
    let message = `migrated cold from ${m.sourceHostId} to ${m.targetHostId}`;
    try {
      if (m.wasRunning) {
        const started = await this.hostAgent(m.targetHostId).act('start', `${m.id}.start`, workloadId);
        patch = { state: started.state as WorkloadState, driverRef: started.driver_ref };
      }
    } catch (err) {
      // It is the target's now; reconciliation starts it once the target answers.
      message += `; starting it there failed for now: ${errorMessage(err)}`;
    }
    await this.controller.change(this.controller.get(workloadId), { ...patch, migration: undefined, message }).stored;
    try {
      await this.hostAgent(m.sourceHostId).act('delete', `${m.id}.cleanup`, workloadId);
    } catch (err) {
      // Reconciliation removes a copy on a host its workload left, once the new copy runs.
      this.log.warn({ workload: workloadId, host: m.sourceHostId, err: errorMessage(err) }, 'the copy a cold migration left behind was not removed yet');
    }
    this.events.emit(EVENT_TYPES.workloadMigrationCompleted, workloadId, { id: workloadId, from_host: m.sourceHostId, to_host: m.targetHostId, mode: m.mode });
    this.log.info({ workload: workloadId, from: m.sourceHostId, to: m.targetHostId }, 'workload migrated cold');
  }

  /** A cold migration that did not move ownership: the target's copy (whole or partial) goes, the source's runs again if it ran. */
  private async putBack(workloadId: string, m: WorkloadMigration): Promise<void> {
    try {
      await this.hostAgent(m.targetHostId).act('delete', `${m.id}.discard`, workloadId);
    } catch (err) {
      this.log.warn({ workload: workloadId, host: m.targetHostId, err: errorMessage(err) }, 'the copy of a cold migration that did not finish was not removed from its target yet');
    }
    if (!m.wasRunning) return;
    try {
      const started = await this.hostAgent(m.sourceHostId).act('start', `${m.id}.restart`, workloadId);
      await this.controller.change(this.controller.get(workloadId), { state: started.state as WorkloadState }).stored;
    } catch (err) {
      // Reconciliation starts it: it is desired running where it is.
      this.log.warn({ workload: workloadId, host: m.sourceHostId, err: errorMessage(err) }, 'not started again after a cold migration that did not finish');
    }
  }

  private async carryOutLive(w: Workload, m: WorkloadMigration): Promise<void> {
    const target = this.hosts.get(m.targetHostId);
    const source = this.hosts.get(m.sourceHostId);
    if (!target || !source) return this.fail(w.id, m, new FailedPreconditionError(`host ${!target ? m.targetHostId : m.sourceHostId} is gone`));
    const targetAgent = this.agents.for(target.id, target.telemetry.address);
    const sourceAgent = this.agents.for(source.id, source.telemetry.address);
    let incoming: pb.IncomingMigration__Output;
    try {
      incoming = await targetAgent.prepareIncoming(`${m.id}.prepare`, w.id, w.spec);
    } catch (err) {
      return this.fail(w.id, m, err);
    }
    try {
      await this.setPhase(w.id, 'transferring');
      let lastEventAt = 0;
      for await (const p of sourceAgent.migrate(`${m.id}.migrate`, w.id, incoming, { maxDowntimeMs: m.maxDowntimeMs, bandwidthMiBs: m.bandwidthMiBs }, new AbortController().signal)) {
        if (p.phase === 'completed') continue;
        const view: MigrationProgressView = {
          dataTotalBytes: p.data_total_bytes,
          dataProcessedBytes: p.data_processed_bytes,
          dataRemainingBytes: p.data_remaining_bytes,
          bytesPerSecond: p.bytes_per_second,
          expectedDowntimeMs: p.downtime_ms,
        };
        this.progress.set(w.id, view);
        if (p.phase === 'switching' && this.controller.find(w.id)?.migration?.phase === 'transferring') await this.setPhase(w.id, 'switching');
        if (Date.now() - lastEventAt >= PROGRESS_EVENT_INTERVAL_MS) {
          lastEventAt = Date.now();
          this.events.emit(EVENT_TYPES.workloadMigrationProgress, w.id, {
            id: w.id,
            phase: p.phase,
            data_total_bytes: view.dataTotalBytes,
            data_processed_bytes: view.dataProcessedBytes,
            data_remaining_bytes: view.dataRemainingBytes,
            bytes_per_second: view.bytesPerSecond,
            expected_downtime_ms: view.expectedDowntimeMs,
          });
        }
      }
    } catch (err) {
      // The stream ended without the word that the VM runs on the target: a failure, an abort, or a
      // lost agent whose migration libvirt may still be carrying out. Only libvirt can tell which.
      this.progress.delete(w.id);
      return this.settle(w.id, m, err);
    }
    this.progress.delete(w.id);
    await this.handOver(w.id, m);
  }

  /**
   * Ends a migration whose outcome is not known from the source's stream:
   * aborts it at the source until none runs there, then keeps the VM where
   * libvirt left it. Retries while the source does not answer, as long as
   * this coordinator leads (else the next leader settles it).
   */
  private async settle(workloadId: string, m: WorkloadMigration, cause: unknown): Promise<void> {
    for (;;) {
      if (!this.controller.isLeader) return;
      try {
        return await (m.mode === 'cold' ? this.settleCold(workloadId, m, cause) : this.settleOnce(workloadId, m, cause));
      } catch (err) {
        this.log.warn({ workload: workloadId, err: errorMessage(err) }, `migration not settled yet; trying again in ${RECOVERY_RETRY_MS} ms`);
        await new Promise((r) => setTimeout(r, RECOVERY_RETRY_MS));
      }
    }
  }

  /** A cold migration a previous leader left: ownership tells whether it moved (then finish it), else put everything back. */
  private async settleCold(workloadId: string, m: WorkloadMigration, cause: unknown): Promise<void> {
    if (this.controller.get(workloadId).hostId === m.targetHostId) return this.finishCold(workloadId, m);
    await this.hostAgent(m.targetHostId).act('delete', `${m.id}.discard`, workloadId);
    await this.putBack(workloadId, m);
    return this.fail(workloadId, m, cause);
  }

  private async settleOnce(workloadId: string, m: WorkloadMigration, cause: unknown): Promise<void> {
    if (this.hosts.get(m.sourceHostId)?.status === 'down') return this.settleWithoutSource(workloadId, m, cause);
    const source = this.hostAgent(m.sourceHostId);
    for (;;) {
      try {
        await source.abortMigration(workloadId);
      } catch (err) {
        if (err instanceof FailedPreconditionError || err instanceof NotFoundError) break;
        throw err;
      }
      await new Promise((r) => setTimeout(r, ABORT_POLL_MS));
    }
    const stillAtSource = await source.get(workloadId).then(
      (status) => status.state !== 'deleted',
      (err: unknown) => {
        if (err instanceof NotFoundError) return false;
        throw err;
      },
    );
    if (!stillAtSource) return this.handOver(workloadId, m);
    await this.discard(m.targetHostId, workloadId, m);
    return this.fail(workloadId, m, cause);
  }

  /**
   * A live migration whose source host is down (its lease lapsed): only the
   * target can tell where the VM is. Running or paused there (a paused VM
   * arrives paused), the move finished and the target takes it over;
   * absent, the VM stayed with its source, and failover takes it from there
   * as for any workload of a down host. A copy the target is still receiving
   * (`creating`) is waited for: libvirt ends an incoming migration whose
   * source went away.
   */
  private async settleWithoutSource(workloadId: string, m: WorkloadMigration, cause: unknown): Promise<void> {
    const onTarget = await this.hostAgent(m.targetHostId)
      .get(workloadId)
      .then(
        (status) => status.state,
        (err: unknown) => {
          if (err instanceof NotFoundError) return 'deleted';
          throw err;
        },
      );
    if (onTarget === 'running' || onTarget === 'paused') return this.handOver(workloadId, m);
    if (onTarget !== 'deleted') throw new UnavailableError(`host ${m.sourceHostId} is down and the copy migrating to ${m.targetHostId} is ${onTarget}; waiting for libvirt to finish or drop it`);
    await this.discard(m.targetHostId, workloadId, m);
    return this.fail(workloadId, m, new UnavailableError(`host ${m.sourceHostId} went down before the move finished (${errorMessage(cause)}); failover takes the workload from there`));
  }

  /**
   * Removes a workload's files from a host that does not hold it. A host not
   * reporting yet (just after a leader change) is waited for: the error makes
   * the caller try again. A host that is down is not waited for: its files
   * are recorded as leftovers, removed once it is back.
   */
  private async discard(hostId: string, workloadId: string, m: WorkloadMigration): Promise<void> {
    if (this.hosts.get(hostId)?.status === 'down') return this.leftovers.note(hostId, workloadId, m.id);
    await this.hostAgent(hostId).discardIncoming(workloadId);
  }

  /** The workload runs on the target now: it becomes the target's (durably first), and the target's agent takes it over. */
  private async handOver(workloadId: string, m: WorkloadMigration): Promise<void> {
    const now = this.controller.get(workloadId);
    const { workload: moved, stored } = this.controller.change(now, {
      hostId: m.targetHostId,
      generation: (now.generation ?? 0) + 1,
      addresses: [],
      migration: { ...m, phase: 'switching' },
      message: `migrated from ${m.sourceHostId}; taking over on ${m.targetHostId}`,
    });
    await stored;
    const target = this.hosts.get(m.targetHostId);
    let message = `migrated from ${m.sourceHostId} to ${m.targetHostId}`;
    let patch: Partial<Workload> = {};
    try {
      if (!target) throw new FailedPreconditionError(`host ${m.targetHostId} is gone`);
      // The create adopts the running copy: the domain exists on the target and is its own.
      const status = await this.agents.for(target.id, target.telemetry.address).create(createCommandId(moved), workloadId, moved.spec);
      patch = { state: status.state as WorkloadState, driverRef: status.driver_ref };
    } catch (err) {
      // Reconciliation finds the copy on the target and settles its state.
      message += `; taking it over there failed for now: ${errorMessage(err)}`;
    }
    const { stored: cleared } = this.controller.change(this.controller.get(workloadId), { ...patch, migration: undefined, message });
    await cleared;
    // A source agent that went away mid-way could not remove its files; it refuses while it holds the VM.
    await this.discard(m.sourceHostId, workloadId, m).catch(async (err: unknown) => {
      if (err instanceof FailedPreconditionError) return this.log.warn({ workload: workloadId, host: m.sourceHostId, err: errorMessage(err) }, 'the host a VM migrated from still holds it; reconciliation removes that copy');
      await this.leftovers.note(m.sourceHostId, workloadId, m.id).catch((e: unknown) => this.log.warn({ workload: workloadId, err: errorMessage(e) }, 'leftover files not recorded'));
    });
    this.events.emit(EVENT_TYPES.workloadMigrationCompleted, workloadId, { id: workloadId, from_host: m.sourceHostId, to_host: m.targetHostId, mode: m.mode });
    this.log.info({ workload: workloadId, from: m.sourceHostId, to: m.targetHostId }, 'workload migrated');
  }

  private async fail(workloadId: string, m: WorkloadMigration, err: unknown): Promise<void> {
    const cancelled = err instanceof AbortedError;
    const reason = cancelled ? 'cancelled' : errorMessage(err);
    const w = this.controller.find(workloadId);
    if (w) await this.controller.change(w, { migration: undefined, message: `migration to ${m.targetHostId} ${cancelled ? 'cancelled' : `failed: ${reason}`}; it runs on ${m.sourceHostId}` }).stored;
    this.events.emit(EVENT_TYPES.workloadMigrationFailed, workloadId, { id: workloadId, from_host: m.sourceHostId, to_host: m.targetHostId, cancelled, reason });
    this.log.warn({ workload: workloadId, to: m.targetHostId, reason }, cancelled ? 'migration cancelled' : 'migration failed');
  }

  private async setPhase(workloadId: string, phase: WorkloadMigration['phase']): Promise<void> {
    const w = this.controller.get(workloadId);
    if (!w.migration || w.migration.phase === phase) return;
    await this.controller.change(w, { migration: { ...w.migration, phase } }).stored;
  }
}
