import {
  EVENT_TYPES,
  errorMessage,
  NotFoundError,
  failoverModeOf,
  restartPolicyOf,
  type Logger,
  type pb,
  type RestartPolicy,
  type WorkloadTelemetry,
} from '@virtfleet/shared';
import type { AgentAction, AgentClientPool } from '../dispatch/agent-client.js';
import type { EventSink } from '../events/event-log.js';
import type { Host } from '../hosts/host.js';
import type { HostRegistry } from '../hosts/host-registry.js';
import type { FenceVerdict } from '../hosts/host-lease-monitor.js';
import { assume, type HostSnapshot, type Scheduler } from '../scheduler/scheduler.js';
import { disruptionOf, TokenBucket, type Disruption, type FailoverLimits, type FailoverMode } from './failover-limits.js';
import type { Workload } from './workload.js';
import { commandId, type WorkloadController } from './workload-controller.js';

/** Says whether a silent host has fenced itself; HostLeaseMonitor in production. */
export interface FenceOracle {
  verdict(hostId: string): FenceVerdict;
}

export interface SupervisorSettings extends FailoverLimits {
  /** The host TTL: silence for this long means down. */
  ttlMs: number;
  /** reschedule mode: extra wait after the TTL before moving workloads. */
  graceMs: number;
  checkIntervalMs: number;
  reconcileIntervalMs: number;
  /**
   * How many reschedules may go at once, over all lost hosts (failover.rescheduleBurst). The rate is
   * failover.reschedulesPerSecond, or secondaryReschedulesPerSecond in partial disruption (FailoverLimits).
   */
  rescheduleBurst: number;
}

/** A difference between what a host runs and what it should run. */
export type DriftKind = 'missing' | 'extra' | 'state';

/** What reconciliation does about an observed state, given the desired one. */
export type Repair = { action: Exclude<AgentAction, 'delete'> } | { action: 'none' } | { action: 'accept'; reason: string };

const RUNS = new Set(['running', 'paused']);
/** Repairs that keep failing are retried less and less often, up to this. */
const MAX_REPAIR_BACKOFF_MS = 5 * 60_000;

/**
 * The leader's watch over hosts and what they run.
 *
 * Lost hosts: once a host is down, each of its workloads moves according to
 * its restart policy and failover mode. `reschedule` workloads go back to the
 * queue after the TTL plus `graceMs`; `fence-first` ones only once the host
 * is fenced (its lease lapsed, per the FenceOracle) or confirmed dead by an
 * operator. `never` workloads stay where they are. Whatever the verdict,
 * nothing moves while more than `maxDownFraction` of the hosts are down
 * (failover is suspended), nor when no other host could take the workload
 * (the scheduler, with the lost host avoided, finds none), and at most
 * `reschedulesPerSecond` move (a token bucket), `secondaryReschedulesPerSecond`
 * while more than `partialDisruptionFraction` are down in a cluster larger
 * than `smallClusterHosts` (partial disruption). Each change of mode is an
 * event.
 *
 * Reconciliation: every `reconcileIntervalMs`, and at once for a host that
 * comes back, each host's actual workloads are compared with the desired
 * state. Drift (a copy missing, an extra copy, a wrong state) is reported as
 * an event and repaired. A returning host becomes schedulable only after its
 * extra copies are gone, so after a partition exactly one copy runs. A copy
 * whose workload moved elsewhere is deleted only once the copy there is
 * confirmed running; until then the host keeps it. A workload still waiting
 * in the queue when the host it left returns running it stays there.
 */
/** The share of the reconcile interval a pass is spread over, leaving room before the next. */
const RECONCILE_SPREAD = 0.8;
/** How often a spread pass starts its next hosts. */
const RECONCILE_STEP_MS = 50;

/** A copy of a workload on a host, as the agent lists it or its telemetry reports it (which has no exit code). */
type ObservedCopy = Pick<pb.WorkloadStatus__Output, 'workload_id' | 'state' | 'driver_ref' | 'message'> & { exit_code?: number };

/** How much earlier than its stamps say a telemetry observation is taken to have begun: its time in transit and in queues. */
const TELEMETRY_TRANSIT_MARGIN_MS = 2_000;

