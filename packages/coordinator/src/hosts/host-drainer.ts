import { randomBytes } from 'node:crypto';
import { EVENT_TYPES, errorMessage, FailedPreconditionError, NotFoundError, restartPolicyOf, UnavailableError, type Logger } from '@virtfleet/shared';
import type { EventSink } from '../events/event-log.js';
import type { Workload } from '../workloads/workload.js';
import type { WorkloadController } from '../workloads/workload-controller.js';
import type { WorkloadMigrator } from '../workloads/workload-migrator.js';
import type { StateStore } from '../workloads/workload-store.js';
import type { HostRegistry } from './host-registry.js';

export const DRAIN_STATES = ['draining', 'drained', 'incomplete', 'deadline_exceeded', 'cancelled'] as const;
/**
 * `draining`: under way. `drained`: ended with the host empty. `incomplete`:
 * ended with workloads left. `deadline_exceeded`: the deadline passed before
 * every workload had its turn. `cancelled`: undrained or uncordoned meanwhile.
 */
export type DrainState = (typeof DRAIN_STATES)[number];

export const DRAIN_OUTCOMES = ['waiting', 'moving', 'moved', 'gone', 'never', 'no_host', 'refused', 'failed', 'not_tried'] as const;
/**
 * What became of one workload of a drain. `gone`: deleted, or sent back to
 * the queue, by other means. The outcomes in `LEFT_OUTCOMES` leave it on the
 * host: `never` (restart_policy never), `no_host` (no other host can take
 * it), `refused` (the migrator will not move it: the reason says why),
 * `failed` (its migration failed; it runs where it was), `not_tried` (the
 * drain stopped before its turn).
 */
export type DrainOutcome = (typeof DRAIN_OUTCOMES)[number];
export const LEFT_OUTCOMES: ReadonlySet<DrainOutcome> = new Set<DrainOutcome>(['never', 'no_host', 'refused', 'failed', 'not_tried']);

export interface DrainedWorkload {
  workloadId: string;
  name: string;
  kind: string;
  outcome: DrainOutcome;
  /** `moving`: the target; `moved`: the host it runs on now; else empty. */
  hostId: string;
  reason: string;
  updatedAt: string;
}

/** The durable record of a host's drain: its latest, under way or ended, kept until the next drain of the host or its removal. */
export interface HostDrain {
  id: string;
  hostId: string;
  requestId: string;
  state: DrainState;
  /** Passed to every migration: live, cold or auto. */
  mode: string;
  /** Migrations under way at once, at most. */
  parallel: number;
  startedAt: string;
  /** No move starts after this; absent: no deadline. */
  deadlineAt?: string;
  endedAt?: string;
  message: string;
  /** The host's workloads when the drain started, then any found there since, each with its outcome. */
  workloads: DrainedWorkload[];
}

export interface DrainRequest {
  requestId: string;
  /** At least 1. */
  parallel: number;
  /** 0: no deadline. */
  deadlineMs: number;
  mode: string;
}

export interface DrainCounts {
  moved: number;
  left: number;
  moving: number;
  waiting: number;
}

export function drainCounts(d: Pick<HostDrain, 'workloads'>): DrainCounts {
  const counts = { moved: 0, left: 0, moving: 0, waiting: 0 };
  for (const w of d.workloads) {
    if (w.outcome === 'moved') counts.moved++;
    else if (w.outcome === 'moving') counts.moving++;
    else if (w.outcome === 'waiting') counts.waiting++;
    else if (LEFT_OUTCOMES.has(w.outcome)) counts.left++;
  }
  return counts;
}

export interface HostDrainerOptions {
  /** After taking over the lead, how long to let hosts report before carrying on with drains under way. @default 0 */
  resumeAfterMs?: number;
  /** Pause before trying a workload again whose start failed for a passing reason (a command on it under way). @default 1000 */
  retryMs?: number;
  /** How often a migration a previous leader started is looked at until it ends. @default 1000 */
  pollMs?: number;
  /** Progress is stored at most this often (outcomes go out as events at once); a drain's start and end are stored at once. @default 500 */
  saveEveryMs?: number;
}

/**
 * The most workloads one drain takes: its record is one value in the state
 * bucket, which must stay well below NATS's 1 MB payload limit.
 */
export const MAX_DRAIN_WORKLOADS = 2000;
/** Reasons are cut to this length in the record. */
const MAX_REASON_CHARS = 200;

