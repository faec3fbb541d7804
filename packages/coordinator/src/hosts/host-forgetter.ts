import { EVENT_TYPES, FailedPreconditionError, NotFoundError, type Logger } from '@virtfleet/shared';
import type { EventSink } from '../events/event-log.js';
import type { Workload } from '../workloads/workload.js';
import type { WorkloadController } from '../workloads/workload-controller.js';
import type { StateStore } from '../workloads/workload-store.js';
import type { Host } from './host.js';
import type { HostRegistry } from './host-registry.js';

export interface HostForgetterOptions {
  /** The coordinator's hosts.ttlMs: a host is down this long after it was last heard from. */
  ttlMs: number;
  /** hosts.forgetDownAfterMs: a host down this long and empty then is forgotten; 0: never. */
  forgetDownAfterMs: number;
}

/** Whatever else keeps something per host id, and forgets it with the host. */
export interface ForgetsHosts {
  forget(hostId: string): void;
}

/** Names of the workloads listed in a refusal, at most. */
const NAMED = 10;

/**
 * Forgets hosts that are gone for good: on an operator's word (`remove`,
 * `host rm`), or once a host has been down `forgetDownAfterMs` and holds no
 * workloads (deleted ones aside), checked by the leader. A forgotten host
 * leaves the registry, with its durable cordon and confirmed-dead marks and
 * whatever `others` keep per host (its drain record, the lease monitor's
 * memory, the agent client); an `io.virtfleet.host.forgotten` event says so,
 * and followers forget it on that event. One that reports again registers
 * again.
 *
 * Hosts this coordinator never heard from but that left durable marks (it
 * took the lead after they went silent) count as down from the take-over.
 */
export class HostForgetter {
  private timer: NodeJS.Timeout | undefined;
  private leaderSinceMs = 0;

  constructor(
    private readonly controller: Pick<WorkloadController, 'requireLeader' | 'isLeader' | 'workloadsOn'>,
    private readonly hosts: Pick<HostRegistry, 'get' | 'list' | 'forget'>,
    private readonly store: Pick<StateStore, 'hostsMarked' | 'setHostMark'>,
    private readonly others: { drains: ForgetsHosts & { hostIds(): string[] }; leases: ForgetsHosts; agents: ForgetsHosts },
    private readonly events: EventSink,
    private readonly options: HostForgetterOptions,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** On becoming leader: checks every quarter of forgetDownAfterMs, at least every 250 ms and at most every minute. */
  start(): void {
    this.stop();
    this.leaderSinceMs = this.now();
    if (this.options.forgetDownAfterMs === 0) return;
    this.timer = setInterval(() => this.sweep(), Math.min(60_000, Math.max(250, this.options.forgetDownAfterMs / 4)));
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Forgets a host on an operator's word; returns it as it was (undefined
   * for one only durable marks knew).
   * @throws NotFoundError for a host nothing knows
   * @throws FailedPreconditionError for a host that is not down, one that may not have reported since this coordinator took the lead, or one that holds workloads; nothing changes then
   */
  remove(hostId: string): Host | undefined {
    this.controller.requireLeader();
    const host = this.hosts.get(hostId);
    const residents = this.residents(hostId);
    if (!host && residents.length === 0 && !this.durableHostIds().has(hostId)) throw new NotFoundError('host', hostId);
    if (host && host.status !== 'down')
      throw new FailedPreconditionError(`host ${hostId} is ${host.status}: it reported ${Math.round((this.now() - host.lastSeenMs) / 1000)} s ago; only a host that is down can be removed (stop its agent first)`);
    if (!host) {
      const waitMs = this.leaderSinceMs + this.options.ttlMs - this.now();
      if (waitMs > 0) throw new FailedPreconditionError(`host ${hostId} may still report: this coordinator took the lead ${Math.round((this.now() - this.leaderSinceMs) / 1000)} s ago; try again in ${Math.ceil(waitMs / 1000)} s`);
    }
    if (residents.length > 0) {
      const named = residents.slice(0, NAMED).map((w) => `${w.spec.name} (${w.id}, ${w.state})`).join(', ');
      throw new FailedPreconditionError(
        `host ${hostId} holds ${residents.length} workload(s): ${named}${residents.length > NAMED ? `, and ${residents.length - NAMED} more` : ''}; move or delete them first`,
      );
    }
    return this.forget(hostId, 'operator', 'removed by an operator (host rm)');
  }

  /** One check: forgets the hosts down for forgetDownAfterMs that hold no workloads. Returns their ids. */
  sweep(): string[] {
    const after = this.options.forgetDownAfterMs;
    if (after === 0 || !this.controller.isLeader) return [];
    const now = this.now();
    const forgotten: string[] = [];
    const why = `down for ${formatMs(after)} with no workloads (hosts.forgetDownAfterMs)`;
    for (const h of this.hosts.list()) {
      if (h.status === 'down' && now - (h.lastSeenMs + this.options.ttlMs) >= after && this.residents(h.id).length === 0) {
        this.forget(h.id, 'leader', why);
        forgotten.push(h.id);
      }
    }
    if (now - (this.leaderSinceMs + this.options.ttlMs) >= after) {
      for (const id of this.durableHostIds()) {
        if (!this.hosts.get(id) && this.residents(id).length === 0) {
          this.forget(id, 'leader', why);
          forgotten.push(id);
        }
      }
    }
    return forgotten;
  }

  private forget(hostId: string, by: 'operator' | 'leader', reason: string): Host | undefined {
    const host = this.hosts.forget(hostId);
    for (const mark of ['cordon', 'dead'] as const) this.store.setHostMark(mark, hostId, false);
    this.others.drains.forget(hostId);
    this.others.leases.forget(hostId);
    this.others.agents.forget(hostId);
    this.events.emit(EVENT_TYPES.hostForgotten, hostId, { id: hostId, by, reason, last_seen: host ? new Date(host.lastSeenMs).toISOString() : '' });
    this.log.info({ host: hostId, by, reason }, 'host forgotten');
    return host;
  }

  /** Hosts with a durable mark or record. */
  private durableHostIds(): Set<string> {
    return new Set([...this.store.hostsMarked('cordon'), ...this.store.hostsMarked('dead'), ...this.others.drains.hostIds()]);
  }

  /** The host's workloads that are not deleted, in arrival order. */
  private residents(hostId: string): Workload[] {
    return this.controller
      .workloadsOn(hostId)
      .filter((w) => w.state !== 'deleted')
      .sort((a, b) => a.arrivalSeq - b.arrivalSeq);
  }
}

function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
