import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, DataLossError, EVENT_TYPES, type pb } from '@virtfleet/shared';
import type { AgentClientPool } from '../dispatch/agent-client.js';
import { recordingEventSink } from '../events/event-sink.test-support.js';
import type { Host } from '../hosts/host.js';
import type { HostRegistry } from '../hosts/host-registry.js';
import { AdmissionQueue } from '../scheduler/admission-queue.js';
import type { PlacementRecord, Scheduler } from '../scheduler/scheduler.js';
import { MemoryStateStore } from '../state/memory-state-store.test-support.js';
import type { Workload } from '../workloads/workload.js';
import { WorkloadController } from '../workloads/workload-controller.js';
import { testWorkload } from '../workloads/workload.test-support.js';
import type { BackupManifest, BackupRepository } from './backup-repository.js';
import { BackupService } from './backup-service.js';

const log = createLogger('test', 'silent');
const controllers: WorkloadController[] = [];
afterEach(async () => {
  for (const c of controllers.splice(0)) await c.stop();
});

const manifest = (id: string, w: Workload): BackupManifest => ({
  id,
  workload_id: w.id,
  workload_name: w.spec.name,
  kind: w.spec.kind,
  spec: w.spec,
  created_at: '2026-12-03T00:00:00.000Z',
  memory: false,
  files: [{ role: 'image', size_bytes: 2, sha256: 'x', chunks: ['y'] }],
  size_bytes: 2,
  stored_bytes: 2,
});

/** A leading controller, hosts h1 (up) and h2 (as given), an agent per host that records calls, and a repository of one backup. */
async function harness(options: { h1Status?: Host['status']; importFails?: boolean; placeOn?: string } = {}) {
  const store = new MemoryStateStore();
  const calls: string[] = [];
  const busyWhileTaken: boolean[] = [];
  const late: { controller?: WorkloadController } = {};
  const hosts = new Map(['h1', 'h2'].map((id) => [id, { id, status: id === 'h1' ? (options.h1Status ?? 'up') : 'up', telemetry: { address: id } } as unknown as Host]));
  const registry = { get: (id: string) => hosts.get(id), list: () => [], restoreCordons: () => undefined } as unknown as HostRegistry;
  const agents = {
    for: (hostId: string) => ({
      backupState: async function* (workloadId: string, _signal: AbortSignal, options: { memory: boolean }) {
        calls.push(`${hostId} backup ${workloadId}${options.memory ? ' with memory' : ''}`);
        busyWhileTaken.push(late.controller?.isBusy(workloadId) ?? false);
        yield { file: { role: 'image', size_bytes: 2 } };
      },
      importState: async (header: pb.WorkloadStateHeader, chunks: AsyncIterable<unknown>) => {
        for await (const _ of chunks) calls.push(`${hostId} import-chunk`);
        calls.push(`${hostId} import ${header.workload_id}`);
        return { workload_id: header.workload_id, state: 'stopped', driver_ref: 'ref', message: '' };
      },
      act: (action: string, _commandId: string, workloadId: string) => {
        calls.push(`${hostId} ${action} ${workloadId}`);
        return Promise.resolve({ workload_id: workloadId, state: action === 'start' ? 'running' : 'deleted', driver_ref: 'ref', message: '' });
      },
    }),
  } as unknown as AgentClientPool;
  const { sink, events: recorded } = recordingEventSink();
  const scheduler: Scheduler = {
    place: (request, snapshots): PlacementRecord => ({
      workloadId: request.workloadId,
      hostId: options.placeOn ?? 'h2',
      summary: `placed on ${options.placeOn ?? 'h2'}`,
      candidates: [],
      hostsTotal: snapshots.length,
      hostsEvaluated: 0,
      rejections: {},
      unresolvable: false,
      decidedAt: '',
    }),
  };
  const controller = new WorkloadController(store, registry, scheduler, new AdmissionQueue({ policy: 'fcfs', agingPerMinute: 0, backfill: true }), agents, sink, log);
  controllers.push(controller);
  late.controller = controller;
  const original = testWorkload('c1', { hostId: 'h1', state: 'running', desiredState: 'running' });
  const written: string[] = [];
  const metas: { memory: boolean }[] = [];
  const repository = {
    write: async (meta: { id: string; memory: boolean }, chunks: AsyncIterable<unknown>) => {
      metas.push(meta);
      for await (const _ of chunks) written.push(meta.id);
      return manifest(meta.id, original);
    },
    get: (id: string) => Promise.resolve(manifest(id, original)),
    read: async function* () {
      yield { file: { role: 'image', size_bytes: 2 } };
      if (options.importFails) throw new DataLossError('chunk y of image is damaged');
      yield { data: Buffer.from('ab') };
    },
  } as unknown as BackupRepository;
  const service = new BackupService(repository, controller, registry, agents, sink, log);
  await store.insert(original);
  await controller.lead(3_600_000);
  return {
    store,
    calls,
    get events() {
      return recorded.map((e) => e.type);
    },
    service,
    written,
    metas,
    original,
    busyWhileTaken,
    controller,
  };
}

