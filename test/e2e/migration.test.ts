import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestCluster } from '../support/cluster.js';
import { GUEST_BOOT_MS, startPlayground, testGuestSpec, type Playground } from '../support/playground.js';
import type { SimulatedHost } from '../support/simulated-host.js';
import { consoleText, ticksIn, waitForConsole } from '../support/test-guest.js';
import { waitFor, waitUntil } from '../support/wait.js';
import { retainedEvents, TEST_IMAGE } from '../support/workloads.js';

const run = promisify(execFile);

/**
 * Migration through virtfleet between two simulated hosts (own libvirtd,
 * dockerd, agent and network namespace each). Live, with the test guest under
 * TCG: its tick counter goes on across the move instead of starting again,
 * its disk comes along, and nothing of it is left on the source. Cold, for a
 * container (its writable layer comes along) and a VM (its disk does).
 */
describe('migration between simulated hosts', () => {
  let playground: Playground;
  let cluster: TestCluster;
  let hosts: [SimulatedHost, SimulatedHost];
  const tag = `m${process.pid % 100_000}`;
  const cli = (...args: string[]) => playground.cli(...args);
  const vmsOf = (host: SimulatedHost) => join(host.agentStateDir, 'vms');
  const filesOn = (host: SimulatedHost, id: string) => existsSync(join(vmsOf(host), id));
  const domainsOf = async (host: SimulatedHost) => (await run('virsh', ['-c', host.libvirtUri, 'list', '--all', '--name'])).stdout.split('\n').filter((l) => l.trim() !== '');
  const consoleOn = (host: SimulatedHost, id: string) => join(vmsOf(host), id, 'console.log');
  /** Submits a guest on `host` (the other one cordoned meanwhile) and waits for it to tick. */
  const bootOn = async (host: SimulatedHost, other: SimulatedHost, name: string) => {
    await cluster.api.cordon(other.name, true);
    try {
      const w = await playground.runningOn((await cluster.api.submit({ request_id: name, spec: testGuestSpec(tag, name) })).id);
      expect(w.host_id).toBe(host.name);
      await waitForConsole(consoleOn(host, w.id), 'VIRTFLEET-TICK 3', { timeoutMs: GUEST_BOOT_MS });
      return w;
    } finally {
      await cluster.api.cordon(other.name, false);
    }
  };
  const migrationEnded = (id: string, timeoutMs = 180_000) =>
    waitFor(
      `the migration of ${id} to end`,
      async () => {
        const w = await cluster.api.get(id);
        return w.migration ? undefined : w;
      },
      { timeoutMs, intervalMs: 250 },
    );

  beforeAll(async () => {
    playground = await startPlayground(tag);
    ({ cluster, hosts } = playground);
  }, 600_000);
  afterAll(async () => {
    await playground?.stop();
  }, 300_000);

  it('moves a running VM to the host the scheduler picks: its ticks go on, its disk comes along, and the source keeps nothing', async () => {
    const [a, b] = hosts;
    const w = await bootOn(a, b, `${tag}-vm1`);
    const before = ticksIn(consoleText(consoleOn(a, w.id)));

    const migrate = await cli('workload', 'migrate', w.id, '--watch', '--max-downtime', '500');
    expect(migrate.code, migrate.stderr).toBe(0);
    expect(migrate.stdout).toContain(`migrating ${w.id}: live ${a.name} -> ${b.name}`);
    const moved = await cluster.api.get(w.id);
    expect([moved.host_id, moved.state, moved.migration ?? null]).toEqual([b.name, 'running', null]);
    expect(moved.message).toBe(`migrated from ${a.name} to ${b.name}`);

    // The guest did not start again: the target's console goes on counting where the source's stopped.
    const after = ticksIn(await waitForConsole(consoleOn(b, w.id), 'VIRTFLEET-TICK', { count: 3, timeoutMs: 60_000 }));
    expect(Math.min(...after)).toBeGreaterThan(Math.max(...before));
    expect(consoleText(consoleOn(b, w.id))).not.toContain('VIRTFLEET-BOOTS');

    // Exactly one copy, on the target; nothing left on the source.
    expect(await domainsOf(a)).toEqual([]);
    expect(await domainsOf(b)).toEqual([`virtfleet-${b.name}.${w.id}`]);
    expect(filesOn(a, w.id)).toBe(false);
    expect(readdirSync(join(vmsOf(b), w.id))).toContain('root.qcow2');

    // The scheduler's choice is kept for explain; the events tell the story.
    const explained = await cli('explain', w.id);
    expect(explained.stdout).toContain(`placed on ${b.name}`);
    const types = (await retainedEvents(cluster.api)).filter((e) => e.subject === w.id).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['io.virtfleet.workload.migration_started', 'io.virtfleet.workload.migration_completed']));
    expect(types).not.toContain('io.virtfleet.workload.migration_failed');

    // Its disk came along: a restart on the target boots from it, and counts a second boot.
    await cluster.api.act('StopWorkload', { id: w.id, request_id: `${tag}-vm1-stop`, force: true });
    await waitUntil('stopped', async () => (await cluster.api.get(w.id)).state === 'stopped', { timeoutMs: 60_000 });
    await cluster.api.act('StartWorkload', { id: w.id, request_id: `${tag}-vm1-start` });
    expect(await waitForConsole(consoleOn(b, w.id), 'VIRTFLEET-GUEST-READY', { timeoutMs: GUEST_BOOT_MS })).toContain('VIRTFLEET-BOOTS 2');

    await cluster.api.act('DeleteWorkload', { id: w.id, request_id: `${tag}-vm1-delete` });
    await waitUntil('deleted', async () => !filesOn(b, w.id) && (await domainsOf(b)).length === 0, { timeoutMs: 60_000 });
  }, 900_000);

  it('cancels a slow migration: the VM keeps running on the source and the target keeps nothing', async () => {
    const [a, b] = hosts;
    const w = await bootOn(a, b, `${tag}-vm2`);
    const started = await cli('workload', 'migrate', w.id, '--to', b.name, '--bandwidth', '1', '-o', 'json');
    expect(started.code, started.stderr).toBe(0);
    expect(JSON.parse(started.stdout)).toMatchObject({ migration: { target_host_id: b.name, source_host_id: a.name } });
    await waitFor(
      'the migration to transfer',
      async () => {
        const m = (await cluster.api.get(w.id)).migration;
        return m?.phase === 'transferring' && m.data_processed_bytes > 0 ? m : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 250 },
    );
    // A second migration of the same VM is refused meanwhile.
    const twice = await cli('workload', 'migrate', w.id);
    expect(twice.code).toBe(5);
    expect(twice.stderr).toContain(`is already migrating to ${b.name}`);

    const cancel = await cli('workload', 'migrate', w.id, '--cancel');
    expect(cancel.code, cancel.stderr).toBe(0);
    const ended = await migrationEnded(w.id);
    expect([ended.host_id, ended.state]).toEqual([a.name, 'running']);
    expect(ended.message).toBe(`migration to ${b.name} cancelled; it runs on ${a.name}`);
    expect(await domainsOf(b)).toEqual([]);
    await waitUntil('the target’s files removed', () => Promise.resolve(!filesOn(b, w.id)), { timeoutMs: 30_000 });
    // Still ticking on the source, without a reboot.
    const last = Math.max(...ticksIn(consoleText(consoleOn(a, w.id))));
    const later = await waitForConsole(consoleOn(a, w.id), `VIRTFLEET-TICK ${last + 2}`, { timeoutMs: 60_000 });
    expect(later.split('VIRTFLEET-BOOTS').length - 1).toBe(1);
    const failed = (await retainedEvents(cluster.api)).find((e) => e.subject === w.id && e.type === 'io.virtfleet.workload.migration_failed');
    expect(failed?.data).toMatchObject({ cancelled: true, to_host: b.name });

    await cluster.api.act('DeleteWorkload', { id: w.id, request_id: `${tag}-vm2-delete` });
    await waitUntil('deleted', async () => !filesOn(a, w.id) && (await domainsOf(a)).length === 0, { timeoutMs: 60_000 });
  }, 900_000);

  /** Starts a migration to `to` and waits until it transfers. */
  const migratingTo = async (id: string, to: SimulatedHost, bandwidthMiBs: number) => {
    await cluster.api.migrate({ id, target_host_id: to.name, bandwidth_mib_s: bandwidthMiBs, request_id: `${id}-migrate-${to.name}` });
    await waitFor(
      'the migration to transfer',
      async () => {
        const m = (await cluster.api.get(id)).migration;
        return m?.phase === 'transferring' && m.data_processed_bytes > 0 ? m : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 200 },
    );
  };
  /** Exactly one copy of the VM, on `on`, and no domain or file of it anywhere else. */
  const expectOneCopyOn = async (id: string, on: SimulatedHost) => {
    const other = hosts.find((h) => h !== on)!;
    const of = async (host: SimulatedHost) => (await domainsOf(host)).filter((d) => d.endsWith(`.${id}`));
    expect(await of(on)).toEqual([`virtfleet-${on.name}.${id}`]);
    expect(await of(other)).toEqual([]);
    expect(filesOn(on, id)).toBe(true);
    await waitUntil(`no files of ${id} on ${other.name}`, () => Promise.resolve(!filesOn(other, id)), { timeoutMs: 30_000 });
  };
  const expectTicking = async (id: string, on: SimulatedHost) => {
    const last = Math.max(...ticksIn(consoleText(consoleOn(on, id))));
    await waitForConsole(consoleOn(on, id), `VIRTFLEET-TICK ${last + 2}`, { timeoutMs: 60_000 });
  };
  const cleanUp = async (id: string, on: SimulatedHost) => {
    await cluster.api.act('DeleteWorkload', { id, request_id: `${id}-delete` });
    await waitUntil('deleted', async () => !filesOn(on, id) && (await domainsOf(on)).length === 0, { timeoutMs: 60_000 });
  };

  it('a leader killed mid-transfer: the next leader aborts the move, the VM runs on the source alone and the target keeps nothing', async () => {
    const [a, b] = hosts;
    const w = await bootOn(a, b, `${tag}-vm3`);
    await migratingTo(w.id, b, 1);
    await cluster.restartCoordinator('SIGKILL');
    const ended = await migrationEnded(w.id);
    expect([ended.host_id, ended.state]).toEqual([a.name, 'running']);
    expect(ended.message).toBe(`migration to ${b.name} failed: the coordinator leading it stopped before it finished; it runs on ${a.name}`);
    await expectOneCopyOn(w.id, a);
    await expectTicking(w.id, a);
    await cleanUp(w.id, a);
  }, 900_000);

  it("the source's agent killed mid-transfer: nothing is decided until the agent is back; the VM then runs on the source alone", async () => {
    const [a, b] = hosts;
    const w = await bootOn(a, b, `${tag}-vm4`);
    await migratingTo(w.id, b, 1);
    await a.killAgent();
    await new Promise((r) => setTimeout(r, 3000));
    // Nothing is decided while the source cannot say what libvirt did.
    expect((await cluster.api.get(w.id)).migration?.target_host_id).toBe(b.name);
    await a.startAgent();
    const ended = await migrationEnded(w.id);
    expect(ended.host_id).toBe(a.name);
    // Its lease lapsed while it was dead, so the agent fenced its VMs when it came back (the move failed
    // with it); the coordinator then starts the VM again where it is.
    await waitUntil(`${w.id} running on ${a.name}`, async () => (await cluster.api.get(w.id)).state === 'running', { timeoutMs: 120_000 });
    await expectOneCopyOn(w.id, a);
    await cleanUp(w.id, a);
  }, 900_000);

  it("the target's agent killed mid-transfer: the move completes, and the target's agent takes the VM over once it is back", async () => {
    const [a, b] = hosts;
    const w = await bootOn(a, b, `${tag}-vm5`);
    const before = Math.max(...ticksIn(consoleText(consoleOn(a, w.id))));
    await migratingTo(w.id, b, 16);
    await b.killAgent();
    await migrationEnded(w.id);
    await b.startAgent();
    const settled = await waitFor(
      `${w.id} running on ${b.name}`,
      async () => {
        const got = await cluster.api.get(w.id);
        return got.host_id === b.name && got.state === 'running' ? got : undefined;
      },
      { timeoutMs: 120_000 },
    );
    expect(settled.migration ?? null).toBeNull();
    await expectOneCopyOn(w.id, b);
    expect(Math.min(...ticksIn(consoleText(consoleOn(b, w.id))))).toBeGreaterThan(before);
    await expectTicking(w.id, b);
    await cleanUp(w.id, b);
  }, 900_000);

  /** The VM runs on `on` again, resumed from memory saved at tick `saved`: its ticks go on, and it never booted a second time. */
  const expectResumedOn = async (id: string, on: SimulatedHost, saved: number) => {
    await waitUntil(`${id} running on ${on.name}`, async () => (await cluster.api.get(id)).state === 'running', { timeoutMs: 120_000 });
    await waitForConsole(consoleOn(on, id), `VIRTFLEET-TICK ${saved + 2}`, { timeoutMs: 60_000 });
    expect(consoleText(consoleOn(on, id)).match(/VIRTFLEET-GUEST-READY/g)).toHaveLength(1);
  };
  /** Starts a cold migration to `to`, slowed down, and waits until a few MiB went across. */
  const coldTransferTo = async (id: string, to: SimulatedHost) => {
    await cluster.api.migrate({ id, target_host_id: to.name, mode: 'cold', bandwidth_mib_s: 8, request_id: `${id}-migrate-${to.name}` });
    await waitFor(
      'the cold migration to transfer',
      async () => {
        const m = (await cluster.api.get(id)).migration;
        return m?.phase === 'transferring' && m.data_processed_bytes > 4 * 1024 * 1024 ? m : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 200 },
    );
  };
  /** Starts a live migration to `to` and waits until its record says it prepares (the target's agent frozen, it stays there). */
  const preparingOn = async (id: string, to: SimulatedHost) => {
    to.freezeAgent();
    await cluster.api.migrate({ id, target_host_id: to.name, request_id: `${id}-migrate-${to.name}` });
    await waitUntil('the migration to prepare', async () => (await cluster.api.get(id)).migration?.phase === 'preparing', { timeoutMs: 30_000, intervalMs: 100 });
  };
  const hostUp = (host: SimulatedHost) => waitUntil(`${host.name} up`, async () => (await cluster.api.hosts()).hosts.find((h) => h.id === host.name)?.status === 'up', { timeoutMs: 120_000 });

  it('a leader killed while the target prepares: the next leader gives the move up, the VM runs on the source alone', async () => {
    const [a, b] = hosts;
    const w = await bootOn(a, b, `${tag}-vm12`);
    await preparingOn(w.id, b);
    await cluster.restartCoordinator('SIGKILL');
    b.thawAgent();
    const ended = await migrationEnded(w.id);
    expect([ended.host_id, ended.state]).toEqual([a.name, 'running']);
    await expectOneCopyOn(w.id, a);
    await expectTicking(w.id, a);
    await cleanUp(w.id, a);
    await hostUp(b);
  }, 900_000);

  it("the target's agent killed while it prepares: the move fails, the VM runs on the source alone, and the target keeps nothing once back", async () => {
    const [a, b] = hosts;
    const w = await bootOn(a, b, `${tag}-vm13`);
    await preparingOn(w.id, b);
    await b.killAgent();
    const ended = await migrationEnded(w.id);
    expect([ended.host_id, ended.state]).toEqual([a.name, 'running']);
    await b.startAgent();
    await expectOneCopyOn(w.id, a);
    await expectTicking(w.id, a);
    await cleanUp(w.id, a);
    await hostUp(b);
  }, 900_000);

  it("the source's agent killed while the target prepares: the move is given up once the source is down, and the VM runs there alone when its agent is back", async () => {
    const [a, b] = hosts;
    const w = await bootOn(a, b, `${tag}-vm17`);
    await preparingOn(w.id, b);
    await a.killAgent();
    b.thawAgent();
    const ended = await migrationEnded(w.id);
    expect(ended.host_id).toBe(a.name);
    await a.startAgent();
    // Its lease lapsed while it was dead, so the agent fenced its VMs when it came back; the coordinator then starts
    // the VM again where it is.
    await waitUntil(`${w.id} running on ${a.name}`, async () => (await cluster.api.get(w.id)).state === 'running', { timeoutMs: 120_000 });
    await expectOneCopyOn(w.id, a);
    await cleanUp(w.id, a);
    await hostUp(a);
  }, 900_000);

  it('a leader killed while the target takes the VM over: the next leader finishes the move, and exactly one copy runs', async () => {
    const [a, b] = hosts;
    const w = await bootOn(a, b, `${tag}-vm14`);
    await migratingTo(w.id, b, 32);
    // Frozen, the target's agent cannot take the VM over: the move waits in its last phase, ownership already moved.
    b.freezeAgent();
    try {
      await waitUntil('the take-over', async () => (await cluster.api.get(w.id)).migration?.phase === 'switching', { timeoutMs: 120_000, intervalMs: 100 });
      await cluster.restartCoordinator('SIGKILL');
    } finally {
      b.thawAgent();
    }
    await migrationEnded(w.id);
    // The target's lease lapsed while it was frozen, so it may have fenced the VM and the coordinator placed it again:
    // wherever it runs, it runs once.
    const settled = await waitFor(
      `${w.id} running`,
      async () => {
        const got = await cluster.api.get(w.id);
        return got.state === 'running' && !got.migration ? got : undefined;
      },
      { timeoutMs: GUEST_BOOT_MS },
    );
    await expectOneCopyOn(w.id, settled.host_id === a.name ? a : b);
    await cleanUp(w.id, settled.host_id === a.name ? a : b);
    await hostUp(b);
  }, 900_000);

  it('a leader killed mid cold transfer: the next leader undoes the move, and the VM resumes on the source from its saved memory', async () => {
    const [a, b] = hosts;
    const w = await bootOn(a, b, `${tag}-vm15`);
    await coldTransferTo(w.id, b);
    const saved = Math.max(...ticksIn(consoleText(consoleOn(a, w.id))));
    await cluster.restartCoordinator('SIGKILL');
    const ended = await migrationEnded(w.id);
    expect(ended.host_id).toBe(a.name);
    await expectResumedOn(w.id, a, saved);
    await expectOneCopyOn(w.id, a);
    await cleanUp(w.id, a);
  }, 900_000);

  it("the source's agent killed mid cold transfer: the move is undone, and once the agent is back the VM resumes there from its saved memory", async () => {
    const [a, b] = hosts;
    const w = await bootOn(a, b, `${tag}-vm16`);
    await coldTransferTo(w.id, b);
    const saved = Math.max(...ticksIn(consoleText(consoleOn(a, w.id))));
    await a.killAgent();
    const ended = await migrationEnded(w.id);
    expect(ended.host_id).toBe(a.name);
    await a.startAgent();
    await expectResumedOn(w.id, a, saved);
    await expectOneCopyOn(w.id, a);
    await cleanUp(w.id, a);
    await hostUp(a);
  }, 900_000);

  it("the target's agent killed mid cold transfer: the move is undone, the VM resumes on the source from its saved memory", async () => {
    const [a, b] = hosts;
    const w = await bootOn(a, b, `${tag}-vm9`);
    await coldTransferTo(w.id, b);
    const saved = Math.max(...ticksIn(consoleText(consoleOn(a, w.id))));
    await b.killAgent();
    const ended = await migrationEnded(w.id);
    expect(ended.host_id).toBe(a.name);
    expect(ended.message).toContain(`migration to ${b.name} failed`);
    await expectResumedOn(w.id, a, saved);
    await b.startAgent();
    await expectOneCopyOn(w.id, a);
    await cleanUp(w.id, a);
    await waitUntil(`${b.name} up again`, async () => (await cluster.api.hosts()).hosts.find((h) => h.id === b.name)?.status === 'up', { timeoutMs: 120_000 });
  }, 900_000);

  it("cancelled while the target's agent is down: the VM stays on the source, and the target's files go once its agent is back", async () => {
    const [a, b] = hosts;
    const w = await bootOn(a, b, `${tag}-vm10`);
    await migratingTo(w.id, b, 1);
    await b.killAgent();
    await waitUntil(`${b.name} down`, async () => (await cluster.api.hosts()).hosts.find((h) => h.id === b.name)?.status === 'down', { timeoutMs: 60_000 });
    const cancel = await cli('workload', 'migrate', w.id, '--cancel');
    expect(cancel.code, cancel.stderr).toBe(0);
    const ended = await migrationEnded(w.id);
    expect([ended.host_id, ended.state]).toEqual([a.name, 'running']);
    // Its prepared files stay on the unreachable target for now ...
    expect(filesOn(b, w.id)).toBe(true);
    await b.startAgent();
    // ... and go once it reports again.
    await waitUntil(`no files of ${w.id} on ${b.name}`, () => Promise.resolve(!filesOn(b, w.id)), { timeoutMs: 60_000 });
    await expectOneCopyOn(w.id, a);
    await expectTicking(w.id, a);
    await cleanUp(w.id, a);
    await waitUntil(`${b.name} up again`, async () => (await cluster.api.hosts()).hosts.find((h) => h.id === b.name)?.status === 'up', { timeoutMs: 120_000 });
  }, 900_000);

  it("moves a container cold: stopped, its writable layer carried, started on the other host, and gone from the first", async () => {
    const [a, b] = hosts;
    await cluster.api.cordon(b.name, true);
    const name = `${tag}-c1`;
    // The first start writes a random value into the container's own layer; every start prints it.
    const script = 'trap "exit 0" TERM; [ -f /state ] || echo "VIRTFLEET-STATE $(head -c 8 /dev/urandom | od -An -tx1 | tr -d " ")" > /state; cat /state; while true; do sleep 1; done';
    const submitted = await cluster.api.submit({ request_id: name, spec: { name, kind: 'container', image: TEST_IMAGE, vcpus: 0.1, memory_mib: 32, command: ['/bin/sh', '-c', script] } });
    await cluster.api.cordon(b.name, false);
    await waitUntil(`${name} running`, async () => (await cluster.api.get(submitted.id)).state === 'running', { timeoutMs: 60_000 });
    const stateOf = async () => {
      const value = /VIRTFLEET-STATE ([0-9a-f]{16})/.exec((await cli('workload', 'logs', submitted.id)).stdout)?.[1];
      return value === undefined ? undefined : { value };
    };
    const before = (await waitFor('its state printed', stateOf, { timeoutMs: 30_000 })).value;

    const migrate = await cli('workload', 'migrate', submitted.id, '--watch');
    expect(migrate.code, migrate.stderr).toBe(0);
    expect(migrate.stdout).toContain(`cold ${a.name} -> ${b.name}`);
    const moved = await cluster.api.get(submitted.id);
    expect([moved.host_id, moved.state, moved.message]).toEqual([b.name, 'running', `migrated cold from ${a.name} to ${b.name}`]);
    // The container on b started from the state carried over: it prints the value written on a.
    expect((await waitFor('its state printed on the target', stateOf, { timeoutMs: 30_000 })).value).toBe(before);
    const containersOf = async (host: SimulatedHost) => (await host.docker.listContainers({ all: true })).filter((c) => c.Names.some((n) => n.endsWith(`.${submitted.id}`)));
    expect(await containersOf(a)).toEqual([]);
    expect((await containersOf(b)).map((c) => c.State)).toEqual(['running']);

    await cluster.api.act('DeleteWorkload', { id: submitted.id, request_id: `${name}-delete` });
    await waitUntil('deleted', async () => (await containersOf(b)).length === 0, { timeoutMs: 60_000 });
    // Its state image went with it.
    expect((await b.docker.listImages()).filter((i) => (i.RepoTags ?? []).includes(`virtfleet-state:${submitted.id}`))).toEqual([]);
  }, 300_000);

  it('moves a running VM cold: saved, its disk and memory carried, resumed on the other host where it was', async () => {
    const [a, b] = hosts;
    const w = await bootOn(a, b, `${tag}-vm6`);
    const migrate = await cli('workload', 'migrate', w.id, '--mode', 'cold', '--watch');
    expect(migrate.code, migrate.stderr).toBe(0);
    const before = Math.max(...ticksIn(consoleText(consoleOn(a, w.id))));
    const moved = await cluster.api.get(w.id);
    expect([moved.host_id, moved.state]).toEqual([b.name, 'running']);
    // Resumed, not booted: the ticks go on from where they were on a.
    const after = ticksIn(await waitForConsole(consoleOn(b, w.id), 'VIRTFLEET-TICK', { count: 2, timeoutMs: 60_000 }));
    expect(Math.min(...after)).toBeGreaterThan(before - 2);
    expect(consoleText(consoleOn(b, w.id))).not.toContain('VIRTFLEET-GUEST-READY');
    await expectOneCopyOn(w.id, b);
    // Its disk came along: the next boot is the second it counts.
    await cluster.api.act('StopWorkload', { id: w.id, request_id: `${w.id}-stop`, force: true });
    await waitUntil('stopped', async () => (await cluster.api.get(w.id)).state === 'stopped', { timeoutMs: 60_000 });
    await cluster.api.act('StartWorkload', { id: w.id, request_id: `${w.id}-start` });
    expect(await waitForConsole(consoleOn(b, w.id), 'VIRTFLEET-GUEST-READY', { timeoutMs: GUEST_BOOT_MS })).toContain('VIRTFLEET-BOOTS 2');
    await cleanUp(w.id, b);
  }, 600_000);

  it('drains a host: its VM moves live and its container cold to the other host, and the host ends empty and cordoned', async () => {
    const [a, b] = hosts;
    const vm = await bootOn(a, b, `${tag}-vm7`);
    const before = Math.max(...ticksIn(consoleText(consoleOn(a, vm.id))));
    await cluster.api.cordon(b.name, true);
    const c = await playground.runningOn(
      (await cluster.api.submit({ request_id: `${tag}-c7`, spec: { name: `${tag}-c7`, kind: 'container', image: TEST_IMAGE, vcpus: 0.1, memory_mib: 32, command: ['/bin/sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done'] } })).id,
    );
    await cluster.api.cordon(b.name, false);
    expect(c.host_id).toBe(a.name);

    const drained = await cli('host', 'drain', a.name, '--parallel', '2');
    expect(drained.code, `${drained.stdout}\n${drained.stderr}`).toBe(0);
    for (const id of [vm.id, c.id]) expect((await cluster.api.get(id)).host_id).toBe(b.name);
    expect((await cluster.api.list({ host_id: a.name })).workloads).toEqual([]);
    expect((await cluster.api.hosts()).hosts.find((h) => h.id === a.name)?.cordoned).toBe(true);
    // The VM moved live: its ticks went on.
    expect(Math.min(...ticksIn(await waitForConsole(consoleOn(b, vm.id), 'VIRTFLEET-TICK', { count: 2, timeoutMs: 60_000 })))).toBeGreaterThan(before);

    const undrained = await cli('host', 'undrain', a.name);
    expect(undrained.code, undrained.stderr).toBe(0);
    expect((await cluster.api.hosts()).hosts.find((h) => h.id === a.name)?.cordoned).toBe(false);
    for (const id of [vm.id, c.id]) await cluster.api.act('DeleteWorkload', { id, request_id: `${id}-delete` });
    await waitUntil('deleted', async () => (await domainsOf(b)).filter((d) => d.endsWith(vm.id)).length === 0, { timeoutMs: 60_000 });
  }, 600_000);

  it('consolidates two hosts into one: rebalance plan, then rebalance apply carries the move out', async () => {
    const [a, b] = hosts;
    const sleeper = (name: string) => ({ name, kind: 'container', image: TEST_IMAGE, vcpus: 0.1, memory_mib: 32, command: ['/bin/sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done'] });
    const ids: string[] = [];
    for (const [host, other, name] of [[a, b, `${tag}-r1`], [b, a, `${tag}-r2`]] as const) {
      await cluster.api.cordon(other.name, true);
      ids.push((await playground.runningOn((await cluster.api.submit({ request_id: name, spec: sleeper(name) })).id)).id);
      await cluster.api.cordon(other.name, false);
      expect((await cluster.api.get(ids.at(-1)!)).host_id).toBe(host.name);
    }
    const planned = await cli('rebalance', 'plan', '--goal', 'consolidate', '-o', 'json');
    expect(planned.code, planned.stderr).toBe(0);
    const plan = JSON.parse(planned.stdout) as { hosts_used_before: number; hosts_used_after: number; moves: unknown[] };
    expect([plan.hosts_used_before, plan.hosts_used_after, plan.moves.length]).toEqual([2, 1, 1]);
    const file = join(mkdtempSync(join(tmpdir(), 'vf-plan-')), 'plan.json');
    writeFileSync(file, planned.stdout);
    const applied = await cli('rebalance', 'apply', file);
    expect(applied.code, `${applied.stdout}\n${applied.stderr}`).toBe(0);
    expect(applied.stdout).toContain('1 moved, 0 skipped, 0 failed or not started');
    const where = await Promise.all(ids.map(async (id) => (await cluster.api.get(id)).host_id));
    expect(new Set(where).size).toBe(1);
    // Applied again, the plan finds its workload moved already and changes nothing.
    const again = await cli('rebalance', 'apply', file);
    expect(again.stdout).toContain('0 moved, 1 skipped');
    for (const id of ids) await cluster.api.act('DeleteWorkload', { id, request_id: `${id}-delete` });
  }, 300_000);

  // Last: host a is gone for good afterwards.
  it('the source host lost for good mid-transfer: the move is given up, the target keeps nothing, and once the host is confirmed dead the VM runs on the target alone', async () => {
    const [a, b] = hosts;
    const w = await bootOn(a, b, `${tag}-vm11`);
    await migratingTo(w.id, b, 1);
    await a.down();
    const ended = await migrationEnded(w.id);
    expect(ended.host_id).toBe(a.name);
    const failed = (await retainedEvents(cluster.api)).find((e) => e.subject === w.id && e.type === 'io.virtfleet.workload.migration_failed');
    expect(failed?.data).toMatchObject({ cancelled: false, to_host: b.name, reason: expect.stringContaining(`host ${a.name} went down before the move finished`) });
    await waitUntil(`no files of ${w.id} on ${b.name}`, () => Promise.resolve(!filesOn(b, w.id)), { timeoutMs: 60_000 });
    expect((await domainsOf(b)).filter((d) => d.endsWith(`.${w.id}`))).toEqual([]);
    // A fence-first VM waits for proof that its host is dead; the operator gives it.
    const confirmed = await cli('host', 'confirm-dead', a.name);
    expect(confirmed.code, confirmed.stderr).toBe(0);
    const moved = await playground.runningOn(w.id);
    expect(moved.host_id).toBe(b.name);
    expect((await domainsOf(b)).filter((d) => d.endsWith(`.${w.id}`))).toEqual([`virtfleet-${b.name}.${w.id}`]);
    await cleanUp(w.id, b);
  }, 900_000);

  it('refuses an unknown workload (exit 3) and a bad option (exit 2), naming it', async () => {
    const unknown = await cli('workload', 'migrate', 'no-such-workload');
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain('no-such-workload');
    const bad = await cli('workload', 'migrate', 'x', '--max-downtime', '0');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--max-downtime: must be a whole number from 1 to 60000');
  }, 60_000);
});