/** A start that failed for a reason that passes: tried this many times in all. */
/** Migrations a drain makes of one workload before it reports the workload failed. */
const MOVE_ATTEMPTS = 2;
const START_ATTEMPTS = 5;
const NO_TARGET = /no host can take/;
const PASSING = /command (under way|in progress)/;

type Stop = { state: 'cancelled' | 'deadline_exceeded'; message: string };

/**
 * Empties a host for maintenance. The drain is a durable record (the state
 * store's `drain` operations, by host id), written before anything is done:
 * then the host is cordoned, and every workload on it is taken in turn, at
 * most `parallel` at once: `restart_policy: never` ones are left, the others
 * are handed to the migrator, and whatever it refuses (no host can take it,
 * a kind it cannot move) is left with its reason. Each outcome is stored and
 * sent as an event. A deadline stops new moves; moves under way finish. An
 * undrain (or an uncordon) stops it too. The host stays cordoned unless
 * undrained.
 *
 * A coordinator that takes over the lead carries on with the drains under
 * way (`resume`): it follows the moves its predecessor started (the migrator
 * settles those) and takes the workloads not tried yet.
 */
export class HostDrainer {
  /** The drains this coordinator knows, by host id: every stored one while it leads. */
  private readonly drains = new Map<string, HostDrain>();
  /** Drains an operator stopped, by host id, until they end. */
  private readonly stopping = new Map<string, Stop>();
  private readonly running = new Map<string, Promise<void>>();
  /** Changes with each change of leadership: work of an earlier term stops without writing. */
  private term = 0;
  private resumeTimer: NodeJS.Timeout | undefined;
  /** Progress waiting to be stored, by host id. */
  private readonly saveTimers = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly controller: Pick<WorkloadController, 'requireLeader' | 'isLeader' | 'find' | 'workloadsOn' | 'cordon'>,
    private readonly hosts: Pick<HostRegistry, 'get'>,
    private readonly migrator: Pick<WorkloadMigrator, 'start' | 'ended'>,
    private readonly store: Pick<StateStore, 'operations' | 'putOperation' | 'readOperation'>,
    private readonly events: EventSink,
    private readonly log: Logger,
    private readonly options: HostDrainerOptions = {},
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Starts draining a host and returns its record once durable, the host
   * cordoned. Idempotent by request id while that drain runs. A host with no
   * workloads is drained at once.
   * @throws NotFoundError for a host that never reported
   * @throws FailedPreconditionError while a drain of the host is under way, or when the host is down
   * @throws UnavailableError when the record cannot be stored; nothing changed then
   */
  async start(hostId: string, request: DrainRequest): Promise<HostDrain> {
    this.controller.requireLeader();
    const host = this.hosts.get(hostId);
    if (!host) throw new NotFoundError('host', hostId);
    const current = this.drains.get(hostId);
    if (current?.state === 'draining') {
      if (request.requestId && current.requestId === request.requestId) return current;
      throw new FailedPreconditionError(
        `host ${hostId} is being drained already (${current.id}, since ${current.startedAt}); follow it with \`virtfleet host drain-status ${hostId}\`, or stop it with \`virtfleet host undrain ${hostId}\``,
      );
    }
    if (host.status === 'down') throw new FailedPreconditionError(`host ${hostId} is down: a drain moves workloads off a host that runs them, and a down host's workloads move by failover`);
    const residents = this.residents(hostId);
    if (residents.length > MAX_DRAIN_WORKLOADS)
      throw new FailedPreconditionError(`host ${hostId} holds ${residents.length} workloads; a drain takes at most ${MAX_DRAIN_WORKLOADS}: move or delete some first`);
    const at = this.iso();
    const workloads = residents.map((w) => waiting(w, at));
    const drain: HostDrain = {
      id: `drain-${randomBytes(6).toString('hex')}`,
      hostId,
      requestId: request.requestId,
      state: workloads.length === 0 ? 'drained' : 'draining',
      mode: request.mode || 'auto',
      parallel: Math.max(1, request.parallel),
      startedAt: at,
      ...(request.deadlineMs > 0 ? { deadlineAt: new Date(Date.parse(at) + request.deadlineMs).toISOString() } : {}),
      ...(workloads.length === 0 ? { endedAt: at } : {}),
      message: workloads.length === 0 ? `host ${hostId} holds no workloads; it is cordoned` : `cordoned; moving ${workloads.length} workload(s)`,
      workloads,
    };
    // Cordoned first (its mark is written before the record, in order): a successor that finds the record finds
    // the host cordoned, and one it finds uncordoned was uncordoned on purpose. Set before the write, so that a
    // second request meanwhile finds this one.
    const wasCordoned = host.cordoned;
    this.controller.cordon(hostId, true);
    this.drains.set(hostId, drain);
    this.stopping.delete(hostId);
    try {
      await this.store.putOperation('drain', hostId, drain);
    } catch (err) {
      if (this.drains.get(hostId) === drain) {
        if (current) this.drains.set(hostId, current);
        else this.drains.delete(hostId);
        if (!wasCordoned) this.uncordonQuietly(hostId);
      }
      throw new UnavailableError(`the drain of host ${hostId} could not be stored: ${errorMessage(err)}`, { cause: err });
    }
    this.events.emit(EVENT_TYPES.hostDrainStarted, hostId, { id: hostId, drain_id: drain.id, workloads: workloads.length, parallel: drain.parallel, mode: drain.mode, deadline: drain.deadlineAt ?? '' });
    this.log.info({ host: hostId, drain: drain.id, workloads: workloads.length, parallel: drain.parallel, mode: drain.mode, deadline: drain.deadlineAt }, 'drain started');
    if (drain.state === 'draining') this.run(hostId);
    else this.emitEnded(drain);
    return drain;
  }