describe('BackupService', () => {
  it('backs a running workload up through its host’s agent and says so in an event', async () => {
    const h = await harness();
    const b = await h.service.create('c1', { memory: false });
    expect(b.id).toMatch(/^bk-\d{14}-[0-9a-f]{8}$/);
    expect(h.calls).toEqual(['h1 backup c1']);
    expect(h.written).toEqual([b.id]);
    expect(h.events).toEqual([EVENT_TYPES.backupCreated]);
  });

  it("asks a running VM's agent for its memory too when the backup is full-state, and records that it is", async () => {
    const h = await harness();
    await h.store.put({ ...h.original, spec: { ...h.original.spec, kind: 'vm' } });
    await h.service.create('c1', { memory: true });
    expect([h.calls, h.metas.map((m) => m.memory)]).toEqual([['h1 backup c1 with memory'], [true]]);
  });

  it.each([
    ['a full-state backup, which pauses and stops the VM, holds the workload busy', true, [true]],
    ['a disk-only backup leaves lifecycle commands free', false, [false]],
  ])('%s', async (_name, memory, busy) => {
    const h = await harness();
    await h.store.put({ ...h.original, spec: { ...h.original.spec, kind: 'vm' } });
    await h.service.create('c1', { memory });
    expect(h.busyWhileTaken).toEqual(busy);
    expect(h.controller.isBusy('c1')).toBe(false);
    // A sample taken during the save (paused) is older than its end, so it does not become the state.
    expect(h.controller.commandFinishedAt('c1') > 0).toBe(memory);
  });

  it.each([
    ['the memory of a container', {}, {}, { memory: true }, /c1 is a container; its backup is its writable layer, without memory/],
    ['the memory of a stopped VM', {}, { state: 'stopped' as const, spec: { ...testWorkload('c1').spec, kind: 'vm' as const } }, { memory: true }, /c1 is stopped; it has no memory to back up/],
    ['a workload with no copy', {}, { state: 'pending' as const, hostId: '' }, { memory: false }, /is pending; only running, paused or stopped/],
    ['a workload whose host is down', { h1Status: 'down' as const }, {}, { memory: false }, /host h1 is down, not up/],
  ])('refuses %s and stores nothing', async (_name, options, patch: Partial<Workload>, request, message) => {
    const h = await harness(options);
    await h.store.put({ ...h.original, ...patch });
    await expect(h.service.create('c1', request)).rejects.toThrow(message);
    expect([h.calls, h.written, h.events]).toEqual([[], [], []]);
  });

  it('restores a backup as a new workload on the chosen host: recorded first, made from the backup, started', async () => {
    const h = await harness();
    const w = await h.service.restore('bk-1', { asName: 'c1-copy', hostId: '', requestId: 'r1' });
    expect([w.spec.name, w.hostId, w.state, w.message]).toEqual(['c1-copy', 'h2', 'running', 'restored from backup bk-1']);
    expect(h.calls).toEqual(['h2 import-chunk', 'h2 import-chunk', `h2 import ${w.id}`, `h2 start ${w.id}`]);
    expect(h.events).toContain(EVENT_TYPES.backupRestored);
  });

  it('leaves a restore from a damaged backup failed, with the reason, and nothing on the host', async () => {
    const h = await harness({ importFails: true });
    await expect(h.service.restore('bk-1', { asName: 'c1-copy', hostId: '', requestId: 'r1' })).rejects.toThrow(DataLossError);
    const w = h.store.getByName('c1-copy')!;
    expect([w.state, w.driverRef]).toEqual(['failed', '']);
    expect(w.message).toMatch(/restoring backup bk-1 failed: chunk y of image is damaged/);
    expect(h.calls.at(-1)).toBe(`h2 delete ${w.id}`);
  });

  it('refuses to restore under a name that is taken, recording nothing', async () => {
    const h = await harness();
    await expect(h.service.restore('bk-1', { asName: '', hostId: '', requestId: '' })).rejects.toThrow(/a workload named c1 already exists/);
    expect(h.calls).toEqual([]);
  });
});
