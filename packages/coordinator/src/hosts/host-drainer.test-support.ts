import { createLogger, FailedPreconditionError } from '@virtfleet/shared';
import type { AgentClientPool } from '../dispatch/agent-client.js';
import { recordingEventSink } from '../events/event-sink.test-support.js';
import { AdmissionQueue } from '../scheduler/admission-queue.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import { MemoryStateStore } from '../state/memory-state-store.test-support.js';
import type { Workload, WorkloadMigration } from '../workloads/workload.js';
import { WorkloadController } from '../workloads/workload-controller.js';
import type { MigrateRequest } from '../workloads/workload-migrator.js';
import { HostDrainer } from './host-drainer.js';
import { HostRegistry } from './host-registry.js';
import { testTelemetry } from './telemetry.test-support.js';

const log = createLogger('test', 'silent');

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the fake migrator does with a workload: refuse to start, or start and then move it (to a host) or fail, after `ms` or once `gate` opens. */
export type Plan = ({ refuse: string } | { to: string } | { fail: string }) & { ms?: number; gate?: Promise<void> };

/** Stands in for WorkloadMigrator: the same contract (a durable migration record, `ended`), its outcome scripted per workload. */
export class FakeMigrator {
  readonly calls: MigrateRequest[] = [];
  readonly startedIds: string[] = [];
  inFlight = 0;
  maxInFlight = 0;
  private readonly running = new Map<string, Promise<void>>();

  constructor(
    private readonly controller: WorkloadController,
    private readonly plan: (w: Workload) => Plan,
  ) {}

  async start(ref: string, request: MigrateRequest): Promise<Workload> {
    this.calls.push(request);
    const w = this.controller.get(ref);
    const p = this.plan(w);
    if ('refuse' in p) throw new FailedPreconditionError(p.refuse);
    const target = 'to' in p ? p.to : 'h2';
    const migration: WorkloadMigration = { id: `mig-${w.id}`, sourceHostId: w.hostId, targetHostId: target, mode: 'live', phase: 'preparing', startedAt: '', maxDowntimeMs: 0, bandwidthMiBs: 0, requestId: request.requestId };
    const { workload, stored } = this.controller.change(w, { migration, message: `migrating to ${target}` });
    await stored;
    this.startedIds.push(w.id);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const done = (async () => {
      await (p.gate ?? sleep(p.ms ?? 1));
      this.inFlight--;
      const now = this.controller.get(w.id);
      const patch = 'to' in p ? { hostId: p.to, message: `migrated from ${w.hostId} to ${p.to}` } : { message: `migration to ${target} failed: ${p.fail}; it runs on ${w.hostId}` };
      await this.controller.change(now, { ...patch, migration: undefined }).stored;
    })();
    this.running.set(w.id, done);
    return workload;
  }

  async ended(workloadId: string): Promise<void> {
    await this.running.get(workloadId);
  }
}

/** Controllers made by `harness`, to stop after each test. */
export const controllers: WorkloadController[] = [];

/**
 * A leading controller on an in-memory store, hosts h1-h3 up in a real registry (its clock at `advance`), the
 * given workloads stored, and a drainer over a FakeMigrator that follows `plan`. Stop `controllers` after each test.
 */
export async function harness(plan: (w: Workload) => Plan, workloads: Workload[] = [], store = new MemoryStateStore()) {
  let nowMs = Date.parse('2025-01-01T00:00:00Z');
  const { sink, events: recorded } = recordingEventSink();
  const registry = new HostRegistry(10_000, { onStatusChange: () => undefined, onTelemetry: () => undefined }, log, () => nowMs);
  for (const id of ['h1', 'h2', 'h3']) registry.ingest(`virtfleet.telemetry.${id}`, testTelemetry(id));
  const scheduler: Scheduler = { place: (r) => ({ workloadId: r.workloadId, summary: 'not used', candidates: [], hostsTotal: 0, hostsEvaluated: 0, rejections: {}, unresolvable: false, decidedAt: '' }) };
  const controller = new WorkloadController(store, registry, scheduler, new AdmissionQueue({ policy: 'fcfs', agingPerMinute: 0, backfill: true }), {} as AgentClientPool, sink, log);
  controllers.push(controller);
  for (const w of workloads) await store.insert(w);
  await controller.lead(3_600_000);
  const migrator = new FakeMigrator(controller, plan);
  const drainer = new HostDrainer(controller, registry, migrator, store, sink, log, { retryMs: 1, pollMs: 1, saveEveryMs: 5 }, () => nowMs);
  return {
    store,
    get events() {
      return recorded.map(({ type, subject, data }) => ({ type, subject, data }));
    },
    sink,
    registry,
    controller,
    migrator,
    drainer,
    advance: (ms: number) => (nowMs += ms),
  };
}

export type Harness = Awaited<ReturnType<typeof harness>>;
