import {
  heartbeatSchema,
  HEARTBEAT_WILDCARD,
  NotFoundError,
  telemetrySchema,
  heartbeatSubject,
  telemetrySubject,
  TELEMETRY_KIND_HEADER,
  TELEMETRY_WILDCARD,
  WorkloadView,
  type DriverInfo,
  type Logger,
  type Msg,
  type NatsConnection,
  type Subscription,
  type WorkloadTelemetry,
} from '@virtfleet/shared';
import type { Host, HostStatus } from './host.js';
import { IngestLag } from './ingest-lag.js';

/** The longest the registry applies telemetry before letting the event loop turn. */
const TELEMETRY_SLICE_MS = 20;

/** Deltas queued per host, at most, while the registry is behind; beyond that the oldest is dropped (the host's view waits for its next full list). */
const MAX_QUEUED_PER_HOST = 64;

/** How often the registry logs its telemetry ingest lag ('telemetry ingest', info). */
export const INGEST_REPORT_MS = 10_000;

export interface HostRegistryEvents {
  /** A host went up (first telemetry, or ready again), recovering (back after being down) or down (silent past the TTL). */
  onStatusChange(host: Host, previous: HostStatus | undefined): void;
  /** Every accepted telemetry message, after the host's record was updated, with the workloads it carries (all of them, or the changes of a delta). */
  onTelemetry(host: Host, reported: readonly WorkloadTelemetry[]): void;
  /** A driver of a reporting host turned unhealthy or healthy again (a first report counts when unhealthy). The host's status does not change. */
  onDriverHealthChange?(host: Host, driver: DriverInfo): void;
}

/**
 * Tracks hosts from their heartbeats and telemetry. A host is known from its
 * first telemetry; it is `up` while heartbeats (or telemetry) keep arriving
 * and `down` once neither has for `ttlMs`. The agent sends heartbeats from a
 * timer that never waits on its engines, so a stalled Docker or libvirtd
 * makes a driver unhealthy, never the host down. A host that was down comes
 * back (as `recovering`) through telemetry only, which carries what it runs.
 * Messages that fail validation are counted and dropped; they never change
 * state. Under overload a host's queued telemetry is dropped when a full
 * workload list from it arrives (`superseded`), so the registry falls behind
 * by at most one full list and the deltas after it per host.
 */
