import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { pb } from '@virtfleet/shared';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestCluster } from '../support/cluster.js';
import { coordinatorConfigOf } from '../support/configs.js';
import { GUEST_BOOT_MS, startPlayground, testGuestSpec, type Playground } from '../support/playground.js';
import type { SimulatedHost } from '../support/simulated-host.js';
import { consoleText, ticksIn, waitForConsole } from '../support/test-guest.js';
import { waitFor, waitUntil } from '../support/wait.js';
import { TEST_IMAGE } from '../support/workloads.js';

const run = promisify(execFile);

/**
 * Backups through virtfleet on two simulated hosts: taken while the workload
 * runs, stored as deduplicated chunks in the cluster's repository, verified,
 * and restored as new workloads on the other host from exactly the state the
 * backup holds.
 */
describe('backup and restore on simulated hosts', () => {
  let playground: Playground;
  let cluster: TestCluster;
  let hosts: [SimulatedHost, SimulatedHost];
  let repository: string;
  const tag = `b${process.pid % 100_000}`;
  const cli = (...args: string[]) => playground.cli(...args);
  const runningOn = (id: string) => playground.runningOn(id);
  const json = async <T,>(...args: string[]): Promise<T> => {
    const r = await cli(...args, '-o', 'json');
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as T;
  };
  const consoleOn = (host: SimulatedHost, id: string) => join(host.agentStateDir, 'vms', id, 'console.log');
  const domainsOf = async (host: SimulatedHost) => (await run('virsh', ['-c', host.libvirtUri, 'list', '--all', '--name'])).stdout.split('\n').filter((l) => l.trim() !== '');

  beforeAll(async () => {
    playground = await startPlayground(tag);
    ({ cluster, hosts } = playground);
    repository = coordinatorConfigOf(cluster.coordinator).backups.dir;
  }, 600_000);
  afterAll(async () => {
    await playground?.stop();
  }, 300_000);

  it("restores a running VM's disk as it was at the backup, on the other host; a second backup of an unchanged disk stores nothing new", async () => {
    const [a, b] = hosts;
    await cluster.api.cordon(b.name, true);
    const name = `${tag}-vm1`;
    const spec = testGuestSpec(tag, name);
    const w = await runningOn((await cluster.api.submit({ request_id: name, spec })).id);
    await cluster.api.cordon(b.name, false);
    // The guest counts its boots in a file on its disk: 1 now.
    await waitForConsole(consoleOn(a, w.id), 'VIRTFLEET-TICK 2', { timeoutMs: GUEST_BOOT_MS });

    const first = await json<pb.Backup__Output>('backup', 'create', w.id);
    expect(first).toMatchObject({ workload_id: w.id, workload_name: name, kind: 'vm', memory: false });
    expect(first.files.map((f) => f.role)).toEqual(['disk:root']);
    expect(first.stored_bytes).toBeGreaterThan(0);
    // It still runs: the backup did not stop it.
    expect((await cluster.api.get(w.id)).state).toBe('running');

    // The disk moves on: two more boots on a.
    for (const n of [1, 2]) {
      await cluster.api.act('StopWorkload', { id: w.id, request_id: `${name}-stop-${n}`, force: true });
      await waitUntil('stopped', async () => (await cluster.api.get(w.id)).state === 'stopped', { timeoutMs: 60_000 });
      await cluster.api.act('StartWorkload', { id: w.id, request_id: `${name}-start-${n}` });
      await waitForConsole(consoleOn(a, w.id), 'VIRTFLEET-GUEST-READY', { count: n + 1, timeoutMs: GUEST_BOOT_MS });
    }
    expect(await waitForConsole(consoleOn(a, w.id), 'VIRTFLEET-BOOTS 3', { timeoutMs: 30_000 })).toContain('VIRTFLEET-BOOTS 3');

    // Backups of the stopped VM are its disk files as they are: the second stores nothing the first did not.
    await cluster.api.act('StopWorkload', { id: w.id, request_id: `${name}-stop-3`, force: true });
    await waitUntil('stopped', async () => (await cluster.api.get(w.id)).state === 'stopped', { timeoutMs: 60_000 });
    const stopped = await json<pb.Backup__Output>('backup', 'create', w.id);
    const again = await json<pb.Backup__Output>('backup', 'create', w.id);
    expect(again.size_bytes).toBe(stopped.size_bytes);
    expect(again.stored_bytes).toBeLessThan(stopped.size_bytes / 4);
    expect((await json<pb.Backup__Output[]>('backup', 'ls', name)).map((x) => x.id)).toEqual([again.id, stopped.id, first.id]);

    const verified = await cli('backup', 'verify', first.id);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toMatch(new RegExp(`${first.id}: ok, \\d+ chunks checked`));

    const restored = await json<pb.Workload__Output>('backup', 'restore', first.id, '--as', `${name}-r`, '--host', b.name);
    expect([restored.host_id, restored.state, restored.spec?.name]).toEqual([b.name, 'running', `${name}-r`]);
    // Its disk is the backup's: one boot counted there, so this is the second, not the fourth, nor a fresh first.
    expect(await waitForConsole(consoleOn(b, restored.id), 'VIRTFLEET-GUEST-READY', { timeoutMs: GUEST_BOOT_MS })).toContain('VIRTFLEET-BOOTS 2');

    for (const id of [w.id, restored.id]) await cluster.api.act('DeleteWorkload', { id, request_id: `${id}-delete` });
    await waitUntil('both deleted', async () => (await domainsOf(a)).length === 0 && (await domainsOf(b)).length === 0, { timeoutMs: 60_000 });
  }, 900_000);

  it('restores a --memory backup as a new VM on the other host, resuming where the backup left it instead of booting', async () => {
    const [a, b] = hosts;
    await cluster.api.cordon(b.name, true);
    const name = `${tag}-vm2`;
    const w = await runningOn((await cluster.api.submit({ request_id: name, spec: testGuestSpec(tag, name) })).id);
    await cluster.api.cordon(b.name, false);
    await waitForConsole(consoleOn(a, w.id), 'VIRTFLEET-TICK 3', { timeoutMs: GUEST_BOOT_MS });

    const backup = await json<pb.Backup__Output>('backup', 'create', w.id, '--memory');
    expect(backup.memory).toBe(true);
    expect(backup.files.map((f) => f.role).sort()).toEqual(['disk:root', 'memory']);
    const atBackup = Math.max(...ticksIn(consoleText(consoleOn(a, w.id))));
    // The original paused for the save and goes on ticking, not booting again.
    expect((await cluster.api.get(w.id)).state).toBe('running');
    await waitForConsole(consoleOn(a, w.id), `VIRTFLEET-TICK ${atBackup + 2}`, { timeoutMs: 60_000 });
    expect(consoleText(consoleOn(a, w.id)).match(/VIRTFLEET-GUEST-READY/g)).toHaveLength(1);

    const restored = await json<pb.Workload__Output>('backup', 'restore', backup.id, '--as', `${name}-r`, '--host', b.name);
    expect([restored.host_id, restored.state]).toEqual([b.name, 'running']);
    // The restored VM never boots: its console starts with the ticks after the backup's.
    const ticks = ticksIn(await waitForConsole(consoleOn(b, restored.id), 'VIRTFLEET-TICK', { count: 3, timeoutMs: 60_000 }));
    expect(Math.min(...ticks)).toBeGreaterThan(atBackup - 2);
    expect(consoleText(consoleOn(b, restored.id))).not.toContain('VIRTFLEET-GUEST-READY');
    // It is b's own domain, named for its workload.
    expect(await domainsOf(b)).toEqual([`virtfleet-${b.name}.${restored.id}`]);

    // Memory is a VM's alone, and only while it runs.
    const c = `${tag}-mc`;
    await runningOn((await cluster.api.submit({ request_id: c, spec: { name: c, kind: 'container', image: TEST_IMAGE, vcpus: 0.1, memory_mib: 32, command: ['/bin/sleep', '3600'] } })).id);
    const refused = await cli('backup', 'create', c, '--memory');
    expect([refused.code, refused.stderr]).toEqual([5, expect.stringContaining('container')]);
    for (const id of [w.id, restored.id, c]) await cluster.api.act('DeleteWorkload', { id, request_id: `${id}-delete` });
    const ours = async (host: SimulatedHost) => (await domainsOf(host)).filter((d) => d.endsWith(`.${w.id}`) || d.endsWith(`.${restored.id}`));
    await waitUntil('both deleted', async () => (await ours(a)).length === 0 && (await ours(b)).length === 0, { timeoutMs: 60_000 });
  }, 900_000);

  it("restores a container's writable layer as a new container; a damaged chunk is found by verify and refused by restore", async () => {
    const name = `${tag}-c1`;
    const script = 'trap "exit 0" TERM; [ -f /state ] || echo "VIRTFLEET-STATE $(head -c 8 /dev/urandom | od -An -tx1 | tr -d " ")" > /state; cat /state; while true; do sleep 1; done';
    const c = await runningOn((await cluster.api.submit({ request_id: name, spec: { name, kind: 'container', image: TEST_IMAGE, vcpus: 0.1, memory_mib: 32, command: ['/bin/sh', '-c', script] } })).id);
    const stateOf = async (id: string) => {
      const value = /VIRTFLEET-STATE ([0-9a-f]{16})/.exec((await cli('workload', 'logs', id)).stdout)?.[1];
      return value === undefined ? undefined : { value };
    };
    const original = (await waitFor('its state printed', () => stateOf(c.id), { timeoutMs: 30_000 })).value;
    const backup = await json<pb.Backup__Output>('backup', 'create', name);
    expect(backup.files.map((f) => f.role)).toEqual(['image']);

    const restored = await json<pb.Workload__Output>('backup', 'restore', backup.id, '--as', `${name}-r`);
    expect(restored.state).toBe('running');
    expect((await waitFor('the restored state printed', () => stateOf(restored.id), { timeoutMs: 30_000 })).value).toBe(original);
    // The name is taken while the original lives.
    const taken = await cli('backup', 'restore', backup.id);
    expect(taken.code).toBe(5);

    // Damage the first chunk of this backup in the repository.
    const manifest = JSON.parse(readFileSync(join(repository, 'backups', `${backup.id}.json`), 'utf8')) as { files: { chunks: string[] }[] };
    const digest = manifest.files[0]!.chunks[0]!;
    writeFileSync(join(repository, 'chunks', digest.slice(0, 2), digest), 'not what was stored');
    const damaged = await cli('backup', 'verify', backup.id, '-o', 'json');
    expect(damaged.code).toBe(1);
    expect((JSON.parse(damaged.stdout) as pb.BackupVerification__Output).damaged).toEqual([{ role: 'image', index: 0, sha256: digest, problem: 'corrupt' }]);
    const refused = await cli('backup', 'restore', backup.id, '--as', `${tag}-from-damaged`);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(digest);
    // The workload the restore recorded ended failed, with nothing made on its host.
    const leftover = await cluster.api.get(`${tag}-from-damaged`);
    expect(leftover.state).toBe('failed');
    expect(leftover.message).toContain(`restoring backup ${backup.id} failed`);
    const containers = await Promise.all(hosts.map(async (h) => (await h.docker.listContainers({ all: true })).filter((x) => x.Names.some((n) => n.endsWith(`.${leftover.id}`)))));
    expect(containers.flat()).toEqual([]);
    await cluster.api.act('DeleteWorkload', { id: leftover.id, request_id: `${leftover.id}-delete` });

    for (const id of [c.id, restored.id]) await cluster.api.act('DeleteWorkload', { id, request_id: `${id}-delete` });
    const removed = await cli('backup', 'rm', backup.id);
    expect(removed.code, removed.stderr).toBe(0);
    expect((await json<pb.Backup__Output[]>('backup', 'ls', name)).map((x) => x.id)).toEqual([]);
  }, 600_000);
});