export class HostSupervisor {
  private checkTimer: NodeJS.Timeout | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private readonly reconciling = new Map<string, Promise<void>>();
  private readonly nudged = new Set<string>();
  /** Workloads whose last repair failed: how often in a row, and not before when to try again. */
  private readonly repairBackoff = new Map<string, { failures: number; notBeforeMs: number }>();
  private leaderSinceMs = 0;
  private lastFullCheckMs = 0;
  private running = false;
  /** Reconciliation passes completed, over all hosts, for the debug log. */
  private passes = 0;
  private readonly reschedules: TokenBucket;
  /** The failover mode last acted on; an event and a log line mark each change. */
  private mode: FailoverMode = 'normal';
  private retryTimer: NodeJS.Timeout | undefined;
  /** The next step of a reconciliation pass spread over the interval. */
  private spreadTimer: NodeJS.Timeout | undefined;
  /** Copies kept on a host until their workload's other copy runs, `host/workload`; drift is reported once for each. */
  private readonly kept = new Set<string>();

  constructor(
    private readonly controller: WorkloadController,
    private readonly hosts: HostRegistry,
    private readonly fences: FenceOracle,
    private readonly agents: AgentClientPool,
    private readonly events: EventSink,
    /** Answers "could another host take it?" before a workload is moved. */
    private readonly scheduler: Scheduler,
    private readonly settings: SupervisorSettings,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.reschedules = new TokenBucket(settings.reschedulesPerSecond, settings.rescheduleBurst, now);
  }

  start(): void {
    this.stop();
    this.running = true;
    this.leaderSinceMs = this.now();
    this.checkTimer = setInterval(() => this.checkLostHosts(), this.settings.checkIntervalMs);
    this.reconcileTimer = setInterval(() => this.reconcileAll(), this.settings.reconcileIntervalMs);
    this.reconcileAll();
  }

  stop(): void {
    this.running = false;
    clearInterval(this.checkTimer);
    clearInterval(this.reconcileTimer);
    clearTimeout(this.retryTimer);
    clearTimeout(this.spreadTimer);
    this.checkTimer = this.reconcileTimer = this.retryTimer = this.spreadTimer = undefined;
    this.mode = 'normal';
  }

  /** A recovering host is reconciled at once, and made schedulable when that succeeds. */
  onHostStatus(host: Host): void {
    if (this.running && host.status === 'recovering') void this.reconcileHost(host.id);
  }

  /** A workload seen stopped or failed against its desired state gets reconciled soon, not at the next interval. */
  onTelemetry(host: Host, reported: readonly WorkloadTelemetry[]): void {
    if (!this.running || this.nudged.has(host.id)) return;
    for (const t of reported) {
      const w = this.controller.find(t.workload_id);
      if (w && w.hostId === host.id && RUNS.has(w.desiredState) && (t.state === 'stopped' || t.state === 'failed')) {
        this.nudged.add(host.id);
        setTimeout(() => {
          this.nudged.delete(host.id);
          void this.reconcileHost(host.id);
        }, 200);
        return;
      }
    }
  }

