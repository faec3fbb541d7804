import { DataLossError, EVENT_TYPES, errorMessage, FailedPreconditionError, parseWorkloadSpec, type Logger, type WorkloadState } from '@virtfleet/shared';
import type { AgentClientPool } from '../dispatch/agent-client.js';
import type { EventSink } from '../events/event-log.js';
import type { HostRegistry } from '../hosts/host-registry.js';
import type { Workload } from '../workloads/workload.js';
import type { WorkloadController } from '../workloads/workload-controller.js';
import { newBackupId, type BackupManifest, type BackupRepository, type BackupSummary, type VerifyResult } from './backup-repository.js';

/** States in which a workload has a copy to back up. */
export const BACKED_UP_STATES: ReadonlySet<WorkloadState> = new Set(['running', 'paused', 'stopped']);

/**
 * Backups and restores through the coordinator: the workload's agent streams
 * its state (taken while it runs) to the repository; a restore streams a
 * backup, every chunk checked, into an agent that makes a new workload from
 * it (as a cold migration's target does), which then starts.
 */
export class BackupService {
  /** Workloads being backed up now: one backup of a workload at a time. */
  private readonly backingUp = new Set<string>();

  constructor(
    private readonly repository: BackupRepository,
    private readonly controller: WorkloadController,
    private readonly hosts: HostRegistry,
    private readonly agents: AgentClientPool,
    private readonly events: EventSink,
    private readonly log: Logger,
    /** Hears how each backup and restore that got under way ended (metrics). */
    private readonly onEnded: (operation: 'create' | 'restore', outcome: 'succeeded' | 'failed') => void = () => undefined,
  ) {}

  /**
   * Backs the workload up as it is now and answers the stored backup.
   * With `memory`, a running or paused VM's memory too: it is saved and
   * resumed (it pauses meanwhile), and a restore resumes it where it was.
   * @throws FailedPreconditionError when it has no copy now, its host is not up, a backup of it is under way, or memory is asked of a container or a stopped VM
   */
  async create(ref: string, options: { memory: boolean }): Promise<BackupManifest> {
    this.controller.requireLeader();
    const w = this.controller.get(ref);
    if (!w.hostId || !BACKED_UP_STATES.has(w.state)) throw new FailedPreconditionError(`workload ${w.id} is ${w.state}; only running, paused or stopped workloads are backed up`);
    if (options.memory && w.spec.kind !== 'vm') throw new FailedPreconditionError(`workload ${w.id} is a container; its backup is its writable layer, without memory`);
    if (options.memory && w.state === 'stopped') throw new FailedPreconditionError(`workload ${w.id} is stopped; it has no memory to back up`);
    const host = this.hosts.get(w.hostId);
    if (host?.status !== 'up') throw new FailedPreconditionError(`workload ${w.id}'s host ${w.hostId} is ${host?.status ?? 'unknown'}, not up`);
    if (this.backingUp.has(w.id)) throw new FailedPreconditionError(`a backup of workload ${w.id} is under way`);
    this.backingUp.add(w.id);
    const abort = new AbortController();
    let outcome: 'succeeded' | 'failed' = 'failed';
    try {
      const id = newBackupId();
      const take = () =>
        this.repository.write(
          { id, workload_id: w.id, workload_name: w.spec.name, kind: w.spec.kind, spec: w.spec, created_at: new Date().toISOString(), memory: options.memory },
          this.agents.for(host.id, host.telemetry.address).backupState(w.id, abort.signal, { memory: options.memory }),
        );
      // A memory save pauses and briefly stops the VM: reconciliation must not "repair" that, nor telemetry sampled meanwhile be taken as its state.
      const manifest = options.memory ? await this.controller.whileBusy(w.id, take) : await take();
      this.events.emit(EVENT_TYPES.backupCreated, w.id, { id: manifest.id, workload_id: w.id, host_id: host.id, size_bytes: manifest.size_bytes, stored_bytes: manifest.stored_bytes });
      this.log.info({ workload: w.id, backup: manifest.id, size: manifest.size_bytes, stored: manifest.stored_bytes }, 'workload backed up');
      outcome = 'succeeded';
      return manifest;
    } finally {
      this.onEnded('create', outcome);
      abort.abort();
      this.backingUp.delete(w.id);
    }
  }

  list(workloadName?: string): Promise<BackupSummary[]> {
    return this.repository.list(workloadName ? { workloadName } : undefined);
  }

  /** Removes a backup; one whose manifest cannot be read any more goes too (its chunks are left to the repository's sweep). */
  async remove(id: string): Promise<BackupManifest | { id: string }> {
    this.controller.requireLeader();
    const manifest = await this.repository.get(id).catch((err: unknown) => {
      if (err instanceof DataLossError) return undefined;
      throw err;
    });
    const { freedBytes } = await this.repository.remove(id);
    this.events.emit(EVENT_TYPES.backupDeleted, manifest?.workload_id ?? id, { id, workload_id: manifest?.workload_id ?? '', freed_bytes: freedBytes });
    return manifest ?? { id };
  }

  verify(id: string): Promise<VerifyResult> {
    return this.repository.verify(id);
  }

  /**
   * Makes a new workload from a backup on `hostId` (or where the scheduler
   * places it), started if the backup's workload ran. The new workload is
   * recorded first (`creating`, its host chosen); a restore that fails leaves
   * it `failed` with the reason, and nothing on the host.
   * @throws AlreadyExistsError when the name is taken; FailedPreconditionError when no host can take it
   */
  async restore(id: string, options: { asName: string; hostId: string; requestId: string }): Promise<Workload> {
    this.controller.requireLeader();
    const manifest = await this.repository.get(id);
    const spec = parseWorkloadSpec({ ...(manifest.spec as object), name: options.asName || manifest.workload_name }, 'backup.spec');
    const decision = this.controller.plan(spec, options.hostId || undefined);
    if (decision.hostId === undefined) throw new FailedPreconditionError(`no host can take the restored workload: ${decision.summary}`);
    const host = this.hosts.get(decision.hostId);
    if (!host) throw new FailedPreconditionError(`host ${decision.hostId} is gone`);
    const w = await this.controller.admitPlaced(spec, host.id, options.requestId, `restoring backup ${id} on ${host.id}`);
    const agent = this.agents.for(host.id, host.telemetry.address);
    const abort = new AbortController();
    try {
      const made = await agent.importState({ command_id: `${id}.restore.${w.id}`, workload_id: w.id, spec }, this.repository.read(id), abort.signal);
      const started = await agent.act('start', `${id}.restore.${w.id}.start`, w.id);
      const done = this.controller.change(this.controller.get(w.id), { state: started.state as WorkloadState, driverRef: started.driver_ref || made.driver_ref, message: `restored from backup ${id}` });
      await done.stored;
      this.events.emit(EVENT_TYPES.backupRestored, w.id, { id, workload_id: w.id, from_workload_id: manifest.workload_id, host_id: host.id });
      this.onEnded('restore', 'succeeded');
      return done.workload;
    } catch (err) {
      this.onEnded('restore', 'failed');
      abort.abort();
      await agent.act('delete', `${id}.restore.${w.id}.discard`, w.id).catch((e: unknown) => this.log.warn({ workload: w.id, err: errorMessage(e) }, 'the copy of a failed restore was not removed yet'));
      await this.controller.change(this.controller.get(w.id), { state: 'failed', driverRef: '', message: `restoring backup ${id} failed: ${errorMessage(err)}` }).stored;
      throw err;
    } finally {
      this.controller.releasePlaced(w.id);
    }
  }
}
