import { afterEach, describe, expect, it } from 'vitest';
import { AbortedError, createLogger, EVENT_TYPES, FailedPreconditionError, NotFoundError, UnavailableError, type pb } from '@virtfleet/shared';
import type { AgentClientPool } from '../dispatch/agent-client.js';
import { recordingEventSink } from '../events/event-sink.test-support.js';
import type { Host } from '../hosts/host.js';
import type { HostRegistry } from '../hosts/host-registry.js';
import { AdmissionQueue } from '../scheduler/admission-queue.js';
import type { PlacementRecord, PlacementRequest, Scheduler } from '../scheduler/scheduler.js';
import { MemoryStateStore } from '../state/memory-state-store.test-support.js';
import type { Workload } from './workload.js';
import { WorkloadController } from './workload-controller.js';
import { MigrationLeftovers } from './migration-leftovers.js';
import { WorkloadMigrator, type MigrateRequest } from './workload-migrator.js';
import { testWorkload } from './workload.test-support.js';

const log = createLogger('test', 'silent');

/** How the fake agents behave; each host's calls are recorded in order. */
interface AgentScript {
  prepare?: () => Promise<void>;
  migrate?: (report: (p: Partial<pb.MigrationProgress__Output>) => void) => Promise<void>;
  /** The source's answer to `get` during recovery: the workload is still there, or gone. */
  sourceHolds?: boolean;
  /** How many aborts the source accepts (a migration still running) before saying none runs. */
  runningAborts?: number;
  /** Cold: what an agent answers to a lifecycle command (default: success). */
  act?: (hostId: string, action: string) => Promise<pb.WorkloadStatus__Output>;
  /** Cold: runs in the middle of the export (to cancel it there). */
  export?: () => Promise<void>;
  importFails?: boolean;
  /** What the target's agent answers to `get`: a state, or absent (NOT_FOUND). */
  onTarget?: string;
}

