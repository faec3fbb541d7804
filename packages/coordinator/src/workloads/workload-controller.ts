import { createHash, randomBytes } from 'node:crypto';
import {
  AlreadyExistsError,
  EVENT_TYPES,
  FailedPreconditionError,
  isRetryable,
  NotFoundError,
  NotLeaderError,
  ResourceExhaustedError,
  UnavailableError,
  errorMessage,
  failoverModeOf,
  makeEvent,
  type CloudEvent,
  type Logger,
  type StoppedReservation,
  type WorkloadSpec,
  type WorkloadState,
  type WorkloadTelemetry,
} from '@virtfleet/shared';
import type { AgentAction, AgentClientPool } from '../dispatch/agent-client.js';
import { EVENT_DUPLICATE_WINDOW_MS, type EventSink } from '../events/event-log.js';
import type { Host } from '../hosts/host.js';
import type { HostRegistry } from '../hosts/host-registry.js';
import { AdmissionQueue } from '../scheduler/admission-queue.js';
import type { QueuePolicy } from '../scheduler/catalog.js';
import { effectivePriority } from '../scheduler/queue/priority.js';
import type { HostSnapshot, PlacementRecord, Scheduler } from '../scheduler/scheduler.js';
import { HostBookings } from '../scheduler/host-bookings.js';
import { decodePlacementRecord, encodePlacementRecord } from '../scheduler/placement-record-codec.js';
import { buildSnapshots } from '../scheduler/snapshots.js';
import { DESIRED_BY_ACTION, lifecycleVerdict } from './lifecycle-rules.js';
import { releasedWhileStopped, type Workload } from './workload.js';
import type { StateStore, WorkloadCursor } from './workload-store.js';

/**
 * Events of earlier changes ride along in a workload's record while the log
 * has not acknowledged them, for at most this long: by then they are stored,
 * or were lost with the connection (and a successor publishes what recent
 * records hold, within the log's duplicate window).
 */
const CARRY_EVENTS_MS = 30_000;

/** A placement decision as kept for `explain`. */
export interface DecisionRecord extends PlacementRecord {
  queuePolicy: QueuePolicy;
  /** Time the request had waited in the queue when this decision was made. */
  waitedMs: number;
}

export interface QueueView {
  policy: QueuePolicy;
  backfill: boolean;
  agingPerMinute: number;
  entries: { workload: Workload; position: number; effectivePriority: number; expectedRuntimeSeconds: number; waitedMs: number }[];
}

