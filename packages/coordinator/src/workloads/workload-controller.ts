import { createHash, randomBytes } from 'node:crypto';
import {
  AlreadyExistsError,
  EVENT_TYPES,
  FailedPreconditionError,
  isRetryable,
  NotFoundError,
  UnavailableError,
  errorMessage,
  type Logger,
  type WorkloadSpec,
  type WorkloadState,
} from '@virtfleet/shared';
import type { AgentAction, AgentClient, AgentClientPool } from '../dispatch/agent-client.js';
import type { EventBus } from '../events/event-bus.js';
import type { Host } from '../hosts/host.js';
import type { HostRegistry } from '../hosts/host-registry.js';
import { demandOf, type HostSnapshot, type PlacementDecision, type Scheduler } from '../scheduler/scheduler.js';
import { holdsResources, type DesiredState, type Workload } from './workload.js';
import type { WorkloadStore } from './workload-store.js';

export interface StopOptions {
  timeoutSeconds?: number;
  force?: boolean;
}

const desiredByAction: Record<AgentAction, DesiredState> = {
  start: 'running',
  resume: 'running',
  stop: 'stopped',
  pause: 'paused',
  delete: 'deleted',
};

/**
 * Owns the workload lifecycle on the coordinator: admission, placement,
 * dispatch to agents, and folding agents' telemetry back into state.
 * Placement runs one workload at a time so two decisions never book the
 * same free capacity.
 */