  private uncordonQuietly(hostId: string): void {
    try {
      this.controller.cordon(hostId, false);
    } catch (err) {
      this.log.warn({ host: hostId, err: errorMessage(err) }, 'host left cordoned by a drain that could not start');
    }
  }

  /** The host's drain under way, or its last one: the leader's own, a follower's read from the store. @throws NotFoundError when it has none */
  async get(hostId: string): Promise<HostDrain> {
    const d = this.controller.isLeader ? this.drains.get(hostId) : await this.store.readOperation<HostDrain>('drain', hostId);
    if (!d) throw new NotFoundError('drain of host', hostId);
    return d;
  }

  /**
   * Stops the host's drain under way (no move starts; moves under way
   * finish, and then it ends `cancelled`) and uncordons the host. Returns
   * the host's drain record, if it has one.
   * @throws NotFoundError for a host that never reported
   */
  async undrain(hostId: string): Promise<HostDrain | undefined> {
    this.controller.requireLeader();
    if (!this.hosts.get(hostId)) throw new NotFoundError('host', hostId);
    const d = this.drains.get(hostId);
    const stopped = d?.state === 'draining';
    if (stopped) this.stopping.set(hostId, { state: 'cancelled', message: 'stopped by host undrain' });
    this.controller.cordon(hostId, false);
    this.events.emit(EVENT_TYPES.hostUndrained, hostId, { id: hostId, drain_id: d?.id ?? '', stopped });
    this.log.info({ host: hostId, drain: d?.id, stopped }, 'host undrained');
    // With no move under way the drain ends at once: give it that moment, so that the answer says so.
    const running = this.running.get(hostId);
    if (stopped && running) await Promise.race([running, sleep(1000)]);
    return this.drains.get(hostId);
  }

  /** Drops the host's drain record: the host was forgotten. */
  forget(hostId: string): void {
    this.stopping.delete(hostId);
    clearTimeout(this.saveTimers.get(hostId));
    this.saveTimers.delete(hostId);
    const had = this.drains.delete(hostId);
    if (!had && !this.store.operations('drain').has(hostId)) return;
    this.store.putOperation('drain', hostId, undefined).catch((err: unknown) => this.log.warn({ host: hostId, err: errorMessage(err) }, 'drain record not removed'));
  }

  /** Hosts that have a drain record. */
  hostIds(): string[] {
    return [...this.drains.keys()];
  }