export interface StopOptions {
  timeoutSeconds?: number;
  force?: boolean;
}

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
  /** The latest placement decision per workload, oldest first; trimmed to `maxDecisions`. */
  private readonly decisions = new Map<string, DecisionRecord>();
  private placing: Promise<void> | undefined;
  private nextArrivalSeq = 0;
  /** Only the leader places, dispatches and writes; followers serve reads. */
  private leading = false;
  /** Submissions being stored, by request id and by name, so concurrent duplicates wait or clash. */
  private readonly submitting = new Map<string, Promise<Workload>>();
  private readonly admittingNames = new Set<string>();
  private placeAgain = false;
  /** How long the last placement pass took, in ms. */
  private lastPassMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private decisionObserver: ((decision: DecisionRecord, fromQueue: boolean) => void) | undefined;

  constructor(
    private readonly store: StateStore,
    private readonly hosts: HostRegistry,
    private readonly scheduler: Scheduler,
    private readonly queue: AdmissionQueue,
    private readonly agents: AgentClientPool,
    private readonly events: EventSink,
    private readonly log: Logger,
    /** Decision records kept for `explain`; the oldest go first. @default 10_000 */
    private readonly maxDecisions = 10_000,
    /** Says who leads, for errors on followers, e.g. " (the leader is c2 at 10.0.0.2:7100)". */
    private readonly leaderHint: () => string = () => '',
    /** Whether workloads stopped on purpose keep their booking, where their spec does not say. @default 'keep' */
    readonly stoppedReservation: StoppedReservation = 'keep',
  ) {
    this.bookings = HostBookings.of(store.values(), stoppedReservation);
    store.watch((before, after) => this.bookings.change(before, after));
  }

  /** What the store's workloads book on each host, kept current with every record change. */
  private readonly bookings: HostBookings;

  /**
   * Picks up where the last coordinator stopped: pending workloads return to
   * the queue in their original order, cordons are re-applied, and workloads
   * caught mid-create are sent again (same command id, so never twice).
   */
  restore(): { queued: number; creating: number } {
    let queued = 0;
    let creating = 0;
    for (const w of this.store.list()) {
      this.nextArrivalSeq = Math.max(this.nextArrivalSeq, w.arrivalSeq + 1);
      if (w.state === 'pending') {
        this.queue.add(w.id, w.spec, w.arrivalMs, w.arrivalSeq, w.leftHostId ? [w.leftHostId] : undefined);
        queued++;
      } else if (w.state === 'creating') creating++;
    }
    this.hosts.restoreCordons(this.store.hostsMarked('cordon'));
    return { queued, creating };
  }

  /**
   * Takes over as leader: reloads the state the previous leader left, restores
   * the queue, and retries pending and half-created workloads every `intervalMs`.
   */
  async lead(intervalMs: number): Promise<void> {
    await this.store.setFollowing(false);
    this.queue.clear();
    this.log.info({ ...this.restore(), eventsRepublished: this.republishRecentEvents() }, 'leading: state restored');
    this.leading = true;
    clearInterval(this.timer);
    this.timer = setInterval(() => this.kick(), intervalMs);
    this.kick();
  }

  /**
   * Publishes again the events of records stored in the last half of the
   * event log's duplicate window: a predecessor that died between storing a
   * change and sending its event leaves the event in the record. Those that
   * reached the log are dropped there as repeats; the half left over covers
   * clock skew between this coordinator and the NATS server. Returns how
   * many were queued.
   */
  private republishRecentEvents(): number {
    const recent = this.store.storedSince(Date.now() - EVENT_DUPLICATE_WINDOW_MS / 2).flatMap((w) => w.events ?? []);
    // In the order they were made, as far as the records tell.
    recent.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
    this.events.publish(recent);
    return recent.length;
  }

  /** Stops leading at once: no more placements, dispatches or writes. Reads go on. */
  async follow(): Promise<void> {
    this.leading = false;
    clearInterval(this.timer);
    this.timer = undefined;
    this.queue.clear();
    await this.store.setFollowing(true);
    this.hosts.restoreCordons(this.store.hostsMarked('cordon'));
  }

  async stop(): Promise<void> {
    this.leading = false;
    clearInterval(this.timer);
    await this.placing;
  }

  /** @throws NotLeaderError (UNAVAILABLE, naming the leader when known) on a follower: changes go to the leader. */
  requireLeader(): void {
    if (!this.leading) throw new NotLeaderError(`this coordinator is not the leader${this.leaderHint()}; send changes to the leader`);
  }

  /**
   * Accepts a workload. It is placed asynchronously; until then it is
   * `pending` with the scheduler's reason in `message`.
   * Idempotent by `requestId`. Resolves once the workload is durable.
   * @throws UnavailableError when it cannot be stored; nothing changed then.
   */
  async submit(requestId: string, spec: WorkloadSpec): Promise<Workload> {
    this.requireLeader();
    if (requestId) {
      const inFlight = this.submitting.get(requestId);
      if (inFlight) return this.sameRequest(requestId, await inFlight, spec);
      const earlier = this.store.getByRequestId(requestId);
      if (earlier) return this.sameRequest(requestId, earlier, spec);
      const other = this.store.getRequest(requestId);
      if (other) throw new FailedPreconditionError(`request_id ${requestId} was already used for a different request (${other.method})`);
    }
    const clash = this.store.getByName(spec.name);
    if (clash || this.admittingNames.has(spec.name)) throw new AlreadyExistsError(`a workload named ${spec.name} already exists${clash ? ` (${clash.id})` : ''}`);
    this.admittingNames.add(spec.name);
    const admitted = this.admit(requestId, spec).finally(() => {
      this.admittingNames.delete(spec.name);
      if (requestId) this.submitting.delete(requestId);
    });
    if (requestId) this.submitting.set(requestId, admitted);
    return admitted;
  }

  private sameRequest(requestId: string, earlier: Workload, spec: WorkloadSpec): Workload {
    if (JSON.stringify(earlier.spec) !== JSON.stringify(spec))
      throw new FailedPreconditionError(`request_id ${requestId} was already used for a different workload (${earlier.id})`);
    return earlier;
  }

  /** A new workload's record: its id (name and a random suffix), arrival, and where it stands. */
  private newWorkload(spec: WorkloadSpec, requestId: string, at: Pick<Workload, 'hostId' | 'state' | 'message'>): Workload {
    const now = new Date().toISOString();
    return {
      id: `${spec.name.slice(0, 71)}-${randomBytes(4).toString('hex')}`,
      spec,
      ...at,
      desiredState: 'running',
      driverRef: '',
      requestId,
      arrivalSeq: this.nextArrivalSeq++,
      arrivalMs: Date.parse(now),
      createdAt: now,
      updatedAt: now,
    };
  }

  private async admit(requestId: string, spec: WorkloadSpec): Promise<Workload> {
    const workload = this.withEvents(this.newWorkload(spec, requestId, { hostId: '', state: 'pending', message: 'waiting for placement' }), (w) => [
      makeEvent(this.events.source, EVENT_TYPES.workloadSubmitted, w.id, { id: w.id, name: spec.name, kind: spec.kind }),
    ]);
    await this.store.insert(workload);
    this.queue.add(workload.id, spec, workload.arrivalMs, workload.arrivalSeq);
    this.events.publish(workload.events!);
    this.kick();
    return workload;
  }

  /** The new record with the events its creation announces, made (not sent) now. */
  private withEvents(w: Workload, announce: (w: Workload) => CloudEvent[]): Workload {
    return { ...w, events: announce(w) };
  }

  /**
   * Records a new workload already placed on `hostId` (a restore: its copy is
   * made there from a backup, not by the queue), `creating` until the caller
   * reports otherwise. Resolves once durable. Not idempotent: the caller
   * guards its request id.
   * @throws AlreadyExistsError when the name is taken
   */
  async admitPlaced(spec: WorkloadSpec, hostId: string, requestId: string, message: string): Promise<Workload> {
    this.requireLeader();
    if (this.store.getByName(spec.name) || this.admittingNames.has(spec.name)) throw new AlreadyExistsError(`a workload named ${spec.name} already exists`);
    this.admittingNames.add(spec.name);
    try {
      const workload = this.withEvents(this.newWorkload(spec, requestId, { hostId, state: 'creating', message }), (w) => [
        makeEvent(this.events.source, EVENT_TYPES.workloadSubmitted, w.id, { id: w.id, name: spec.name, kind: spec.kind }),
        makeEvent(this.events.source, EVENT_TYPES.workloadPlaced, w.id, { id: w.id, host_id: hostId, reason: message }),
      ]);
      // Busy from the start: the placement loop must not send it a create of its own.
      this.busy.add(workload.id);
      try {
        await this.store.insert(workload);
      } catch (err) {
        this.busy.delete(workload.id);
        throw err;
      }
      this.events.publish(workload.events!);
      return workload;
    } finally {
      this.admittingNames.delete(spec.name);
    }
  }

  /** Ends the busy mark admitPlaced set. */
  releasePlaced(workloadId: string): void {
    this.lastCommandAt.set(workloadId, Date.now());
    this.commandDone(workloadId);
  }

  /** Looks a workload up by id, or else by name. */
  get(ref: string): Workload {
    const w = this.store.get(ref) ?? this.store.getByName(ref);
    if (!w) throw new NotFoundError('workload', ref);
    return w;
  }

  /**
   * One page of workloads, oldest first: those in `state`, or every live one
   * (deleted ones only when asked for), optionally only on one host.
   */
  listPage(filter: { hostId?: string; state?: string; tenant?: string | undefined }, after: WorkloadCursor | undefined, limit: number): { workloads: Workload[]; next?: WorkloadCursor } {
    const { hostId, state, tenant } = filter;
    return this.store.page((w) => (state ? w.state === state : w.state !== 'deleted') && (!hostId || w.hostId === hostId) && (!tenant || w.spec.tenant === tenant), after, limit);
  }

  /**
   * Carries out a lifecycle action on the workload's agent and returns the new
   * state. The request is checked against the current state first
   * (`lifecycleVerdict`); a refused or failed request leaves the stored
   * workload exactly as it was. A delete of a deleted workload succeeds, by id
   * or by name, while its record is kept.
   * @throws FailedPreconditionError when the workload's state does not allow the action
   * @throws UnavailableError when its host is away (a delete is then recorded and carried out when the host returns)
   */
  async act(action: AgentAction, ref: string, requestId: string, stop: StopOptions = {}): Promise<Workload> {
    this.requireLeader();
    const w = action === 'delete' ? this.getIncludingDeleted(ref) : this.get(ref);
    const verdict = lifecycleVerdict(action, w);
    if (verdict.kind === 'refuse') throw verdict.error;
    if (verdict.kind === 'done') return w;
    if (verdict.kind === 'dequeue') {
      this.queue.remove(w.id);
      return this.update(w, { desiredState: 'deleted', state: 'deleted', message: 'deleted before placement' });
    }
    if (action === 'delete' && this.busy.has(w.id)) {
      // A command (often the create) is on its way: the delete is the new desired state, carried out when that command returns.
      return this.update(w, { desiredState: 'deleted', message: 'delete accepted; it is carried out once the command in progress returns' });
    }
    const host = this.hosts.get(w.hostId);
    if (verdict.kind === 'host-away' || !host || host.status !== 'up') {
      if (action === 'delete') {
        // Its host is away: forget it now; reconciliation removes the copy if the host comes back.
        return this.update(w, { desiredState: 'deleted', state: 'deleted', message: `deleted while host ${w.hostId} was unreachable; its copy is removed when the host returns` });
      }
      throw new UnavailableError(`host ${w.hostId} is ${host?.status ?? 'unknown'}; cannot ${action} workload ${w.id}`);
    }
    if (this.busy.has(w.id)) throw new FailedPreconditionError(`workload ${w.id} has a command in progress; try again`);
    if (action === 'start' && releasedWhileStopped(w, this.stoppedReservation)) this.requireRoomToStart(w);
    this.busy.add(w.id);
    const desired = DESIRED_BY_ACTION[action];
    // The desired state is recorded before the agent acts, so a coordinator that dies meanwhile leaves the intent to reconciliation.
    const intent = w.desiredState === desired ? w : this.update(w, { desiredState: desired });
    try {
      const status = await this.agents.for(host.id, host.telemetry.address).act(action, commandId(w.id, action, requestId), w.id, stop);
      this.lastCommandAt.set(w.id, Date.now());
      const updated = this.update(this.get(w.id), { state: status.state as WorkloadState, message: status.message, driverRef: status.driver_ref || w.driverRef });
      // A deleted workload frees its capacity for the queue.
      if (action === 'delete') this.kick();
      return updated;
    } catch (err) {
      this.undoIntent(w, intent);
      throw err;
    } finally {
      // A failed delete is retried by the placement passes, not at once.
      this.commandDone(w.id, action !== 'delete');
    }
  }

  /** Ends a command on the workload; a delete accepted meanwhile goes out now. */
  private commandDone(id: string, sendAcceptedDelete = true): void {
    this.busy.delete(id);
    const w = sendAcceptedDelete ? this.store.get(id) : undefined;
    if (w && w.desiredState === 'deleted' && w.state !== 'deleted') this.deleteDeferred(w);
  }

  /** Carries out a delete that was accepted while the workload was busy; retried every placement pass until done. */
  private deleteDeferred(w: Readonly<Workload>): void {
    if (!this.leading || this.busy.has(w.id)) return;
    this.act('delete', w.id, '').catch((err: unknown) => this.log.warn({ workload: w.id, err: errorMessage(err) }, 'accepted delete not carried out yet; retrying'));
  }

  /**
   * A stopped workload whose booking was released starts again only if its
   * host still has room for it, by the same filters as a placement.
   * @throws FailedPreconditionError naming what does not fit
   */
  private requireRoomToStart(w: Workload): void {
    const snapshot = buildSnapshots(this.hosts.list(), this.bookings).find((h) => h.id === w.hostId);
    const record = snapshot ? this.scheduler.place({ workloadId: w.id, spec: w.spec }, [snapshot]) : undefined;
    if (record?.hostId !== w.hostId)
      throw new FailedPreconditionError(`workload ${w.id} released its booking on ${w.hostId} when it stopped (stopped_reservation: release) and the host has no room for it now: ${record?.summary ?? 'host unknown'}`);
  }

  /** Puts back the record as it was before a request whose agent command failed. */
  private undoIntent(before: Workload, intent: Workload): void {
    if (intent === before) return;
    const now = this.store.get(before.id);
    if (!now) return;
    // Back as it was, keeping only the events that may not have reached the log: the others must not be sent again.
    const { events: _earlier, ...asBefore } = before;
    const unsent = this.unsentOf(before);
    if (JSON.stringify(now) === JSON.stringify(intent)) void this.store.put(unsent.length > 0 ? { ...asBefore, events: unsent } : asBefore).catch(() => undefined);
    else this.update(now, { desiredState: before.desiredState });
  }

  /** By id, or by name: the live workload, else the newest deleted one with that name. */
  getIncludingDeleted(ref: string): Workload {
    const live = this.store.get(ref) ?? this.store.getByName(ref);
    if (live) return live;
    const deleted = this.store.page((w) => w.spec.name === ref, undefined, Number.MAX_SAFE_INTEGER).workloads.at(-1);
    if (!deleted) throw new NotFoundError('workload', ref);
    return deleted;
  }

  /**
   * Asks for a placement pass soon. Passes never overlap, and every kick until
   * a pass starts joins it: a burst of submits makes few passes, not one each.
   * A pass starts at least as long after the previous one as that one took,
   * so passes over many workloads take at most about half the coordinator's time.
   */
  kick(): void {
    if (!this.leading) return;
    if (this.placing) {
      this.placeAgain = true;
      return;
    }
    const gapMs = this.lastPassMs;
    this.placing = new Promise<void>((resolve) => (gapMs < 1 ? setImmediate(resolve) : setTimeout(resolve, gapMs)))
      .then(async () => {
        if (!this.leading) return;
        const startedAt = performance.now();
        await this.placePending();
        this.lastPassMs = performance.now() - startedAt;
      })
      .catch((err: unknown) => this.log.error({ err }, 'placement pass failed'))
      .finally(() => {
        this.placing = undefined;
        if (this.placeAgain) {
          this.placeAgain = false;
          this.kick();
        }
      });
  }

  /** What the scheduler would decide for `spec` now, among every host or only `onlyHost`. Changes nothing. */
  plan(spec: WorkloadSpec, onlyHost?: string): PlacementRecord {
    const snapshots = buildSnapshots(this.hosts.list(), this.bookings).filter((s) => onlyHost === undefined || s.id === onlyHost);
    return this.scheduler.place({ workloadId: '(plan)', spec }, snapshots);
  }

  /** Hears every placement decision kept for explain (metrics): `fromQueue` for the queue's, false for a migration target's. One observer. */
  observeDecisions(observer: (decision: DecisionRecord, fromQueue: boolean) => void): void {
    this.decisionObserver = observer;
  }

  private recordDecision(workloadId: string, decision: DecisionRecord, fromQueue: boolean): void {
    this.decisionObserver?.(decision, fromQueue);
    // A waiting request is re-decided every pass; store it only when the verdict changes.
    if (this.decisions.get(workloadId)?.summary !== decision.summary) this.store.putDecision(workloadId, encodePlacementRecord(decision));
    this.decisions.delete(workloadId);
    this.decisions.set(workloadId, decision);
    if (this.decisions.size > this.maxDecisions) {
      const oldest = this.decisions.keys().next();
      if (!oldest.done) this.decisions.delete(oldest.value);
    }
  }

  /** Cordons or uncordons a host; uncordoning may let queued work in. */
  cordon(hostId: string, cordon: boolean): void {
    this.requireLeader();
    if (!this.hosts.setCordoned(hostId, cordon)) return;
    this.store.setHostMark('cordon', hostId, cordon);
    this.events.emit(cordon ? EVENT_TYPES.hostCordoned : EVENT_TYPES.hostUncordoned, hostId, { id: hostId, cordoned: cordon });
    this.log.info({ host: hostId, cordon }, cordon ? 'host cordoned' : 'host uncordoned');
    if (!cordon) this.kick();
  }

  /** Every host as the scheduler sees it now. */
  snapshots(): HostSnapshot[] {
    return buildSnapshots(this.hosts.list(), this.bookings);
  }

  /** The latest placement decision for a workload, by id or name. */
  async explain(ref: string): Promise<DecisionRecord> {
    const w = this.get(ref);
    const remembered = this.decisions.get(w.id);
    if (remembered) return remembered;
    const stored = await this.store.getDecision<unknown>(w.id);
    if (stored === undefined) throw new FailedPreconditionError(`workload ${w.id} has no placement decision yet`);
    try {
      return decodePlacementRecord<DecisionRecord>(stored);
    } catch (err) {
      this.log.warn({ workload: w.id, err: errorMessage(err) }, 'stored placement decision unreadable');
      throw new FailedPreconditionError(`workload ${w.id} has no readable placement decision: ${errorMessage(err)}`);
    }
  }

  queueView(nowMs = Date.now()): QueueView {
    const entries = this.currentQueue()
      .ordered(nowMs).flatMap((e, i) => {
      const workload = this.store.get(e.workloadId);
      return workload
        ? [{ workload, position: i + 1, effectivePriority: effectivePriority(e, nowMs, this.queue.agingPerMinute), expectedRuntimeSeconds: e.expectedRuntimeSeconds, waitedMs: nowMs - e.arrivalMs }]
        : [];
    });
    return { policy: this.queue.policy, backfill: this.queue.backfill, agingPerMinute: this.queue.agingPerMinute, entries };
  }

  /** The leader's queue; a follower rebuilds it from the stored pending workloads. */
  private currentQueue(): AdmissionQueue {
    if (this.leading) return this.queue;
    const view = new AdmissionQueue({ policy: this.queue.policy, agingPerMinute: this.queue.agingPerMinute, backfill: this.queue.backfill });
    for (const w of this.store.values()) if (w.state === 'pending') view.add(w.id, w.spec, w.arrivalMs, w.arrivalSeq);
    return view;
  }

  /** Switches the queue's order (and head-of-queue behaviour) from the next pass on. */
  configureQueue(change: { policy?: QueuePolicy; backfill?: boolean }): QueueView {
    this.requireLeader();
    this.queue.configure(change);
    this.log.info(change, 'queue reconfigured');
    this.kick();
    return this.queueView();
  }

  /**
   * Folds the workloads one telemetry message reports (all of a host's, or
   * those that changed) into the workloads placed there. One that differs
   * only because a command was newer than the sample is corrected by a later
   * full list or by reconciliation.
   */
  onTelemetry(host: Host, reported: readonly WorkloadTelemetry[]): void {
    if (!this.leading) return;
    const sampledAt = Date.parse(host.telemetry.time);
    for (const t of reported) {
      const w = this.store.get(t.workload_id);
      if (!w || w.hostId !== host.id || w.state === 'deleted') continue;
      // Addresses are facts of the copy on this host, whatever command is in flight.
      const addresses = t.addresses ?? [];
      if (addresses.join(',') !== (w.addresses ?? []).join(',')) this.update(w, { addresses });
      if (w.state === t.state || this.busy.has(w.id)) continue;
      if (sampledAt <= (this.lastCommandAt.get(w.id) ?? 0)) continue;
      this.update(this.get(w.id), { state: t.state, message: t.state === 'failed' ? 'reported failed by its host' : '' });
    }
  }

  /**
   * A host that goes down leaves its workloads in an unknown state (the host
   * supervisor decides when they move); one that is back and clean may free
   * a queue. A host that returns is alive, so an operator's "confirmed dead"
   * no longer holds.
   */
  onHostStatus(host: Host): void {
    if (!this.leading) return;
    if (host.status === 'down') {
      for (const w of this.store.listOnHost(host.id)) {
        if (w.state !== 'deleted' && w.state !== 'failed' && w.state !== 'pending')
          this.update(w, { state: 'unknown', message: `host ${host.id} is down` });
      }
    } else if (host.status === 'recovering') {
      this.store.setHostMark('dead', host.id, false);
    } else {
      this.kick();
    }
  }

  /**
   * An operator vouches that a down host is dead (powered off, fenced by
   * hand): its fence-first workloads may run elsewhere at once.
   * @throws FailedPreconditionError when the host is reporting.
   */
  confirmDead(hostId: string): { fenceFirstWorkloads: number } {
    this.requireLeader();
    const host = this.hosts.get(hostId);
    const placedThere = this.store.listOnHost(hostId).filter((w) => w.state !== 'deleted');
    if (!host && placedThere.length === 0) throw new NotFoundError('host', hostId);
    if (host && host.status !== 'down')
      throw new FailedPreconditionError(`host ${hostId} is ${host.status}: it reported ${Math.round((Date.now() - host.lastSeenMs) / 1000)} s ago, so it is not dead`);
    this.store.setHostMark('dead', hostId, true);
    this.events.emit(EVENT_TYPES.hostConfirmedDead, hostId, { id: hostId });
    this.log.warn({ host: hostId }, 'host confirmed dead by an operator');
    return { fenceFirstWorkloads: placedThere.filter((w) => failoverModeOf(w.spec) === 'fence-first').length };
  }

  /** Hosts an operator confirmed dead and that have not reported since. */
  confirmedDead(): Set<string> {
    return new Set(this.store.hostsMarked('dead'));
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** The workload, or undefined; no lookup by name. */
  find(id: string): Workload | undefined {
    return this.store.get(id);
  }

  workloads(): Workload[] {
    return this.store.list();
  }

  /** The workloads placed on one host; cheap however many others there are. */
  workloadsOn(hostId: string): Workload[] {
    return this.store.listOnHost(hostId);
  }

  /** True while a command for the workload is on its way to an agent. */
  isBusy(id: string): boolean {
    return this.busy.has(id);
  }

  /** When the workload's last agent command finished (ms since the epoch), or 0. */
  commandFinishedAt(id: string): number {
    return this.lastCommandAt.get(id) ?? 0;
  }

  /** Changes a workload's observed state or message, when different, without any command. */
  note(w: Workload, patch: Pick<Partial<Workload>, 'state' | 'message'>): void {
    if ((patch.state === undefined || patch.state === w.state) && (patch.message === undefined || patch.message === w.message)) return;
    this.update(w, patch);
  }

  /**
   * Sends a workload whose host was lost back to the queue, keeping its place
   * in line. Resolves once that is durable; only then may it be placed again.
   */
  async reschedule(w: Workload, reason: string): Promise<void> {
    if (!this.leading || this.busy.has(w.id)) return;
    const fromHost = w.hostId;
    const { workload, stored } = this.updateStored(w, { hostId: '', leftHostId: fromHost, state: 'pending', driverRef: '', addresses: [], generation: (w.generation ?? 0) + 1, message: `rescheduling: ${reason}` });
    await stored;
    this.events.emit(EVENT_TYPES.workloadRescheduled, w.id, { id: w.id, from_host: fromHost, failover: failoverModeOf(w.spec), reason });
    this.log.warn({ workload: w.id, from: fromHost, reason }, 'rescheduling workload');
    if (!this.leading) return;
    this.queue.add(workload.id, workload.spec, workload.arrivalMs, workload.arrivalSeq, [fromHost]);
    this.kick();
  }

  /**
   * Calls off a reschedule not yet placed: the host it left is back and still
   * runs the copy (`state`, `driverRef`), so the workload stays there. False,
   * changing nothing, unless it is still waiting in the queue.
   */
  reclaim(w: Workload, hostId: string, state: WorkloadState, driverRef: string): boolean {
    if (!this.leading || w.state !== 'pending' || w.leftHostId !== hostId || !this.queue.remove(w.id)) return false;
    this.update(w, { hostId, state, driverRef, message: `host ${hostId} returned before the workload was placed elsewhere; it stays there` });
    return true;
  }

  /**
   * For long operations outside the controller (migrations): runs `work`
   * with the workload marked busy, so that placement and reconciliation
   * leave it alone meanwhile, the leadership checked first.
   * @throws FailedPreconditionError when a command on it is under way
   */
  async whileBusy<T>(workloadId: string, work: () => Promise<T>): Promise<T> {
    this.requireLeader();
    if (this.busy.has(workloadId)) throw new FailedPreconditionError(`workload ${workloadId} has a command under way; try again when it ends`);
    this.busy.add(workloadId);
    try {
      return await work();
    } finally {
      this.lastCommandAt.set(workloadId, Date.now());
      this.commandDone(workloadId);
    }
  }

  /** Writes a change of the workload (an event for a new state); `stored` says when it is durable. */
  change(w: Workload, patch: Partial<Workload>): { workload: Workload; stored: Promise<void> } {
    return this.updateStored(w, patch);
  }

  /**
   * Chooses a host for a workload that stays where it is meanwhile (a
   * migration's target): its own host avoided, only `onlyHost` considered
   * when given. The decision is kept for explain.
   */
  chooseTarget(w: Workload, onlyHost?: string): PlacementRecord {
    const now = Date.now();
    const snapshots = buildSnapshots(this.hosts.list(), this.bookings).filter((s) => onlyHost === undefined || s.id === onlyHost);
    const record = this.scheduler.place({ workloadId: w.id, spec: w.spec, avoidHosts: [w.hostId] }, snapshots);
    this.recordDecision(w.id, { ...record, queuePolicy: this.queue.policy, waitedMs: 0, decidedAt: new Date(now).toISOString() }, false);
    return record;
  }

  /** Creates a workload again on its own host (its copy vanished there). */
  async recreate(w: Workload, reason: string): Promise<void> {
    if (!this.leading || this.busy.has(w.id)) return;
    const { workload, stored } = this.updateStored(w, { state: 'creating', generation: (w.generation ?? 0) + 1, message: reason });
    await stored;
    await this.dispatchCreate(workload);
  }

  /**
   * Brings a workload back to its desired state with one agent command;
   * the desired state itself does not change.
   */
  async repair(w: Workload, action: Exclude<AgentAction, 'delete'>): Promise<void> {
    if (!this.leading || this.busy.has(w.id)) return;
    const host = this.hosts.get(w.hostId);
    if (!host || host.status === 'down') return;
    this.busy.add(w.id);
    try {
      const status = await this.agents.for(host.id, host.telemetry.address).act(action, commandId(w.id, action, ''), w.id);
      this.lastCommandAt.set(w.id, Date.now());
      this.update(this.get(w.id), { state: status.state as WorkloadState, message: status.message });
    } finally {
      this.commandDone(w.id);
    }
  }

  private async placePending(): Promise<void> {
    for (const w of this.store.unsettled()) {
      if (this.busy.has(w.id)) continue;
      if (w.desiredState === 'deleted' && w.state !== 'deleted') this.deleteDeferred(w);
      else if (w.state === 'creating') void this.dispatchCreate(w);
    }
    if (this.queue.size === 0) return;
    const now = Date.now();
    const result = this.queue.pass(this.scheduler, buildSnapshots(this.hosts.list(), this.bookings), now);
    for (const { entry, record } of result.waiting) {
      this.recordDecision(entry.workloadId, { ...record, queuePolicy: this.queue.policy, waitedMs: now - entry.arrivalMs }, true);
      const w = this.store.get(entry.workloadId);
      if (w && w.message !== record.summary) {
        this.update(this.get(w.id), { message: record.summary });
        this.events.emit(EVENT_TYPES.workloadUnplaceable, w.id, { id: w.id, reason: record.summary, unresolvable: record.unresolvable });
      }
    }
    if (result.blockedBehind) {
      for (const e of this.queue.ordered(now)) {
        const w = this.store.get(e.workloadId);
        const message = `queued behind ${result.blockedBehind} (strict order)`;
        if (w && e.workloadId !== result.blockedBehind && w.message !== message) this.update(this.get(w.id), { message });
      }
    }
    for (const { entry, record } of result.placed) {
      this.recordDecision(entry.workloadId, { ...record, queuePolicy: this.queue.policy, waitedMs: now - entry.arrivalMs }, true);
      const w = this.store.get(entry.workloadId);
      if (!w || w.state !== 'pending' || record.hostId === undefined) continue;
      // placed, then the state change it causes
      const placedEvent = makeEvent(this.events.source, EVENT_TYPES.workloadPlaced, w.id, { id: w.id, host_id: record.hostId, reason: record.summary });
      const { workload: placed, stored } = this.updateStored(w, { hostId: record.hostId, state: 'creating', message: record.summary }, [placedEvent]);
      // The placement must be durable before the agent acts on it: a leader that dies in between
      // would otherwise leave a successor that places the workload again, elsewhere.
      this.busy.add(placed.id);
      stored.then(
        () => {
          this.busy.delete(placed.id);
          return this.dispatchCreate(placed);
        },
        (err: unknown) => {
          this.busy.delete(placed.id);
          this.log.warn({ workload: w.id, err: errorMessage(err) }, 'placement not stored; not dispatched');
        },
      );
    }
  }

  /**
   * Sends the create to the chosen agent. The command id is fixed per
   * workload, so a repeat after a lost reply cannot create a second copy.
   * A host that has no room after all (RESOURCE_EXHAUSTED: its disk is
   * fuller than its bookings say, or its count raced) sends the workload
   * back to the queue to be placed elsewhere. Another retryable failure
   * leaves it `creating` on the same host to be sent again; any other marks
   * it failed.
   */
  private async dispatchCreate(w: Readonly<Workload>): Promise<void> {
    if (!this.leading) return;
    const host = this.hosts.get(w.hostId);
    if (!host || host.status !== 'up') return;
    this.busy.add(w.id);
    let noRoom: string | undefined;
    try {
      const client = this.agents.for(host.id, host.telemetry.address);
      const status = await client.create(createCommandId(w), w.id, w.spec);
      this.lastCommandAt.set(w.id, Date.now());
      this.update(this.get(w.id), { state: status.state as WorkloadState, driverRef: status.driver_ref, message: status.message || `running on ${host.id}` });
    } catch (err) {
      if (err instanceof ResourceExhaustedError) {
        noRoom = `host ${host.id} had no room: ${errorMessage(err)}`;
      } else if (isRetryable(err)) {
        this.log.warn({ workload: w.id, host: host.id, err: errorMessage(err) }, 'create failed; will retry');
        this.update(this.get(w.id), { message: `create on ${host.id} failed, retrying: ${errorMessage(err)}` });
      } else {
        // No copy exists: reconciliation must not take the old copy's handle for one.
        this.update(this.get(w.id), { state: 'failed', driverRef: '', message: errorMessage(err) });
      }
    } finally {
      this.commandDone(w.id);
    }
    // Nothing was made there; the next placement skips that host.
    if (noRoom !== undefined) await this.reschedule(this.get(w.id), noRoom);
  }

  private update(w: Workload, patch: Partial<Workload>): Workload {
    return this.updateStored(w, patch).workload;
  }

  /** Those of a record's events that may not be in the log yet: recent, and not acknowledged to this coordinator. */
  private unsentOf(w: Pick<Workload, 'events'>): CloudEvent[] {
    const now = Date.now();
    return w.events ? this.events.unsent(w.events.filter((e) => now - Date.parse(e.time) < CARRY_EVENTS_MS)) : [];
  }

  /**
   * Like update, and also says when the change is durable. The change's
   * events (`announced`, made by the caller, and a state change's) are sent
   * once the record is stored, never before: an event says what the state
   * store holds. The record keeps them, with those of earlier changes not
   * yet in the log, so a successor can send them if this coordinator dies
   * first (see republishRecentEvents).
   */
  private updateStored(w: Workload, patch: Partial<Workload>, announced: CloudEvent[] = []): { workload: Workload; stored: Promise<void> } {
    const { events: earlier, ...rest } = w;
    const next: Workload = { ...rest, ...patch, updatedAt: new Date().toISOString() };
    const change = [...announced];
    if (patch.state !== undefined && patch.state !== w.state) {
      change.push(
        makeEvent(this.events.source, patch.state === 'deleted' ? EVENT_TYPES.workloadDeleted : EVENT_TYPES.workloadStateChanged, w.id, {
          id: w.id,
          name: w.spec.name,
          host_id: next.hostId,
          from: w.state,
          to: next.state,
          message: next.message,
        }),
      );
    }
    const carried = this.unsentOf({ events: earlier });
    if (carried.length + change.length > 0) next.events = [...carried, ...change];
    const stored = this.store.put(next);
    // Nothing is sent for a deleted workload any more; its entry would only grow the map.
    if (next.state === 'deleted') this.lastCommandAt.delete(w.id);
    stored.then(
      () => this.events.publish(change),
      (err: unknown) => this.log.warn({ workload: w.id, err: errorMessage(err) }, 'state write not stored'),
    );
    return { workload: next, stored };
  }
}

/** Each placement of a workload (first, rescheduled, re-created) is its own create command. */
export function createCommandId(w: Pick<Workload, 'id' | 'generation'>): string {
  return w.generation ? `${w.id}.create.${w.generation}` : `${w.id}.create`;
}

/** The agent command id for an operator request: the same request always maps to the same command. */
export function commandId(workloadId: string, action: AgentAction, requestId: string): string {
  const nonce = requestId || randomBytes(12).toString('hex');
  return `${action}-${createHash('sha256').update(`${workloadId}\0${nonce}`).digest('hex').slice(0, 40)}`;
}