export class WorkloadController {
  /** Workloads with a command on their agent right now; telemetry does not overwrite them. */
  private readonly busy = new Set<string>();
  /** When each workload's last command finished (ms); older telemetry samples are ignored. */
  private readonly lastCommandAt = new Map<string, number>();
  private placing: Promise<void> | undefined;
  private placeAgain = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: WorkloadStore,
    private readonly hosts: HostRegistry,
    private readonly scheduler: Scheduler,
    private readonly agents: AgentClientPool,
    private readonly events: EventBus,
    private readonly log: Logger,
  ) {}

  /** Retries pending and half-created workloads every `intervalMs`. */
  start(intervalMs: number): void {
    this.timer = setInterval(() => this.kick(), intervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.placing;
  }

  /**
   * Accepts a workload. It is placed asynchronously; until then it is
   * `pending` with the scheduler's reason in `message`.
   * Idempotent by `requestId`.
   */
  submit(requestId: string, spec: WorkloadSpec): Workload {
    if (requestId) {
      const earlier = this.store.getByRequestId(requestId);
      if (earlier) {
        if (JSON.stringify(earlier.spec) !== JSON.stringify(spec))
          throw new FailedPreconditionError(`request_id ${requestId} was already used for a different workload (${earlier.id})`);
        return earlier;
      }
    }
    const clash = this.store.getByName(spec.name);
    if (clash) throw new AlreadyExistsError(`a workload named ${spec.name} already exists (${clash.id})`);
    const now = new Date().toISOString();
    const workload: Workload = {
      id: `${spec.name.slice(0, 71)}-${randomBytes(4).toString('hex')}`,
      spec,
      hostId: '',
      desiredState: 'running',
      state: 'pending',
      message: 'waiting for placement',
      driverRef: '',
      requestId,
      createdAt: now,
      updatedAt: now,
    };
    this.store.put(workload);
    this.events.emit(EVENT_TYPES.workloadSubmitted, workload.id, { id: workload.id, name: spec.name, kind: spec.kind });
    this.kick();
    return workload;
  }

  /** Looks a workload up by id, or else by name. */
  get(ref: string): Workload {
    const w = this.store.get(ref) ?? this.store.getByName(ref);
    if (!w) throw new NotFoundError('workload', ref);
    return w;
  }

  list(filter: { hostId?: string; state?: string } = {}): Workload[] {
    return this.store
      .list()
      .filter((w) => (filter.state ? w.state === filter.state : w.state !== 'deleted'))
      .filter((w) => !filter.hostId || w.hostId === filter.hostId);
  }

  /** Carries out a lifecycle action on the workload's agent and returns the new state. */
  async act(action: AgentAction, ref: string, requestId: string, stop: StopOptions = {}): Promise<Workload> {
    let w = this.get(ref);
    if (w.state === 'deleted') {
      if (action === 'delete') return w;
      throw new FailedPreconditionError(`workload ${w.id} was deleted`);
    }
    if (!w.hostId) {
      if (action !== 'delete') throw new FailedPreconditionError(`workload ${w.id} is not placed yet: ${w.message}`);
      return this.update(w, { desiredState: 'deleted', state: 'deleted', message: 'deleted before placement' });
    }
    const client = this.clientFor(w, action);
    if (this.busy.has(w.id)) throw new FailedPreconditionError(`workload ${w.id} has a command in progress; try again`);
    this.busy.add(w.id);
    try {
      w = this.update(w, { desiredState: desiredByAction[action] });
      const status = await client.act(action, commandId(w.id, action, requestId), w.id, stop);
      this.lastCommandAt.set(w.id, Date.now());
      return this.update(this.get(w.id), { state: status.state as WorkloadState, message: status.message, driverRef: status.driver_ref || w.driverRef });
    } finally {
      this.busy.delete(w.id);
    }
  }

  /** Asks for a placement pass soon. Passes never overlap. */
  kick(): void {
    if (this.placing) {
      this.placeAgain = true;
      return;
    }
    this.placing = this.placePending()
      .catch((err: unknown) => this.log.error({ err }, 'placement pass failed'))
      .finally(() => {
        this.placing = undefined;
        if (this.placeAgain) {
          this.placeAgain = false;
          this.kick();
        }
      });
  }

  /** What the scheduler would decide for `spec` now. Changes nothing. */
  plan(spec: WorkloadSpec): PlacementDecision {
    return this.scheduler.place({ workloadId: '(plan)', spec }, this.snapshots());
  }

  /** Host snapshots for the scheduler, with allocations from the store. */
  snapshots(): HostSnapshot[] {
    const allocated = new Map<string, { vcpus: number; memoryMiB: number; diskGiB: number }>();
    for (const w of this.store.list()) {
      if (!holdsResources(w)) continue;
      const a = allocated.get(w.hostId) ?? { vcpus: 0, memoryMiB: 0, diskGiB: 0 };
      const d = demandOf(w.spec);
      a.vcpus += d.vcpus;
      a.memoryMiB += d.memoryMiB;
      a.diskGiB += d.diskGiB;
      allocated.set(w.hostId, a);
    }
    return this.hosts.list().map((h) => ({
      id: h.id,
      up: h.status === 'up',
      capacity: { vcpus: h.telemetry.capacity.vcpus, memoryMiB: h.telemetry.capacity.memory_mib, diskGiB: h.telemetry.capacity.disk_gib },
      allocated: allocated.get(h.id) ?? { vcpus: 0, memoryMiB: 0, diskGiB: 0 },
      drivers: h.telemetry.drivers,
      labels: h.telemetry.labels,
    }));
  }

  /** Folds one host's telemetry into the workloads placed on it. */
  onTelemetry(host: Host): void {
    const sampledAt = Date.parse(host.telemetry.time);
    for (const t of host.telemetry.workloads) {
      const w = this.store.get(t.workload_id);
      if (!w || w.hostId !== host.id || w.state === 'deleted' || this.busy.has(w.id)) continue;
      if (sampledAt <= (this.lastCommandAt.get(w.id) ?? 0)) continue;
      if (w.state !== t.state) this.update(w, { state: t.state, message: t.state === 'failed' ? 'reported failed by its host' : '' });
    }
  }

  /** A host that goes down leaves its workloads in an unknown state; one that comes back may free a queue. */
  onHostStatus(host: Host): void {
    if (host.status === 'down') {
      for (const w of this.store.list()) {
        if (w.hostId === host.id && w.state !== 'deleted' && w.state !== 'failed')
          this.update(w, { state: 'unknown', message: `host ${host.id} is down` });
      }
    } else {
      this.kick();
    }
  }

  private async placePending(): Promise<void> {
    let snapshots: HostSnapshot[] | undefined;
    for (const w of this.store.list()) {
      if (w.state === 'creating' && w.hostId && !this.busy.has(w.id)) {
        void this.dispatchCreate(w);
        continue;
      }
      if (w.state !== 'pending') continue;
      snapshots ??= this.snapshots();
      const decision = this.scheduler.place({ workloadId: w.id, spec: w.spec }, snapshots);
      if (decision.hostId === undefined) {
        if (w.message !== decision.summary) {
          this.update(w, { message: decision.summary });
          this.events.emit(EVENT_TYPES.workloadUnplaceable, w.id, { id: w.id, reason: decision.summary });
        }
        continue;
      }
      const chosen = snapshots.find((s) => s.id === decision.hostId);
      if (chosen) {
        const d = demandOf(w.spec);
        chosen.allocated = { vcpus: chosen.allocated.vcpus + d.vcpus, memoryMiB: chosen.allocated.memoryMiB + d.memoryMiB, diskGiB: chosen.allocated.diskGiB + d.diskGiB };
      }
      const placed = this.update(w, { hostId: decision.hostId, state: 'creating', message: decision.summary });
      this.events.emit(EVENT_TYPES.workloadPlaced, w.id, { id: w.id, host_id: decision.hostId, reason: decision.summary });
      void this.dispatchCreate(placed);
    }
  }

  /**
   * Sends the create to the chosen agent. The command id is fixed per
   * workload, so a repeat after a lost reply cannot create a second copy.
   * A retryable failure leaves the workload `creating` on the same host to
   * be sent again; any other failure marks it failed.
   */
  private async dispatchCreate(w: Workload): Promise<void> {
    const host = this.hosts.get(w.hostId);
    if (!host || host.status !== 'up') return;
    this.busy.add(w.id);
    try {
      const client = this.agents.for(host.id, host.telemetry.address);
      const status = await client.create(`${w.id}.create`, w.id, w.spec);
      this.lastCommandAt.set(w.id, Date.now());
      this.update(this.get(w.id), { state: status.state as WorkloadState, driverRef: status.driver_ref, message: status.message || `running on ${host.id}` });
    } catch (err) {
      if (isRetryable(err)) {
        this.log.warn({ workload: w.id, host: host.id, err: errorMessage(err) }, 'create failed; will retry');
        this.update(this.get(w.id), { message: `create on ${host.id} failed, retrying: ${errorMessage(err)}` });
      } else {
        this.update(this.get(w.id), { state: 'failed', message: errorMessage(err) });
      }
    } finally {
      this.busy.delete(w.id);
    }
  }

  private clientFor(w: Workload, action: AgentAction): AgentClient {
    const host = this.hosts.get(w.hostId);
    if (!host || host.status !== 'up') throw new UnavailableError(`host ${w.hostId} is down; cannot ${action} workload ${w.id}`);
    if (w.state === 'creating') throw new FailedPreconditionError(`workload ${w.id} is still being created on ${w.hostId}; try again`);
    return this.agents.for(host.id, host.telemetry.address);
  }

  private update(w: Workload, patch: Partial<Workload>): Workload {
    const next: Workload = { ...w, ...patch, updatedAt: new Date().toISOString() };
    this.store.put(next);
    if (patch.state !== undefined && patch.state !== w.state) {
      this.events.emit(patch.state === 'deleted' ? EVENT_TYPES.workloadDeleted : EVENT_TYPES.workloadStateChanged, w.id, {
        id: w.id,
        name: w.spec.name,
        host_id: next.hostId,
        from: w.state,
        to: next.state,
        message: next.message,
      });
    }
    return next;
  }
}

/** The agent command id for an operator request: the same request always maps to the same command. */
export function commandId(workloadId: string, action: AgentAction, requestId: string): string {
  const nonce = requestId || randomBytes(12).toString('hex');
  return `${action}-${createHash('sha256').update(`${workloadId}\0${nonce}`).digest('hex').slice(0, 40)}`;
}