  /**
   * On becoming leader: takes the stored drain records over, and once hosts
   * have had `resumeAfterMs` to report, carries on with those under way. A
   * host uncordoned meanwhile ends its drain `cancelled`.
   */
  resume(): void {
    this.term++;
    clearTimeout(this.resumeTimer);
    this.drains.clear();
    this.stopping.clear();
    for (const [hostId, d] of this.store.operations<HostDrain>('drain')) this.drains.set(hostId, d);
    const underWay = [...this.drains.values()].filter((d) => d.state === 'draining');
    if (underWay.length === 0) return;
    const term = this.term;
    this.resumeTimer = setTimeout(() => {
      if (term !== this.term || !this.controller.isLeader) return;
      for (const d of underWay) {
        if (this.drains.get(d.hostId)?.state !== 'draining') continue;
        this.log.warn({ host: d.hostId, drain: d.id, ...drainCounts(d) }, 'carrying on with a drain a previous leader left under way');
        this.run(d.hostId);
      }
    }, this.options.resumeAfterMs ?? 0);
  }

  /** On losing the lead: work under way stops without writing; the next leader carries it on. */
  stop(): void {
    this.term++;
    clearTimeout(this.resumeTimer);
    for (const timer of this.saveTimers.values()) clearTimeout(timer);
    this.saveTimers.clear();
  }

  /** Waits for every drain this coordinator carries out to end (tests, shutdown). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.running.values()]);
  }

  private run(hostId: string): void {
    const term = this.term;
    const done: Promise<void> = this.carryOut(hostId, term)
      .catch((err: unknown) => this.log.error({ host: hostId, err: errorMessage(err) }, 'drain ended abnormally'))
      .finally(() => {
        if (this.running.get(hostId) === done) this.running.delete(hostId);
      });
    this.running.set(hostId, done);
  }

  /** True while this drain is this coordinator's to carry on. */
  private current(hostId: string, term: number): boolean {
    return term === this.term && this.controller.isLeader && this.drains.get(hostId)?.state === 'draining';
  }

  private async carryOut(hostId: string, term: number): Promise<void> {
    const taken = new Set<string>();
    for (;;) {
      const workers = this.drains.get(hostId)?.parallel ?? 1;
      await Promise.all(Array.from({ length: workers }, () => this.work(hostId, term, taken)));
      if (!this.current(hostId, term)) return;
      // A cordon stops placements, not every way onto a host (a failover reclaim): those found there join the drain.
      if (this.stopOf(hostId) || !this.addNewcomers(hostId, term)) break;
    }
    await this.finish(hostId, term);
  }

  /** One of the drain's `parallel` workers: takes the next workload until none is left or the drain stops. */
  private async work(hostId: string, term: number, taken: Set<string>): Promise<void> {
    for (;;) {
      if (!this.current(hostId, term)) return;
      const d = this.drains.get(hostId)!;
      // Moves a previous leader started hold a slot like the others, and are followed first.
      const next = d.workloads.find((w) => w.outcome === 'moving' && !taken.has(w.workloadId)) ?? d.workloads.find((w) => w.outcome === 'waiting' && !taken.has(w.workloadId));
      if (!next || (next.outcome === 'waiting' && this.stopOf(hostId))) return;
      taken.add(next.workloadId);
      if (next.outcome === 'moving') await this.follow(hostId, term, next.workloadId, 1);
      else await this.move(hostId, term, next.workloadId, 1);
    }
  }

  /** Moves the workload; `move` counts this drain's migrations of it (MOVE_ATTEMPTS at most). */
  private async move(hostId: string, term: number, workloadId: string, move: number): Promise<void> {
    const w = this.controller.find(workloadId);
    if (!w || w.state === 'deleted' || w.hostId !== hostId) return this.settleElsewhere(hostId, term, workloadId, w);
    if (restartPolicyOf(w.spec) === 'never') return this.note(hostId, term, workloadId, 'never', '', 'restart_policy: never');
    const started = await this.startMigration(hostId, term, workloadId, move);
    if (!started) return;
    if (started.migration) this.note(hostId, term, workloadId, 'moving', started.migration.targetHostId, '');
    await this.follow(hostId, term, workloadId, move);
  }

