import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  createLogger,
  parseWorkloadSpec,
  type WorkloadSpec,
} from '@virtfleet/shared';
import { backendName, type Driver } from '../../packages/agent/src/drivers/driver.js';
import { createDockerDriver } from '../../packages/agent/src/drivers/docker/docker-driver.js';
import { waitFor, waitUntil } from '../support/wait.js';

// Runs against the real Docker Engine on this machine; see /work/shared/ENVIRONMENT.md for the setup.
const SOCKET = '/var/run/docker.sock';
const IMAGE = 'virtfleet-test/busybox:latest';
const MiB = 1024 * 1024;

const run = randomBytes(4).toString('hex');
const hostA = `itest-a-${run}`;
const hostB = `itest-b-${run}`;
const docker = new Docker({ socketPath: SOCKET });
const log = createLogger('docker-driver-test', 'silent');

let seq = 0;
const newId = (name: string) => `${name}-${run}-${++seq}`;

function spec(overrides: Partial<WorkloadSpec> = {}): WorkloadSpec {
  return parseWorkloadSpec({ name: 'sleeper', kind: 'container', image: IMAGE, vcpus: 0.5, memory_mib: 64, command: ['/bin/sleep', '1000'], ...overrides });
}

const containersNamed = (name: string) => docker.listContainers({ all: true, filters: { name: [`^/${name}$`] } });
const inspectByName = (workloadId: string, hostId = hostA) => docker.getContainer(backendName(hostId, workloadId)).inspect();