  /** Moves the workloads of down hosts whose time has come. */
  checkLostHosts(): void {
    if (!this.running || !this.controller.isLeader) return;
    const now = this.now();
    // Each check looks at the down hosts' workloads; workloads bound to hosts never heard from need a full scan, done less often.
    const fullScan = now - this.lastFullCheckMs >= this.settings.reconcileIntervalMs;
    if (fullScan) this.lastFullCheckMs = now;
    const candidates = (fullScan ? this.controller.workloads() : this.hosts.list().flatMap((h) => (h.status === 'down' ? this.controller.workloadsOn(h.id) : []))).sort(
      (a, b) => a.arrivalSeq - b.arrivalSeq,
    );
    const dead = this.controller.confirmedDead();
    const lost: Workload[] = [];
    const unheard = new Set<string>();
    for (const w of candidates) {
      if (!w.hostId || !RUNS.has(w.desiredState) || w.state === 'deleted' || w.state === 'pending' || this.controller.isBusy(w.id)) continue;
      const host = this.hosts.get(w.hostId);
      if (host && host.status !== 'down') continue;
      // A host this coordinator never heard from gets one TTL from the take-over to report.
      if (!host && now >= this.leaderSinceMs + this.settings.ttlMs) unheard.add(w.hostId);
      lost.push(w);
    }
    const disruption = this.noteDisruption(
      [...this.hosts.list().map((h) => ({ id: h.id, down: h.status === 'down' })), ...[...unheard].map((id) => ({ id, down: true }))],
      dead,
    );
    let snapshots: HostSnapshot[] | undefined;
    let throttled = 0;
    for (const w of lost) {
      const host = this.hosts.get(w.hostId);
      const downSinceMs = (host ? host.lastSeenMs : this.leaderSinceMs) + this.settings.ttlMs;
      if (now < downSinceMs) continue;
      const verdict = this.lostWorkloadVerdict(w, now - downSinceMs, dead.has(w.hostId));
      if (!verdict.move) {
        this.controller.note(w, { state: 'unknown', message: verdict.reason });
        continue;
      }
      if (disruption.mode === 'suspended') {
        this.controller.note(w, { state: 'unknown', message: `host ${w.hostId} is down; failover suspended: ${disruption.reason}` });
        continue;
      }
      // No token, no move: checked first, so a throttled check does not build snapshots for nothing.
      if (this.reschedules.msUntil() > 0) {
        throttled++;
        this.controller.note(w, { state: 'unknown', message: `host ${w.hostId} is down; waiting its turn (${disruption.pace})` });
        continue;
      }
      snapshots ??= this.controller.snapshots();
      const target = this.otherHostFor(w, snapshots);
      if (!target.host) {
        this.controller.note(w, { state: 'unknown', message: `host ${w.hostId} is down; not moved, as no other host could take it: ${target.summary}` });
        continue;
      }
      this.reschedules.tryTake();
      // Later moves in this pass see this one's booking, so they do not all count on the same free capacity.
      assume(target.host, w.spec);
      void this.controller.reschedule(w, verdict.reason).catch((err: unknown) => this.log.warn({ workload: w.id, err: errorMessage(err) }, 'reschedule not stored; retrying'));
    }
    // Come back when the tokens for the waiting moves are there (at most a bucketful), not at every token.
    if (throttled > 0 && !this.retryTimer) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.checkLostHosts();
      }, this.reschedules.msUntil(throttled));
    }
  }

  /** Whether another host could take the workload now, its host avoided; the scheduler decides, changing nothing. */
  private otherHostFor(w: Workload, snapshots: HostSnapshot[]): { host?: HostSnapshot; summary: string } {
    const record = this.scheduler.place({ workloadId: w.id, spec: w.spec, avoidHosts: [w.hostId] }, snapshots);
    return { host: snapshots.find((h) => h.id === record.hostId), summary: record.summary };
  }

  /**
   * Judges the disruption and sets the reschedule rate in effect; an event and a log line mark each change of
   * mode. While suspended the bucket keeps its last rate: nothing takes from it then.
   */
  private noteDisruption(hosts: { id: string; down: boolean }[], confirmedDead: ReadonlySet<string>): Disruption {
    const d = disruptionOf(hosts, confirmedDead, this.settings);
    if (d.ratePerSecond > 0 && d.ratePerSecond !== this.reschedules.rate) {
      this.reschedules.setRate(d.ratePerSecond);
      // A retry timed at the old rate may be due much later (or sooner) than the next token now is.
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    if (d.mode !== this.mode) {
      const from = this.mode;
      this.mode = d.mode;
      const data = {
        mode: d.mode,
        rate_per_second: d.ratePerSecond,
        down_hosts: d.down,
        down: d.down.length,
        total: d.total,
        max_down_fraction: this.settings.maxDownFraction,
        partial_disruption_fraction: this.settings.partialDisruptionFraction,
        reason: d.reason,
      };
      // One event per change: leaving a suspension is always `resumed`, whichever rate follows.
      if (d.mode === 'suspended') {
        this.events.emit(EVENT_TYPES.failoverSuspended, 'hosts', data);
        this.log.warn(data, 'failover suspended: too many hosts down together');
      } else if (from === 'suspended') {
        this.events.emit(EVENT_TYPES.failoverResumed, 'hosts', data);
        this.log.info(data, 'failover resumed');
      } else if (d.mode === 'partial') {
        this.events.emit(EVENT_TYPES.failoverSlowed, 'hosts', data);
        this.log.warn(data, 'failover slowed: partial disruption');
      } else {
        this.events.emit(EVENT_TYPES.failoverFullRate, 'hosts', data);
        this.log.info(data, 'failover back at the full rate');
      }
    }
    return d;
  }

  /** Whether a workload on a host down for `downForMs` moves now, and why (or why not). */
  lostWorkloadVerdict(w: Workload, downForMs: number, confirmedDead: boolean): { move: boolean; reason: string } {
    const hostId = w.hostId;
    if (restartPolicyOf(w.spec) === 'never') return { move: false, reason: `host ${hostId} is down; restart policy never, so it stays there` };
    if (confirmedDead) return { move: true, reason: `host ${hostId} was confirmed dead by an operator` };
    if (failoverModeOf(w.spec) === 'reschedule') {
      const waitMs = this.settings.graceMs - downForMs;
      return waitMs <= 0
        ? { move: true, reason: `host ${hostId} lost (down past the TTL and ${this.settings.graceMs} ms grace)` }
        : { move: false, reason: `host ${hostId} is down; rescheduling ${this.settings.graceMs} ms after that unless it returns` };
    }
    const fence = this.fences.verdict(hostId);
    return fence.fenced
      ? { move: true, reason: `host ${hostId} lost and fenced: ${fence.detail}` }
      : { move: false, reason: `host ${hostId} is down; fence-first, so it waits until the host is fenced: ${fence.detail}` };
  }

  /** Reconciles every reachable host, each at most once at a time. */
  /**
   * Starts a reconciliation pass over every host that is not down: the first
   * at once, the rest spread evenly over most of the interval, so a large
   * fleet sees a steady trickle of ListWorkloads calls instead of one call
   * per host in the same instant every interval (Nomad spreads its client
   * syncs the same way).
   */
  reconcileAll(): void {
    if (!this.running) return;
    for (const id of this.repairBackoff.keys()) if (this.controller.find(id)?.state === 'deleted' || !this.controller.find(id)) this.repairBackoff.delete(id);
    for (const key of this.kept) {
      const w = this.controller.find(key.slice(key.indexOf('/') + 1));
      if (!w || w.state === 'deleted' || w.hostId === key.slice(0, key.indexOf('/'))) this.kept.delete(key);
    }
    const ids = this.hosts.list().flatMap((h) => (h.status === 'down' ? [] : [h.id]));
    clearTimeout(this.spreadTimer);
    const spreadMs = RECONCILE_SPREAD * this.settings.reconcileIntervalMs;
    const perStep = Math.max(1, Math.ceil((ids.length * RECONCILE_STEP_MS) / spreadMs));
    let next = 0;
    const step = () => {
      if (!this.running) return;
      for (const end = Math.min(ids.length, next + perStep); next < end; next++) void this.reconcileHost(ids[next]!);
      if (next < ids.length) this.spreadTimer = setTimeout(step, RECONCILE_STEP_MS);
    };
    step();
  }

  /** Compares one host's workloads with the desired state and repairs the drift. */
  reconcileHost(hostId: string): Promise<void> {
    const inFlight = this.reconciling.get(hostId);
    if (inFlight) return inFlight;
    const run = this.reconcileOnce(hostId)
      .catch((err: unknown) => this.log.warn({ host: hostId, err: errorMessage(err) }, 'reconciliation failed; retrying at the next pass'))
      .finally(() => this.reconciling.delete(hostId));
    this.reconciling.set(hostId, run);
    return run;
  }

  /**
   * What the host runs, for reconciling. Its telemetry is used when the
   * workloads view built from it is complete (a full list and every delta
   * since), younger than the reconcile interval, the host is up, and no copy
   * in it is stopped or failed (telemetry carries no exit codes, which restart policies need).
   * Otherwise the agent is asked (ListWorkloads). Reading telemetry keeps a
   * large fleet's reconciliation off gRPC: no call and no open channel per
   * host per interval. `listedAt` is when the observation began on this
   * coordinator's clock: the telemetry's own sampling-to-sending span (one
   * clock) taken back from its arrival, and a margin more for its transit, so
   * a command that finished after the observation is never judged by it.
   */
  private async observe(host: Host): Promise<{ copies: ObservedCopy[]; listedAt: number; source: 'telemetry' | 'agent' }> {
    const t = host.telemetry;
    const sampledMs = t.workloads_sampled_at ? Date.parse(t.workloads_sampled_at) : NaN;
    const publishedMs = t.published_at ? Date.parse(t.published_at) : NaN;
    if (host.status === 'up' && host.workloads.complete && host.telemetryAppliedMs !== undefined && Number.isFinite(sampledMs) && Number.isFinite(publishedMs) && publishedMs >= sampledMs) {
      const listedAt = host.telemetryAppliedMs - (publishedMs - sampledMs) - TELEMETRY_TRANSIT_MARGIN_MS;
      if (this.now() - listedAt < this.settings.reconcileIntervalMs) {
        const copies: ObservedCopy[] = [];
        let stoppedOrFailed = false;
        for (const c of host.workloads.values()) {
          stoppedOrFailed ||= c.state === 'stopped' || c.state === 'failed';
          copies.push({ workload_id: c.workload_id, state: c.state, driver_ref: c.driver_ref, message: '' });
        }
        if (!stoppedOrFailed) return { copies, listedAt, source: 'telemetry' };
      }
    }
    const listedAt = this.now();
    const copies = await this.agents.for(host.id, t.address).list();
    return { copies, listedAt, source: 'agent' };
  }

  private async reconcileOnce(hostId: string): Promise<void> {
    const host = this.hosts.get(hostId);
    if (!this.running || !this.controller.isLeader || !host || host.status === 'down') return;
    const { copies: observed, listedAt, source } = await this.observe(host);
    const seen = new Set<string>();
    const work: Promise<void>[] = [];
    for (const copy of observed) {
      if (copy.state === 'deleted') continue;
      seen.add(copy.workload_id);
      const w = this.controller.find(copy.workload_id);
      // The copy a migration is making on its target is the migration's to keep or remove.
      if (w?.migration?.targetHostId === hostId) continue;
      if (!w || w.state === 'deleted' || w.hostId !== hostId) {
        // Not (or no longer) this host's to run: a stale copy after a reschedule, or deleted meanwhile.
        // A copy still running on the host its workload left, before it was placed elsewhere, is simply taken back.
        if (w?.state === 'pending' && w.leftHostId === hostId && RUNS.has(copy.state) && this.controller.reclaim(w, hostId, copy.state as Workload['state'], copy.driver_ref)) {
          this.log.info({ host: hostId, workload: w.id }, 'host returned before the workload was placed elsewhere; reschedule called off');
          continue;
        }
        const keep = w && w.state !== 'deleted' ? this.keepReason(w) : undefined;
        if (keep) this.keepCopy(hostId, copy, keep);
        else work.push(this.removeCopy(hostId, copy, w));
        continue;
      }
      if (this.controller.isBusy(w.id) || this.controller.commandFinishedAt(w.id) > listedAt || w.state === 'creating') continue;
      const repair = repairFor(w.desiredState, copy, restartPolicyOf(w.spec));
      if (repair.action === 'none') {
        if (w.state !== copy.state && copy.state !== 'unknown' && copy.state !== 'creating') this.controller.note(w, { state: copy.state as Workload['state'], message: copy.message });
      } else if (repair.action === 'accept') {
        this.controller.note(w, { state: copy.state as Workload['state'], message: repair.reason });
      } else if (this.mayRepair(w.id)) {
        this.drift(w.id, hostId, 'state', { desired: w.desiredState, observed: copy.state, repair: repair.action, detail: copy.message });
        work.push(this.repaired(w.id, this.controller.repair(w, repair.action), repair.action));
      }
    }
    for (const w of this.controller.workloadsOn(hostId)) {
      // A create that failed left no copy; re-creating it each pass would loop on a permanent error.
      if (seen.has(w.id) || w.state === 'deleted' || w.state === 'creating' || w.state === 'pending' || (w.state === 'failed' && !w.driverRef)) continue;
      if (this.controller.isBusy(w.id) || this.controller.commandFinishedAt(w.id) > listedAt) continue;
      if (RUNS.has(w.desiredState) && restartPolicyOf(w.spec) !== 'never') {
        if (!this.mayRepair(w.id)) continue;
        this.drift(w.id, hostId, 'missing', { desired: w.desiredState, repair: 'create' });
        work.push(this.repaired(w.id, this.controller.recreate(w, `missing from host ${hostId}; creating it again`), 'create'));
      } else {
        this.drift(w.id, hostId, 'missing', { desired: w.desiredState, repair: 'none' });
        this.controller.note(w, { state: 'failed', message: `missing from host ${hostId}` });
      }
    }
    await Promise.all(work);
    this.log.debug({ host: hostId, pass: ++this.passes, listed_at: listedAt, source, copies: observed.length, repairs: work.length }, 'host reconciled');
    if (source === 'agent' && host.status === 'recovering' && this.hosts.get(hostId)?.status === 'recovering') {
      this.hosts.markReady(hostId);
      this.log.info({ host: hostId }, 'host reconciled after returning; schedulable again');
    }
  }

  private mayRepair(workloadId: string): boolean {
    return (this.repairBackoff.get(workloadId)?.notBeforeMs ?? 0) <= this.now();
  }

  /** Tracks a repair's outcome; failures back off exponentially, so a broken workload does not flood the event log. */
  private async repaired(workloadId: string, repair: Promise<void>, what: string): Promise<void> {
    try {
      await repair;
      this.repairBackoff.delete(workloadId);
    } catch (err) {
      // The host lost the copy between listing and repair (say, removed while it was stopping): create it again.
      const w = err instanceof NotFoundError ? this.controller.find(workloadId) : undefined;
      if (w && what !== 'create' && RUNS.has(w.desiredState)) {
        this.drift(w.id, w.hostId, 'missing', { desired: w.desiredState, repair: 'create' });
        return this.repaired(workloadId, this.controller.recreate(w, `missing from host ${w.hostId}; creating it again`), 'create');
      }
      const failures = (this.repairBackoff.get(workloadId)?.failures ?? 0) + 1;
      const delayMs = Math.min(MAX_REPAIR_BACKOFF_MS, this.settings.reconcileIntervalMs * 2 ** (failures - 1));
      this.repairBackoff.set(workloadId, { failures, notBeforeMs: this.now() + delayMs });
      this.log.warn({ workload: workloadId, failures, retryInMs: delayMs, err: errorMessage(err) }, `repair (${what}) failed`);
    }
  }

  /**
   * Why a copy of a workload now placed elsewhere (or waiting to be) must stay
   * for now: the other copy is not confirmed running, so deleting this one
   * could leave none. Undefined once it may go.
   */
  keepReason(w: Workload): string | undefined {
    if (!w.hostId) return 'its other copy is not placed yet';
    if (this.hosts.get(w.hostId)?.status === 'down') return `its other copy's host ${w.hostId} is down`;
    return RUNS.has(w.state) ? undefined : `its other copy on ${w.hostId} is ${w.state}, not confirmed running`;
  }

  private keepCopy(hostId: string, copy: ObservedCopy, why: string): void {
    const key = `${hostId}/${copy.workload_id}`;
    if (this.kept.has(key)) return;
    this.kept.add(key);
    this.drift(copy.workload_id, hostId, 'extra', { observed: copy.state, repair: 'none', detail: `kept: ${why}` });
    this.log.warn({ host: hostId, workload: copy.workload_id, why }, 'kept a copy its host should not run until the other copy runs');
  }

  /** Deletes a copy the host should not have. Throws when it cannot, so a recovering host stays unschedulable. */
  private async removeCopy(hostId: string, copy: ObservedCopy, w: Workload | undefined): Promise<void> {
    const why = !w ? 'unknown to the coordinator' : w.state === 'deleted' ? 'deleted' : `now placed on ${w.hostId || '(queue)'}`;
    this.drift(copy.workload_id, hostId, 'extra', { observed: copy.state, repair: 'delete', detail: why });
    const host = this.hosts.get(hostId);
    if (!host) return;
    await this.agents.for(host.id, host.telemetry.address).act('delete', commandId(copy.workload_id, 'delete', ''), copy.workload_id);
    this.kept.delete(`${hostId}/${copy.workload_id}`);
    this.log.warn({ host: hostId, workload: copy.workload_id, why }, 'removed a copy its host should not run');
  }

  private drift(workloadId: string, hostId: string, kind: DriftKind, details: Record<string, string>): void {
    this.events.emit(EVENT_TYPES.workloadDrift, workloadId, { id: workloadId, host_id: hostId, drift: kind, ...details });
  }
}

/**
 * The repair for one observed copy. `on-failure` restarts a copy that failed
 * or exited non-zero; `always` restarts any stopped copy; `never` accepts
 * what it sees.
 */
export function repairFor(desired: Workload['desiredState'], observed: Pick<pb.WorkloadStatus__Output, 'state' | 'exit_code'>, policy: RestartPolicy): Repair {
  const state = observed.state;
  if (desired === 'stopped') return state === 'running' || state === 'paused' ? { action: 'stop' } : { action: 'none' };
  if (desired !== 'running' && desired !== 'paused') return { action: 'none' };
  if (state === 'running') return desired === 'paused' ? { action: 'pause' } : { action: 'none' };
  if (state === 'paused') return desired === 'running' ? { action: 'resume' } : { action: 'none' };
  if (state !== 'stopped' && state !== 'failed') return { action: 'none' };
  const failed = state === 'failed' || (observed.exit_code !== undefined && observed.exit_code !== 0);
  if (policy === 'always' || (policy === 'on-failure' && failed)) return { action: 'start' };
  return { action: 'accept', reason: failed ? `failed; restart policy ${policy}` : `exited cleanly; restart policy ${policy}` };
}