function harness(script: AgentScript = {}, hostIds = ['h1', 'h2', 'h3'], placeOn: string | null = 'h2') {
  const store = new MemoryStateStore();
  const calls: string[] = [];
  const hosts = new Map(hostIds.map((id) => [id, { id, status: 'up', telemetry: { address: `127.0.0.1:${id}` } } as unknown as Host]));
  const registry = { get: (id: string) => hosts.get(id), list: () => [], restoreCordons: () => undefined } as unknown as HostRegistry;
  let abortsLeft = script.runningAborts ?? 0;
  const agents = {
    for: (hostId: string) => ({
      prepareIncoming: async (commandId: string, workloadId: string) => {
        calls.push(`${hostId} prepare ${commandId} ${workloadId} migration=${store.get(workloadId)?.migration?.phase ?? 'none'}`);
        await script.prepare?.();
        return { host_id: hostId, hypervisor_uri: `qemu+tcp://${hostId}/system`, transfer_uri: `tcp://${hostId}`, files: [], backend_name: `virtfleet-${hostId}.${workloadId}` };
      },
      migrate: async function* (commandId: string, workloadId: string, target: pb.IncomingMigration__Output) {
        calls.push(`${hostId} migrate ${commandId} ${workloadId} to ${target.host_id} phase=${store.get(workloadId)?.migration?.phase ?? 'none'}`);
        const reports: pb.MigrationProgress__Output[] = [];
        await script.migrate?.((p) =>
          reports.push({ phase: 'transferring', data_total_bytes: 100, data_processed_bytes: 50, data_remaining_bytes: 50, bytes_per_second: 10, downtime_ms: 30, elapsed_ms: '1', ...p } as pb.MigrationProgress__Output),
        );
        yield* reports;
      },
      discardIncoming: (workloadId: string) => {
        calls.push(`${hostId} discard ${workloadId}`);
        return Promise.resolve();
      },
      abortMigration: (workloadId: string) => {
        calls.push(`${hostId} abort ${workloadId}`);
        if (abortsLeft-- > 0) return Promise.resolve();
        return Promise.reject(script.sourceHolds ? new FailedPreconditionError(`${workloadId} is not migrating`) : new NotFoundError('workload', workloadId));
      },
      get: (workloadId: string) => {
        calls.push(`${hostId} get ${workloadId}`);
        if (hostId === 'h2' && script.onTarget) return script.onTarget === 'absent' ? Promise.reject(new NotFoundError('workload', workloadId)) : Promise.resolve({ workload_id: workloadId, state: script.onTarget });
        return script.sourceHolds ? Promise.resolve({ workload_id: workloadId, state: 'running' }) : Promise.reject(new NotFoundError('workload', workloadId));
      },
      act: (action: string, commandId: string, workloadId: string) => {
        calls.push(`${hostId} ${action} ${commandId} ${workloadId}`);
        if (script.act) return script.act(hostId, action);
        return Promise.resolve({ workload_id: workloadId, state: action === 'stop' ? 'stopped' : action === 'delete' ? 'deleted' : 'running', driver_ref: `${hostId}-ref`, message: '' });
      },
      exportState: async function* (workloadId: string, signal: AbortSignal) {
        calls.push(`${hostId} export ${workloadId}`);
        yield { file: { role: 'image', size_bytes: 4 } };
        yield { data: Buffer.from('ab') };
        await script.export?.();
        // As the real client: an aborted call ends the stream with an error.
        if (signal.aborted) throw new Error('CANCELLED: call cancelled');
        yield { data: Buffer.from('cd') };
        yield { file_end: { sha256: 'x' } };
      },
      importState: async (header: pb.WorkloadStateHeader, chunks: AsyncIterable<pb.WorkloadStateChunk>) => {
        let bytes = 0;
        for await (const c of chunks) bytes += c.data?.length ?? 0;
        calls.push(`${hostId} import ${header.command_id} ${header.workload_id} bytes=${bytes}`);
        if (script.importFails) throw new UnavailableError('disk full');
        return { workload_id: header.workload_id, state: 'stopped', driver_ref: `${hostId}-ref`, message: '' };
      },
      create: (commandId: string, workloadId: string) => {
        calls.push(`${hostId} create ${commandId} ${workloadId}`);
        return Promise.resolve({ workload_id: workloadId, state: 'running', driver_ref: 'uuid-1', message: '' });
      },
    }),
  } as unknown as AgentClientPool;
  const { sink, events: recorded } = recordingEventSink();
  const placed: PlacementRequest[] = [];
  const scheduler: Scheduler = {
    place: (request, snapshots): PlacementRecord => {
      placed.push(request);
      return { workloadId: request.workloadId, hostId: placeOn ?? undefined, summary: placeOn ? `placed on ${placeOn}` : 'no host fits', candidates: [], hostsTotal: snapshots.length, hostsEvaluated: 0, rejections: {}, unresolvable: false, decidedAt: '' };
    },
  };
  const controller = new WorkloadController(store, registry, scheduler, new AdmissionQueue({ policy: 'fcfs', agingPerMinute: 0, backfill: true }), agents, sink, log);
  controllers.push(controller);
  const leftovers = new MigrationLeftovers(
    { store, isLeader: () => controller.isLeader, workload: (id) => controller.find(id), host: (id) => hosts.get(id), removeFiles: (host, id) => agents.for(host.id, '').discardIncoming(id) },
    log,
  );
  const migrator = new WorkloadMigrator(controller, registry, agents, sink, leftovers, log);
  return {
    store,
    calls,
    get events() {
      return recorded.map(({ type, data }) => ({ type, data }));
    },
    controller,
    migrator,
    placed,
    hosts,
    leftovers,
  };
}

const controllers: WorkloadController[] = [];
afterEach(async () => {
  for (const c of controllers.splice(0)) await c.stop();
});

const vm = (overrides: Partial<Workload> = {}) =>
  testWorkload('vm1', { hostId: 'h1', state: 'running', desiredState: 'running', driverRef: 'uuid-1', ...overrides }, { kind: 'vm', image: '/images/vm.qcow2' });