describe('Docker driver against the real Docker Engine', () => {
  let a: Driver;
  let b: Driver;

  beforeAll(async () => {
    a = await createDockerDriver({ socketPath: SOCKET, network: 'none', stopTimeoutSeconds: 2 }, { hostId: hostA, log });
    b = await createDockerDriver({ socketPath: SOCKET, network: 'none', stopTimeoutSeconds: 2 }, { hostId: hostB, log });
  });

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    const leftovers = await docker.listContainers({ all: true, filters: { label: [`io.virtfleet.host=${hostA}`] } });
    leftovers.push(...(await docker.listContainers({ all: true, filters: { label: [`io.virtfleet.host=${hostB}`] } })));
    await Promise.all(leftovers.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
  });

  it('fingerprints the engine as healthy with its version and capacity', async () => {
    const fp = await a.fingerprint();
    expect(fp, fp.detail).toMatchObject({ name: 'docker', healthy: true, kinds: ['container'], domain_types: [] });
    expect(fp.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(fp.capacity?.vcpus).toBeGreaterThan(0);
    expect(fp.capacity?.memoryMiB).toBeGreaterThan(64);
  });

  describe('lifecycle of one workload', () => {
    const id = newId('life');
    let ref: string;

    it('creates and starts a container with the requested limits and labels', async () => {
      const created = await a.create(id, spec({ labels: { tier: 'test' } }));
      expect(created).toMatchObject({ workloadId: id, name: 'sleeper', kind: 'container', state: 'running' });
      ref = created.ref;

      const info = await inspectByName(id);
      expect(info.Id).toBe(ref);
      expect(info.State.Running, `container state: ${JSON.stringify(info.State)}`).toBe(true);
      expect(info.HostConfig.Memory).toBe(64 * MiB);
      expect(info.HostConfig.MemorySwap).toBe(64 * MiB);
      expect(info.HostConfig.NanoCpus).toBe(500_000_000);
      expect(info.HostConfig.NetworkMode).toBe('none');
      expect(info.HostConfig.RestartPolicy?.Name).toBe('no');
      expect(info.Config.Cmd).toEqual(['/bin/sleep', '1000']);
      expect(info.Config.Labels).toMatchObject({
        'io.virtfleet.host': hostA,
        'io.virtfleet.workload': id,
        'io.virtfleet.name': 'sleeper',
        'io.virtfleet.kind': 'container',
        'io.virtfleet.label.tier': 'test',
      });
    });

    it('returns the same container when created again with the same id', async () => {
      const again = await a.create(id, spec());
      expect(again.ref).toBe(ref);
      expect(await containersNamed(backendName(hostA, id))).toHaveLength(1);
    });

    it('reports usage while running', async () => {
      const usage = await waitFor('non-zero CPU time', async () => {
        const u = await a.usage(id);
        return u && u.cpuTimeNs > 0 ? u : undefined;
      }, { timeoutMs: 10_000 });
      expect(usage.memoryUsedMiB).toBeGreaterThan(0);
      expect(usage.memoryUsedMiB).toBeLessThanOrEqual(64);
    });

    it('pauses, idempotently', async () => {
      expect((await a.pause(id)).state).toBe('paused');
      expect((await inspectByName(id)).State.Paused).toBe(true);
      expect((await a.pause(id)).state).toBe('paused');
      expect((await a.inspect(id))?.state).toBe('paused');
    });

    it('resumes, idempotently', async () => {
      expect((await a.resume(id)).state).toBe('running');
      const state = (await inspectByName(id)).State;
      expect(state.Paused).toBe(false);
      expect(state.Running).toBe(true);
      expect((await a.resume(id)).state).toBe('running');
    });

    it('stops, idempotently, and refuses to pause or resume a stopped workload', async () => {
      const stopped = await a.stop(id, { timeoutSeconds: 1, force: false });
      expect(stopped.state).toBe('stopped');
      expect((await inspectByName(id)).State.Running).toBe(false);
      expect((await a.stop(id, { timeoutSeconds: 1, force: false })).state).toBe('stopped');
      expect(await a.usage(id)).toBeUndefined();
      await expect(a.pause(id)).rejects.toBeInstanceOf(FailedPreconditionError);
      await expect(a.resume(id)).rejects.toBeInstanceOf(FailedPreconditionError);
    });

    it('starts again, idempotently, keeping the same container', async () => {
      const started = await a.start(id);
      expect(started).toMatchObject({ state: 'running', ref });
      expect((await inspectByName(id)).State.Running).toBe(true);
      expect((await a.start(id)).ref).toBe(ref);
    });

    it('lets concurrent pauses and resumes all succeed (Docker answers the losers with 409 and 500)', async () => {
      const pauses = await Promise.all([1, 2, 3].map(() => a.pause(id)));
      expect(pauses.map((w) => w.state)).toEqual(['paused', 'paused', 'paused']);
      const resumes = await Promise.all([1, 2, 3].map(() => a.resume(id)));
      expect(resumes.map((w) => w.state)).toEqual(['running', 'running', 'running']);
    });

    it('lets concurrent stops and starts all succeed (Docker answers the losers with 304)', async () => {
      const stops = await Promise.all([1, 2, 3].map(() => a.stop(id, { timeoutSeconds: 0, force: true })));
      expect(stops.map((w) => w.state)).toEqual(['stopped', 'stopped', 'stopped']);
      const starts = await Promise.all([1, 2, 3].map(() => a.start(id)));
      expect(starts.map((w) => w.state)).toEqual(['running', 'running', 'running']);
      expect((await inspectByName(id)).State.Running).toBe(true);
    });

    it('stops a paused workload when forced, without waiting', async () => {
      await a.pause(id);
      const before = Date.now();
      expect((await a.stop(id, { timeoutSeconds: 30, force: true })).state).toBe('stopped');
      expect(Date.now() - before).toBeLessThan(10_000);
    });

    it('deletes, idempotently', async () => {
      await a.delete(id);
      expect(await a.inspect(id)).toBeUndefined();
      expect(await containersNamed(backendName(hostA, id))).toHaveLength(0);
      await a.delete(id);
      await expect(a.start(id)).rejects.toBeInstanceOf(NotFoundError);
      expect(await a.usage(id)).toBeUndefined();
    });
  });

  it('creates exactly one container when two creates for the same id race', async () => {
    const id = newId('race');
    const [first, second] = await Promise.all([a.create(id, spec()), a.create(id, spec())]);
    expect(second.ref).toBe(first.ref);
    expect(await containersNamed(backendName(hostA, id))).toHaveLength(1);
    await waitUntil('the race winner to be running', async () => (await a.inspect(id))?.state === 'running', { timeoutMs: 10_000 });
  });

  it('keeps the workloads of two hosts sharing one engine apart', async () => {
    const idA = newId('mine');
    const idB = newId('theirs');
    await a.create(idA, spec());
    const theirs = await b.create(idB, spec());

    const listA = await a.list();
    const listB = await b.list();
    expect(listA.map((w) => w.workloadId)).toContain(idA);
    expect(listA.map((w) => w.workloadId)).not.toContain(idB);
    expect(listB.map((w) => w.workloadId)).toEqual([idB]);
    expect(listB[0]).toMatchObject({ name: 'sleeper', kind: 'container', state: 'running', ref: theirs.ref });

    expect(await a.inspect(idB)).toBeUndefined();
    expect(await a.usage(idB)).toBeUndefined();
    await a.delete(idB); // a has no copy of idB: deleting it is a no-op
    await expect(a.stop(idB, { timeoutSeconds: 0, force: true })).rejects.toBeInstanceOf(NotFoundError);
    await expect(a.pause(idB)).rejects.toBeInstanceOf(NotFoundError);
    // A rescheduled workload: a gets its own copy of the same workload id, in its own container.
    const copy = await a.create(idB, spec());
    expect(copy.ref).not.toBe(theirs.ref);
    await a.delete(idB);
    // B's container survived all of that, untouched.
    expect((await inspectByName(idB, hostB)).State.Running).toBe(true);
    expect((await b.inspect(idB))?.state).toBe('running');
  });

  it('rejects an image that is not present locally, creating nothing', async () => {
    const id = newId('noimage');
    const err = await a.create(id, spec({ image: `virtfleet-test/absent-${run}:latest` })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).field).toBe('spec.image');
    expect((err as InvalidArgumentError).message).toMatch(/not present on this host/);
    expect(await containersNamed(backendName(hostA, id))).toHaveLength(0);
  });

  it('rejects a command the image does not have, leaving nothing behind', async () => {
    const id = newId('nocmd');
    const err = await a.create(id, spec({ command: ['/bin/does-not-exist'] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).field).toBe('spec.command');
    expect(await containersNamed(backendName(hostA, id))).toHaveLength(0);
  });

  it('reports an unreachable engine as unhealthy and its calls as unavailable', async () => {
    const offline = await createDockerDriver({ socketPath: `/tmp/virtfleet-no-docker-${run}.sock`, network: 'none', stopTimeoutSeconds: 1 }, { hostId: hostA, log });
    const fp = await offline.fingerprint();
    expect(fp.healthy).toBe(false);
    expect(fp.detail).toMatch(/ENOENT/);
    await expect(offline.list()).rejects.toBeInstanceOf(UnavailableError);
    await offline.close();
  });
});