  /** Asks the migrator to move the workload; a refusal is noted with its reason (undefined then). Passing failures are tried again. */
  private async startMigration(hostId: string, term: number, workloadId: string, move: number): Promise<Workload | undefined> {
    const d = this.drains.get(hostId)!;
    const requestId = move === 1 ? `${d.id}.${workloadId}` : `${d.id}.${workloadId}.${move}`;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.migrator.start(workloadId, { requestId, targetHostId: '', mode: d.mode, maxDowntimeMs: 0, bandwidthMiBs: 0 });
      } catch (err) {
        if (!this.current(hostId, term)) return undefined;
        const reason = errorMessage(err);
        if (attempt < START_ATTEMPTS && (err instanceof UnavailableError || PASSING.test(reason))) {
          await sleep(this.options.retryMs ?? 1000);
          continue;
        }
        this.note(hostId, term, workloadId, NO_TARGET.test(reason) ? 'no_host' : 'refused', '', reason);
        return undefined;
      }
    }
  }

  /**
   * Follows the workload's migration to its end, then records where the
   * workload is. A move that ended with the workload still on the host is
   * made again, up to MOVE_ATTEMPTS in all: a change of leader, a target's
   * agent restarting, undo a move without anything being wrong with it.
   */
  private async follow(hostId: string, term: number, workloadId: string, move: number): Promise<void> {
    for (;;) {
      await this.migrator.ended(workloadId);
      if (!this.current(hostId, term)) return;
      const w = this.controller.find(workloadId);
      // Just after a change of leader the migrator may not have taken a predecessor's migration up yet.
      if (w?.migration) {
        await sleep(this.options.pollMs ?? 1000);
        continue;
      }
      if (!w || w.state === 'deleted' || w.hostId !== hostId) return this.settleElsewhere(hostId, term, workloadId, w);
      if (move < MOVE_ATTEMPTS && !this.stopOf(hostId)) {
        this.log.info({ host: hostId, workload: workloadId, reason: w.message }, 'a drain move ended with the workload still on the host; moving it again');
        return this.move(hostId, term, workloadId, move + 1);
      }
      return this.note(hostId, term, workloadId, 'failed', '', w.message || 'its migration ended with it still on the host');
    }
  }

  /** A workload no longer on the drained host: moved, or gone (deleted, or back in the queue). */
  private settleElsewhere(hostId: string, term: number, workloadId: string, w: Workload | undefined): void {
    if (w && w.state !== 'deleted' && w.hostId) return this.note(hostId, term, workloadId, 'moved', w.hostId, w.message);
    return this.note(hostId, term, workloadId, 'gone', '', !w || w.state === 'deleted' ? 'deleted' : w.message || `now ${w.state}`);
  }

  private note(hostId: string, term: number, workloadId: string, outcome: DrainOutcome, onHost: string, reason: string): void {
    if (!this.current(hostId, term)) return;
    const d = this.drains.get(hostId)!;
    const updatedAt = this.iso();
    const cut = reason.length > MAX_REASON_CHARS ? `${reason.slice(0, MAX_REASON_CHARS - 1)}…` : reason;
    const next: HostDrain = { ...d, workloads: d.workloads.map((w) => (w.workloadId === workloadId ? { ...w, outcome, hostId: onHost, reason: cut, updatedAt } : w)) };
    const item = next.workloads.find((w) => w.workloadId === workloadId);
    this.saveSoon(next, term);
    this.events.emit(EVENT_TYPES.hostDrainProgress, hostId, {
      id: hostId,
      drain_id: d.id,
      workload_id: workloadId,
      name: item?.name ?? '',
      outcome,
      host_id: onHost,
      reason,
      total: next.workloads.length,
      ...drainCounts(next),
    });
    this.log.info({ host: hostId, drain: d.id, workload: workloadId, outcome, to: onHost || undefined, reason: reason || undefined }, 'drain progress');
  }

  /** Adds the workloads on the host the drain does not list yet. False when there are none. */
  private addNewcomers(hostId: string, term: number): boolean {
    const d = this.drains.get(hostId)!;
    const known = new Set(d.workloads.map((w) => w.workloadId));
    const at = this.iso();
    const fresh = this.residents(hostId)
      .filter((w) => !known.has(w.id))
      .slice(0, MAX_DRAIN_WORKLOADS - d.workloads.length);
    if (fresh.length === 0) return false;
    this.saveSoon({ ...d, workloads: [...d.workloads, ...fresh.map((w) => waiting(w, at))] }, term);
    return true;
  }

  /** Why the drain should start no more moves, if it should not. */
  private stopOf(hostId: string): Stop | undefined {
    const asked = this.stopping.get(hostId);
    if (asked) return asked;
    const d = this.drains.get(hostId);
    if (d?.deadlineAt && this.now() >= Date.parse(d.deadlineAt)) return { state: 'deadline_exceeded', message: `the deadline ${d.deadlineAt} passed` };
    if (this.hosts.get(hostId)?.cordoned === false) return { state: 'cancelled', message: 'the host was uncordoned' };
    return undefined;
  }

  private async finish(hostId: string, term: number): Promise<void> {
    if (!this.current(hostId, term)) return;
    const d = this.drains.get(hostId)!;
    const stop = this.stopOf(hostId);
    const at = this.iso();
    const workloads = d.workloads.map((w): DrainedWorkload => (w.outcome === 'waiting' ? { ...w, outcome: 'not_tried', reason: `${stop?.message ?? 'the drain stopped'} before its turn`, updatedAt: at } : w));
    const notTried = workloads.filter((w) => w.outcome === 'not_tried').length;
    const remaining = this.residents(hostId).length;
    const state: DrainState = stop?.state === 'cancelled' ? 'cancelled' : stop && notTried > 0 ? stop.state : remaining === 0 ? 'drained' : 'incomplete';
    const left = workloads.filter((w) => LEFT_OUTCOMES.has(w.outcome));
    const listed = left.slice(0, 5).map((w) => `${w.name} (${w.outcome}${w.reason ? `: ${w.reason}` : ''})`).join(', ') + (left.length > 5 ? `, and ${left.length - 5} more` : '');
    const message =
      state === 'drained'
        ? `host ${hostId} is empty and stays cordoned`
        : state === 'cancelled'
          ? `${stop?.message ?? 'stopped'}; ${remaining} workload(s) still on host ${hostId}`
          : state === 'deadline_exceeded'
            ? `${stop?.message ?? 'the deadline passed'} with ${notTried} workload(s) not tried; ${remaining} still on host ${hostId}, which stays cordoned`
            : `${remaining} workload(s) left on host ${hostId}, which stays cordoned: ${listed}`;
    const ended: HostDrain = { ...d, state, workloads, endedAt: at, message };
    this.stopping.delete(hostId);
    await this.save(ended);
    this.emitEnded(ended);
  }

  private emitEnded(d: HostDrain): void {
    const counts = drainCounts(d);
    this.events.emit(EVENT_TYPES.hostDrainEnded, d.hostId, {
      id: d.hostId,
      drain_id: d.id,
      state: d.state,
      message: d.message,
      total: d.workloads.length,
      moved: counts.moved,
      left: d.workloads.filter((w) => LEFT_OUTCOMES.has(w.outcome)).map((w) => ({ workload_id: w.workloadId, name: w.name, outcome: w.outcome, reason: w.reason })),
    });
    this.log.info({ host: d.hostId, drain: d.id, state: d.state, ...counts }, `drain ended: ${d.message}`);
  }

  /** Keeps the record and stores it now; writes keep their order, so the last one stored is the newest. */
  private save(d: HostDrain): Promise<void> {
    clearTimeout(this.saveTimers.get(d.hostId));
    this.saveTimers.delete(d.hostId);
    this.drains.set(d.hostId, d);
    return this.store.putOperation('drain', d.hostId, d).catch((err: unknown) => this.log.warn({ host: d.hostId, drain: d.id, err: errorMessage(err) }, 'drain record not stored'));
  }

  /**
   * Keeps the record and stores it within `saveEveryMs`, with whatever else
   * changed meanwhile. What a successor misses it finds again: a workload it
   * takes again is found moved, refused again, or its migration (same
   * request id) returned as under way.
   */
  private saveSoon(d: HostDrain, term: number): void {
    this.drains.set(d.hostId, d);
    if (this.saveTimers.has(d.hostId)) return;
    const timer = setTimeout(() => {
      this.saveTimers.delete(d.hostId);
      const latest = this.drains.get(d.hostId);
      if (term === this.term && latest?.id === d.id) void this.save(latest);
    }, this.options.saveEveryMs ?? 500);
    this.saveTimers.set(d.hostId, timer);
  }

  /** The host's workloads that are not deleted, in arrival order. */
  private residents(hostId: string): Workload[] {
    return this.controller
      .workloadsOn(hostId)
      .filter((w) => w.state !== 'deleted')
      .sort((a, b) => a.arrivalSeq - b.arrivalSeq);
  }

  private iso(): string {
    return new Date(this.now()).toISOString();
  }
}

function waiting(w: Workload, at: string): DrainedWorkload {
  return { workloadId: w.id, name: w.spec.name, kind: w.spec.kind, outcome: 'waiting', hostId: '', reason: '', updatedAt: at };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