const request = (overrides: Partial<MigrateRequest> = {}): MigrateRequest => ({ requestId: 'r1', targetHostId: '', mode: 'auto', maxDowntimeMs: 0, bandwidthMiBs: 0, ...overrides });

async function leading(h: ReturnType<typeof harness>, ...workloads: Workload[]) {
  for (const w of workloads) await h.store.insert(w);
  await h.controller.lead(3_600_000);
}

describe('WorkloadMigrator', () => {
  it('moves a running VM: the record is durable before the target prepares, then the source migrates, then the target takes it over', async () => {
    const h = harness({ migrate: async (report) => report({}) });
    await leading(h, vm());
    const started = await h.migrator.start('vm1', request());
    expect(started.migration).toMatchObject({ sourceHostId: 'h1', targetHostId: 'h2', phase: 'preparing', mode: 'live' });
    expect(h.store.get('vm1')?.migration?.targetHostId).toBe('h2');
    expect(h.placed[0]?.avoidHosts).toEqual(['h1']);
    await h.migrator.idle();
    const id = started.migration!.id;
    expect(h.calls).toEqual([`h2 prepare ${id}.prepare vm1 migration=preparing`, `h1 migrate ${id}.migrate vm1 to h2 phase=transferring`, 'h2 create vm1.create.1 vm1', 'h1 discard vm1']);
    const moved = h.store.get('vm1')!;
    expect([moved.hostId, moved.state, moved.generation, moved.migration, moved.message]).toEqual(['h2', 'running', 1, undefined, 'migrated from h1 to h2']);
    expect(h.events.map((e) => e.type)).toEqual([
      EVENT_TYPES.workloadMigrationStarted,
      EVENT_TYPES.workloadMigrationProgress,
      EVENT_TYPES.workloadMigrationCompleted,
    ]);
    expect(h.events[1]?.data).toMatchObject({ data_total_bytes: 100, data_processed_bytes: 50, expected_downtime_ms: 30 });
    expect(h.controller.isBusy('vm1')).toBe(false);
  });

  it('repeats the answer for the same request id while the migration runs, and starts nothing new', async () => {
    let release = () => undefined as void;
    const h = harness({ migrate: () => new Promise<void>((r) => (release = r)) });
    await leading(h, vm());
    const first = await h.migrator.start('vm1', request());
    await new Promise((r) => setTimeout(r, 20));
    const again = await h.migrator.start('vm1', request());
    expect(again.migration?.id).toBe(first.migration?.id);
    release();
    await h.migrator.idle();
    expect(h.calls.filter((c) => c.includes('prepare'))).toHaveLength(1);
  });

  it.each([
    ['the target cannot prepare', { prepare: () => Promise.reject(new UnavailableError('no room')) }, ['h2 prepare'], false],
    ['the migration fails', { sourceHolds: true, migrate: () => Promise.reject(new UnavailableError('connection reset')) }, ['h2 prepare', 'h1 migrate', 'h1 abort', 'h1 get', 'h2 discard'], false],
    ['the migration is cancelled', { sourceHolds: true, migrate: () => Promise.reject(new AbortedError('aborted')) }, ['h2 prepare', 'h1 migrate', 'h1 abort', 'h1 get', 'h2 discard'], true],
    [
      'the source agent is lost mid-way and libvirt aborts the move once asked',
      { sourceHolds: true, runningAborts: 1, migrate: () => Promise.reject(new UnavailableError('host h1: cannot reach its agent')) },
      ['h2 prepare', 'h1 migrate', 'h1 abort', 'h1 abort', 'h1 get', 'h2 discard'],
      false,
    ],
  ])('leaves the VM running where it was when %s, and the target holds nothing', async (_name, script, calls, cancelled) => {
    const h = harness(script);
    await leading(h, vm());
    await h.migrator.start('vm1', request());
    await h.migrator.idle();
    expect(h.calls.map((c) => c.split(' ').slice(0, 2).join(' '))).toEqual(calls);
    const w = h.store.get('vm1')!;
    expect([w.hostId, w.state, w.migration, w.generation]).toEqual(['h1', 'running', undefined, undefined]);
    expect(w.message).toMatch(cancelled ? /migration to h2 cancelled; it runs on h1/ : /migration to h2 failed: .*; it runs on h1/);
    expect(h.events.at(-1)).toMatchObject({ type: EVENT_TYPES.workloadMigrationFailed, data: { cancelled } });
  });

  it("records the target's files as leftovers when the target is down as the move fails, and removes them once it is back", async () => {
    const hostsSeen: Map<string, Host>[] = [];
    const h = harness({
      sourceHolds: true,
      migrate: () => {
        hostsSeen[0]!.get('h2')!.status = 'down';
        return Promise.reject(new UnavailableError('connection reset'));
      },
    });
    hostsSeen.push(h.hosts);
    await leading(h, vm());
    await h.migrator.start('vm1', request());
    await h.migrator.idle();
    expect(short(h.calls)).toEqual(['h2 prepare', 'h1 migrate', 'h1 abort', 'h1 get']);
    expect(h.leftovers.list()).toMatchObject([{ hostId: 'h2', workloadId: 'vm1' }]);
    await h.leftovers.sweep();
    expect(h.leftovers.list()).toHaveLength(1);
    h.hosts.get('h2')!.status = 'up';
    await h.leftovers.sweep();
    expect([short(h.calls).at(-1), h.leftovers.list()]).toEqual(['h2 discard', []]);
  });

  it.each([
    ['the VM is not on the target: the move is given up, its files removed there, and failover takes the VM', 'absent', ['h2 prepare', 'h1 migrate', 'h2 get', 'h2 discard'], 'h1'],
    ['the VM runs on the target: the move finished, and the target takes it over', 'running', ['h2 prepare', 'h1 migrate', 'h2 get', 'h2 create'], 'h2'],
    ['the VM arrived paused on the target (it moved paused): the move finished, and the target takes it over', 'paused', ['h2 prepare', 'h1 migrate', 'h2 get', 'h2 create'], 'h2'],
  ])('settles a live migration whose source host went down without asking it: %s', async (_name, onTarget, calls, endsOn) => {
    const hostsSeen: Map<string, Host>[] = [];
    const h = harness({
      onTarget,
      migrate: () => {
        hostsSeen[0]!.get('h1')!.status = 'down';
        return Promise.reject(new UnavailableError('host h1: cannot reach its agent'));
      },
    });
    hostsSeen.push(h.hosts);
    await leading(h, vm());
    await h.migrator.start('vm1', request());
    await h.migrator.idle();
    expect(short(h.calls)).toEqual(calls);
    const w = h.store.get('vm1')!;
    expect([w.hostId, w.migration]).toEqual([endsOn, undefined]);
    // The source's files wait for it as leftovers when the VM moved.
    expect(h.leftovers.list().map((l) => l.hostId)).toEqual(endsOn === 'h2' ? ['h1'] : []);
  });

  it('hands the VM to the target when the source agent was lost mid-way but libvirt finished the move', async () => {
    const h = harness({ sourceHolds: false, migrate: () => Promise.reject(new UnavailableError('host h1: cannot reach its agent')) });
    await leading(h, vm());
    await h.migrator.start('vm1', request());
    await h.migrator.idle();
    expect(h.calls.map((c) => c.split(' ').slice(0, 2).join(' '))).toEqual(['h2 prepare', 'h1 migrate', 'h1 abort', 'h1 get', 'h2 create', 'h1 discard']);
    const w = h.store.get('vm1')!;
    expect([w.hostId, w.state, w.migration]).toEqual(['h2', 'running', undefined]);
    expect(h.events.at(-1)?.type).toBe(EVENT_TYPES.workloadMigrationCompleted);
  });

  const container = (overrides: Partial<Workload> = {}) => testWorkload('c1', { hostId: 'h1', state: 'running', desiredState: 'running', driverRef: 'ref', ...overrides });
  const short = (calls: string[]) => calls.map((c) => c.split(' ').slice(0, 2).join(' '));

  it('moves a container cold: stopped, its state relayed from the source to the target, owned by the target, started there, removed from the source', async () => {
    const h = harness();
    await leading(h, container());
    const started = await h.migrator.start('c1', request());
    expect(started.migration).toMatchObject({ mode: 'cold', phase: 'stopping', wasRunning: true, targetHostId: 'h2' });
    await h.migrator.idle();
    const id = started.migration!.id;
    expect(h.calls).toEqual([`h1 stop ${id}.stop c1`, 'h1 export c1', `h2 import ${id}.import c1 bytes=4`, `h2 start ${id}.start c1`, `h1 delete ${id}.cleanup c1`]);
    const w = h.store.get('c1')!;
    expect([w.hostId, w.state, w.driverRef, w.generation, w.migration, w.message]).toEqual(['h2', 'running', 'h2-ref', 1, undefined, 'migrated cold from h1 to h2']);
    expect(h.events.at(-1)).toMatchObject({ type: EVENT_TYPES.workloadMigrationCompleted, data: { mode: 'cold' } });
  });

  it('moves a stopped container cold without starting it anywhere', async () => {
    const h = harness();
    await leading(h, container({ state: 'stopped', desiredState: 'stopped' }));
    await h.migrator.start('c1', request());
    await h.migrator.idle();
    expect(short(h.calls)).toEqual(['h1 export', 'h2 import', 'h1 delete']);
    expect([h.store.get('c1')?.hostId, h.store.get('c1')?.state]).toEqual(['h2', 'stopped']);
  });

  it.each([
    ['the target refuses the import', { importFails: true }, /failed: disk full/],
    ['the stop fails', { act: (host: string, action: string) => (action === 'stop' ? Promise.reject(new UnavailableError('agent gone')) : Promise.resolve({ workload_id: 'c1', state: 'running', driver_ref: 'r', message: '' } as pb.WorkloadStatus__Output)) }, /failed: agent gone/],
  ])('puts a cold migration back when %s: the target copy removed, the source started again', async (_name, script, message) => {
    const h = harness(script as AgentScript);
    await leading(h, container());
    await h.migrator.start('c1', request());
    await h.migrator.idle();
    expect(short(h.calls).slice(-2)).toEqual(['h2 delete', 'h1 start']);
    const w = h.store.get('c1')!;
    expect([w.hostId, w.state, w.migration]).toEqual(['h1', 'running', undefined]);
    expect(w.message).toMatch(message);
  });

  it('cancels a cold migration while it transfers: the import is called off and the container runs on the source again', async () => {
    let cancel = (): Promise<void> => Promise.resolve();
    const h = harness({ export: () => cancel() });
    cancel = async () => {
      await h.migrator.cancel('c1');
      await new Promise((r) => setTimeout(r, 10));
    };
    await leading(h, container());
    await h.migrator.start('c1', request());
    await h.migrator.idle();
    const w = h.store.get('c1')!;
    expect([w.hostId, w.state, w.migration]).toEqual(['h1', 'running', undefined]);
    expect(w.message).toBe('migration to h2 cancelled; it runs on h1');
    expect(h.events.at(-1)).toMatchObject({ type: EVENT_TYPES.workloadMigrationFailed, data: { cancelled: true } });
  });

  it.each([
    ['before ownership moved: the target copy goes and the source starts again', 'h1', ['h2 delete', 'h2 delete', 'h1 start'], 'h1'],
    ['after ownership moved: started on the target, removed from the source', 'h2', ['h2 start', 'h1 delete'], 'h2'],
  ])('settles a cold migration a previous leader left %s', async (_name, hostId, calls, hostAfter) => {
    const h = harness();
    const m = { id: 'm0', sourceHostId: 'h1', targetHostId: 'h2', mode: 'cold' as const, phase: 'transferring' as const, wasRunning: true, startedAt: '', maxDowntimeMs: 0, bandwidthMiBs: 0, requestId: '' };
    await leading(h, container({ hostId, state: 'stopped', migration: m }));
    h.migrator.recoverInterrupted();
    await h.migrator.idle();
    expect(short(h.calls)).toEqual(calls);
    expect([h.store.get('c1')?.hostId, h.store.get('c1')?.migration]).toEqual([hostAfter, undefined]);
  });

  it.each([
    ['a container asked to move live', vm({ spec: testWorkload('c', {}, {}).spec }), request({ mode: 'live' }), /containers migrate cold/],
    ['a stopped VM, live', vm({ state: 'stopped', desiredState: 'stopped' }), request(), /is stopped; only running, paused workloads migrate live/],
    ['a VM being deleted', vm({ desiredState: 'deleted' }), request(), /only running, paused workloads migrate live/],
    ['a pending container, cold', vm({ spec: testWorkload('c', {}, {}).spec, state: 'pending', hostId: '' }), request(), /is pending; only running, paused, stopped workloads migrate cold/],
    ['a VM migrating already', vm({ migration: { id: 'm0', sourceHostId: 'h1', targetHostId: 'h3', mode: 'live', phase: 'transferring', startedAt: '', maxDowntimeMs: 0, bandwidthMiBs: 0, requestId: 'other' } }), request(), /already migrating to h3/],
    ['an unknown mode', vm(), request({ mode: 'warp' }), /mode: must be live, cold or auto/],
    ['its own host as target', vm(), request({ targetHostId: 'h1' }), /target_host_id: is the host workload vm1 already runs on/],
    ['an unknown target', vm(), request({ targetHostId: 'h9' }), /host h9 not found|h9/],
  ])('refuses %s and changes nothing', async (_name, w, req, message) => {
    const h = harness();
    await leading(h, w);
    const before = JSON.stringify(h.store.get(w.id));
    await expect(h.migrator.start(w.id, req)).rejects.toThrow(message);
    expect(JSON.stringify(h.store.get(w.id))).toBe(before);
    expect([h.calls, h.events]).toEqual([[], []]);
  });

  it('refuses when no other host can take the VM, naming why, and changes nothing', async () => {
    const h = harness({}, ['h1', 'h2'], null);
    await leading(h, vm());
    const before = JSON.stringify(h.store.get('vm1'));
    await expect(h.migrator.start('vm1', request())).rejects.toThrow(/no host can take workload vm1: no host fits/);
    expect(JSON.stringify(h.store.get('vm1'))).toBe(before);
  });

  it('considers only the named target', async () => {
    const h = harness({ migrate: async () => undefined }, ['h1', 'h2', 'h3'], 'h3');
    await leading(h, vm());
    const started = await h.migrator.start('vm1', request({ targetHostId: 'h3' }));
    expect(started.migration?.targetHostId).toBe('h3');
    await h.migrator.idle();
  });

  it.each([
    ['the source still holds it: the target discards its files and the VM stays', true, 'h1', ['h1 abort', 'h1 abort', 'h1 get', 'h2 discard']],
    ['the source no longer holds it: the move finished, and the target takes it over', false, 'h2', ['h1 abort', 'h1 abort', 'h1 get', 'h2 create', 'h1 discard']],
  ])('settles a migration a previous leader left: %s', async (_name, sourceHolds, hostAfter, calls) => {
    const h = harness({ sourceHolds, runningAborts: 1 });
    const m = { id: 'm0', sourceHostId: 'h1', targetHostId: 'h2', mode: 'live' as const, phase: 'transferring' as const, startedAt: '', maxDowntimeMs: 0, bandwidthMiBs: 0, requestId: '' };
    await leading(h, vm({ migration: m }));
    h.migrator.recoverInterrupted();
    await new Promise((r) => setTimeout(r, 1100));
    await h.migrator.idle();
    expect(h.calls.map((c) => c.split(' ').slice(0, 2).join(' '))).toEqual(calls);
    const w = h.store.get('vm1')!;
    expect([w.hostId, w.migration]).toEqual([hostAfter, undefined]);
  });
});