export class HostRegistry {
  private readonly hosts = new Map<string, Host>();
  private readonly cordonedIds = new Set<string>();
  /** Hosts forgotten while this registry ran: one that reports again comes back `recovering`, so its copies are checked before it takes work. */
  private readonly forgotten = new Set<string>();
  private sweeper: NodeJS.Timeout | undefined;
  private reporter: NodeJS.Timeout | undefined;
  /** Every applied message's lag since the last report. */
  readonly ingestLag = new IngestLag();
  private subscription: Subscription | undefined;
  private heartbeats: Subscription | undefined;
  /** Telemetry messages dropped because they failed validation. */
  rejected = 0;
  /** Telemetry received and not yet applied, per subject: the newest full list (if any) and the deltas after it, oldest first. */
  private readonly pendingTelemetry = new Map<string, Msg[]>();
  /** When the newest of each subject's pending messages arrived: a host whose telemetry waits here is alive, however far behind the registry is. */
  private readonly pendingArrivedMs = new Map<string, number>();
  private drainScheduled: NodeJS.Immediate | undefined;
  /** Telemetry messages dropped unapplied for a newer full list from the same host (or a full queue). */
  superseded = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly events: HostRegistryEvents,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    /** Weight of the newest sample in the smoothed CPU utilisation. @default 0.3 */
    private readonly smoothing = 0.3,
  ) {}

  /** Subscribes to every host's telemetry and starts the TTL sweep. */
  start(nc: NatsConnection): void {
    const json = (msg: Msg): { ok: true; body: unknown } | { ok: false } => {
      try {
        return { ok: true, body: msg.json() };
      } catch {
        this.reject(msg.subject, 'not JSON');
        return { ok: false };
      }
    };
    // Telemetry is applied in slices between turns of the event loop: when messages come faster than they
    // can be applied, a host's full workload list replaces what is queued from it (the header says which
    // messages are full, so nothing is parsed to drop it), and timers (the leader lease's renewal among
    // them) still run between slices.
    const drain = () => {
      this.drainScheduled = undefined;
      const until = performance.now() + TELEMETRY_SLICE_MS;
      for (const [subject, queued] of this.pendingTelemetry) {
        this.pendingTelemetry.delete(subject);
        this.pendingArrivedMs.delete(subject);
        for (const msg of queued) {
          const parsed = json(msg);
          if (parsed.ok) this.ingest(subject, parsed.body);
        }
        if (performance.now() >= until) break;
      }
      if (this.pendingTelemetry.size > 0) this.drainScheduled = setImmediate(drain);
    };
    this.subscription = nc.subscribe(TELEMETRY_WILDCARD, {
      callback: (err, msg) => {
        if (err) return;
        this.pendingArrivedMs.set(msg.subject, this.now());
        const queued = this.pendingTelemetry.get(msg.subject);
        if (!queued) this.pendingTelemetry.set(msg.subject, [msg]);
        else if (msg.headers?.get(TELEMETRY_KIND_HEADER) !== 'delta') {
          this.superseded += queued.length;
          this.pendingTelemetry.set(msg.subject, [msg]);
        } else {
          queued.push(msg);
          if (queued.length > MAX_QUEUED_PER_HOST) {
            queued.shift();
            this.superseded++;
          }
        }
        this.drainScheduled ??= setImmediate(drain);
      },
    });
    this.heartbeats = nc.subscribe(HEARTBEAT_WILDCARD, {
      callback: (err, msg) => {
        if (err) return;
        const parsed = json(msg);
        if (parsed.ok) this.ingestHeartbeat(msg.subject, parsed.body);
      },
    });
    this.sweeper = setInterval(() => this.sweep(), Math.max(100, Math.min(1000, this.ttlMs / 4)));
    this.reporter = setInterval(() => {
      const report = this.ingestLag.take();
      if (report) this.log.info({ hosts: this.hosts.size, ...report, superseded: this.superseded, periodMs: INGEST_REPORT_MS }, 'telemetry ingest');
    }, INGEST_REPORT_MS);
  }

  stop(): void {
    clearImmediate(this.drainScheduled);
    this.drainScheduled = undefined;
    this.pendingTelemetry.clear();
    this.pendingArrivedMs.clear();
    clearInterval(this.sweeper);
    clearInterval(this.reporter);
    this.subscription?.unsubscribe();
    this.heartbeats?.unsubscribe();
  }

  /**
   * Validates and applies one heartbeat: a host that is reporting stays up.
   * Heartbeats of unknown or down hosts change nothing (they come back
   * through telemetry). Returns false when it was dropped as invalid.
   */
  ingestHeartbeat(subject: string, body: unknown): boolean {
    const parsed = heartbeatSchema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      this.reject(subject, `heartbeat ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
      return false;
    }
    const beat = parsed.data;
    // Exactly its own subject: with per-host NATS permissions, the subject is what proves who sent it.
    if (subject !== heartbeatSubject(beat.host_id)) {
      this.reject(subject, `heartbeat host_id ${beat.host_id} does not match the subject`);
      return false;
    }
    const host = this.hosts.get(beat.host_id);
    if (!host || host.status === 'down') return true;
    host.lastSeenMs = this.now();
    host.lastHeartbeat = { bootId: beat.boot_id, seq: beat.seq, time: beat.time, receivedMs: host.lastSeenMs };
    return true;
  }

  /** Validates and applies one telemetry message. Returns false when it was dropped. */
  ingest(subject: string, body: unknown): boolean {
    const parsed = telemetrySchema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      this.reject(subject, `${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
      return false;
    }
    const telemetry = parsed.data;
    if (subject !== telemetrySubject(telemetry.host_id)) {
      this.reject(subject, `host_id ${telemetry.host_id} does not match the subject`);
      return false;
    }
    const previous = this.hosts.get(telemetry.host_id);
    const sample = telemetry.host.cpu_utilisation;
    const smoothed = previous ? this.smoothing * sample + (1 - this.smoothing) * previous.cpuUtilisationSmoothed : sample;
    // A host that was down may still run copies placed elsewhere since: it waits in `recovering` for markReady.
    const status = (previous && previous.status !== 'up') || (!previous && this.forgotten.delete(telemetry.host_id)) ? 'recovering' : 'up';
    const now = this.now();
    if (telemetry.published_at) this.ingestLag.record(now - Date.parse(telemetry.published_at));
    const workloads = previous?.workloads ?? new WorkloadView();
    const reported = workloads.apply(telemetry);
    const host: Host = {
      id: telemetry.host_id,
      status,
      lastSeenMs: now,
      telemetry,
      workloads,
      telemetryAppliedMs: now,
      cpuUtilisationSmoothed: smoothed,
      cordoned: this.cordonedIds.has(telemetry.host_id),
    };
    if (previous?.lastHeartbeat) host.lastHeartbeat = previous.lastHeartbeat;
    this.hosts.set(host.id, host);
    if (previous?.status !== status) this.events.onStatusChange(host, previous?.status);
    for (const driver of telemetry.drivers) {
      const before = previous?.telemetry.drivers.find((d) => d.name === driver.name);
      if (before ? before.healthy !== driver.healthy : !driver.healthy) this.events.onDriverHealthChange?.(host, driver);
    }
    this.events.onTelemetry(host, reported);
    return true;
  }

  /** Marks hosts down whose last sign of life (applied, or telemetry still waiting to be) is older than the TTL. */
  sweep(): void {
    const now = this.now();
    for (const host of this.hosts.values()) {
      if (host.status === 'down' || now - host.lastSeenMs <= this.ttlMs) continue;
      const waiting = this.pendingArrivedMs.get(telemetrySubject(host.id));
      if (waiting !== undefined && now - waiting <= this.ttlMs) continue;
      const previous = host.status;
      host.status = 'down';
      this.events.onStatusChange(host, previous);
    }
  }

  /** A recovering host is clean again: it becomes `up` and schedulable. */
  markReady(id: string): void {
    const host = this.hosts.get(id);
    if (host?.status !== 'recovering') return;
    host.status = 'up';
    this.events.onStatusChange(host, 'recovering');
  }

  /**
   * Cordons or uncordons a known host. Returns false when nothing changed.
   * @throws NotFoundError for a host that never reported.
   */
  setCordoned(id: string, cordoned: boolean): boolean {
    const host = this.hosts.get(id);
    if (!host) throw new NotFoundError('host', id);
    if (host.cordoned === cordoned) return false;
    host.cordoned = cordoned;
    if (cordoned) this.cordonedIds.add(id);
    else this.cordonedIds.delete(id);
    return true;
  }

  /** Sets the cordoned hosts to exactly `ids`, from stored state, including hosts that have not reported yet. */
  restoreCordons(ids: Iterable<string>): void {
    this.cordonedIds.clear();
    for (const id of ids) this.cordonedIds.add(id);
    for (const host of this.hosts.values()) host.cordoned = this.cordonedIds.has(host.id);
  }

  get(id: string): Host | undefined {
    return this.hosts.get(id);
  }

  /**
   * Drops a host (removed by an operator, or down and empty for long) with
   * its cordon: it leaves `list`. If it reports again it registers again, as
   * `recovering`. Returns the host as it was; undefined for an unknown one.
   */
  forget(id: string): Host | undefined {
    const host = this.hosts.get(id);
    this.hosts.delete(id);
    this.cordonedIds.delete(id);
    if (host) this.forgotten.add(id);
    return host;
  }

  list(): Host[] {
    return [...this.hosts.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  private reject(subject: string, reason: string): void {
    this.rejected++;
    this.log.warn({ subject, reason }, 'dropped invalid telemetry');
  }
}
