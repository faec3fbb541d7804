import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Kvm } from '@nats-io/kv';
import { Hypervisor } from '@unraid/libvirt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fenceRecordKey, fenceRecordSchema, type FenceRecord } from '@virtfleet/shared';
import { backendName } from '../../packages/agent/src/drivers/driver.js';
import { removeDomains } from '../support/cleanup.js';
import { REAL_DRIVERS, startCluster, TEST_FENCE_TIMEOUT_MS, waitForHostsUp, waitForState, type TestAgent, type TestCluster } from '../support/cluster.js';
import { agentConfigOf, coordinatorConfigOf } from '../support/configs.js';
import { type CopySampler, qemuGuests, runningDomainCopies, type SamplerReport, sampleVmOnTwoHosts, samplingProblems } from '../support/copies.js';
import { waitFor, waitUntil } from '../support/wait.js';

// The fencer process (fencing.fencer.enabled): it holds the host lease apart
// from the agent. A SIGKILLed agent leaves it holding the lease, so the VM
// stays where it runs; after fencing.fencer.agentLossFenceMs it stops the VM,
// records that, and the coordinator moves it with proof. A SIGKILLed fencer
// makes its agent stop the VM and record it. Two agents with different host
// ids share the one libvirtd, so a second copy would be seen by libvirt and in /proc.

const TTL_MS = 3000;
const FENCE_MARGIN_MS = 1000;
const CHECK_MS = 250;
const SAMPLE_MS = 200;
const AGENT_LOSS_FENCE_MS = 20_000;
/** How long agent A stays down, as in the issue's report. */
const DOWN_MS = 60_000;


/** The pid of the agent's fencer, from its pid file, if that process runs and is a fencer. */
function fencerPid(agent: TestAgent): number | undefined {
  const file = join(agent.stateDir, 'fencer.pid');
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('fencer') ? pid : undefined;
  } catch {
    return undefined;
  }
}

const fmt = (r: SamplerReport) => `${r.samples} samples, ${r.errors} errors, max ${r.maxCount}, longest blind ${Math.round(r.longestBlindMs)} ms, timeline ${r.timeline.map((c) => `${Math.round(c.atMs)}ms:${c.count}`).join(' ')}`;

describe('the fencer process: a dead agent, a dead fencer', () => {
  let cluster: TestCluster;
  const hypervisor = new Hypervisor({ uri: 'qemu:///system' });
  const domainNames: string[] = [];
  const samplers: CopySampler[] = [];
  const fencing = { timeoutMs: TEST_FENCE_TIMEOUT_MS, fencer: { enabled: true, agentLossFenceMs: AGENT_LOSS_FENCE_MS, restartDelayMs: 1000 } };

  beforeAll(async () => {
    await hypervisor.connectOpen();
    cluster = await startCluster({
      hostTtlMs: TTL_MS,
      coordinatorExtra: { failover: { fenceMarginMs: FENCE_MARGIN_MS, checkIntervalMs: CHECK_MS } },
    });
  });

  afterAll(async () => {
    for (const s of samplers) await s.stop().catch(() => undefined);
    const agents = cluster?.agents ?? [];
    await cluster?.stop();
    // A fencer whose agent was killed may still run: stop it too.
    for (const a of agents) {
      const pid = fencerPid(a);
      if (pid) process.kill(pid, 'SIGKILL');
    }
    await removeDomains(hypervisor, domainNames);
    await hypervisor.connectClose();
  }, 120_000);

  const readFenceRecord = async (hostId: string): Promise<{ record: FenceRecord; revision: number } | undefined> => {
    const nc = await cluster.nats.connect();
    try {
      const entry = await (await new Kvm(nc).open(coordinatorConfigOf(cluster.coordinator).hosts.leaseBucket)).get(fenceRecordKey(hostId));
      return entry ? { record: fenceRecordSchema.parse(entry.json()), revision: entry.revision } : undefined;
    } finally {
      await nc.close();
    }
  };

  /** A fence-first VM placed on `a` (every other host cordoned meanwhile), and samplers counting its copies through libvirt and /proc, on `a` and on `b`. */
  const vmOn = async (a: TestAgent, b: TestAgent, name: string) => {
    const others = (await cluster.api.hosts()).hosts.map((h) => h.id).filter((id) => id !== a.hostId);
    for (const id of others) await cluster.api.cordon(id, true);
    const vm = await cluster.api.submit({ request_id: name, spec: { name, kind: 'vm', vcpus: 1, memory_mib: 64 } });
    const names = { a: backendName(a.hostId, vm.id), b: backendName(b.hostId, vm.id) };
    domainNames.push(names.a, names.b);
    expect(vm.spec?.failover, 'VMs default to fence-first').toBe('fence-first');
    expect((await waitForState(cluster, vm.id, 'running', 60_000)).host_id).toBe(a.hostId);
    for (const id of others) await cluster.api.cordon(id, false);
    await waitUntil('the VM to run on A, in libvirt and as a QEMU process', async () => (await runningDomainCopies(hypervisor, vm.id)) === 1 && (await qemuGuests()).includes(names.a));
    const { looks, libvirt, procs } = await sampleVmOnTwoHosts(hypervisor, vm.id, names, SAMPLE_MS);
    samplers.push(libvirt, procs);
    return { vm, looks, libvirt, procs };
  };

  it('agent SIGKILLed and left down a minute: the fencer keeps the VM on A, then fences it with a record, and it runs on B; one copy at every sample', async () => {
    const a = await cluster.addAgent({ drivers: REAL_DRIVERS, extra: { fencing } });
    const b = await cluster.addAgent({ drivers: REAL_DRIVERS, extra: { fencing } });
    await waitForHostsUp(cluster);
    expect(agentConfigOf(a.process).fencing.fencer).toMatchObject({ enabled: true, agentLossFenceMs: AGENT_LOSS_FENCE_MS });
    const { vm, looks, libvirt, procs } = await vmOn(a, b, 'fencer-dead-agent');
    const fencer = fencerPid(a);
    expect(fencer, `A's fencer runs\n${a.process.tail()}`).toBeDefined();

    a.process.signal('SIGKILL');
    await a.process.waitExit();
    const killedAt = performance.now();
    // The lease lives on with the fencer: the coordinator sees A down, but its lease has not lapsed.
    const held = await waitFor(
      'the coordinator to say A is down but its lease holds',
      async () => {
        const w = await cluster.api.get(vm.id);
        return w.state === 'unknown' && /lease has not lapsed/.test(w.message) ? { message: w.message, at: performance.now() - killedAt } : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(fencerPid(a), 'the fencer outlived its agent').toBe(fencer);
    // Then the fencer fences (no agent for agentLossFenceMs), records it and exits, and the VM moves to B.
    const moved = await waitFor(
      'the VM to run on B',
      async () => {
        const w = await cluster.api.get(vm.id);
        return w.host_id === b.hostId && w.state === 'running' ? { message: w.message, at: performance.now() - killedAt } : undefined;
      },
      { timeoutMs: AGENT_LOSS_FENCE_MS + 40_000, intervalMs: 200 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${cluster.logs()}`);
    });
    await waitUntil(`agent A to have been down for ${DOWN_MS} ms`, () => performance.now() - killedAt >= DOWN_MS, { timeoutMs: DOWN_MS + 10_000, intervalMs: 500 });
    const reports = { libvirt: await libvirt.stop(), procs: await procs.stop() };
    const proof = await readFenceRecord(a.hostId);
    const goneFromA = looks.find((l) => l.onA === 0);
    const firstOnB = looks.find((l) => l.onB > 0);
    console.log(
      [
        `agent A SIGKILLed, left down ${DOWN_MS} ms; fencer pid ${fencer}, agentLossFenceMs ${AGENT_LOSS_FENCE_MS} (fence timeout ${TEST_FENCE_TIMEOUT_MS} ms, margin ${FENCE_MARGIN_MS} ms, TTL ${TTL_MS} ms), ms after the kill:`,
        `  held on A at ${Math.round(held.at)}: "${held.message}"`,
        `  gone from A at ${goneFromA ? Math.round(goneFromA.at - killedAt) : '-'}, first seen on B at ${firstOnB ? Math.round(firstOnB.at - killedAt) : '-'}, running on B (coordinator) at ${Math.round(moved.at)}: "${moved.message}"`,
        `  fence record: ${JSON.stringify(proof?.record)}`,
        `  libvirt: ${fmt(reports.libvirt)}`,
        `  /proc: ${fmt(reports.procs)}`,
      ].join('\n'),
    );
    for (const [name, r] of Object.entries(reports)) {
      expect(samplingProblems(r, SAMPLE_MS, { maxBlindMs: 3000 }), `${name}: the sampler watched throughout`).toEqual([]);
      expect(r.maxCount, `${name}: never two copies; ${fmt(r)}`).toBe(1);
    }
    expect(goneFromA && firstOnB && goneFromA.at < firstOnB.at, 'stopped on A before it started on B').toBe(true);
    expect(goneFromA!.at - killedAt, 'A kept its copy until the fencer gave up on its agent').toBeGreaterThanOrEqual(AGENT_LOSS_FENCE_MS);
    expect(looks.at(-1)).toMatchObject({ onA: 0, onB: 1 });
    expect(proof?.record).toMatchObject({ host_id: a.hostId, workloads: [vm.id] });
    expect(proof?.record.reason).toMatch(/no agent for/);
    expect(fencerPid(a), 'the fencer exited after recording').toBeUndefined();
  });

  it('fencer SIGKILLed: the agent stops the VM, records it and starts a new fencer; the VM runs again, one copy at every sample', async () => {
    const a = await cluster.addAgent({ drivers: REAL_DRIVERS, extra: { fencing } });
    const b = await cluster.addAgent({ drivers: REAL_DRIVERS, extra: { fencing } });
    // The first test's agent A stays down: wait for these two only.
    await waitUntil('the new hosts to be up', async () => {
      const { hosts } = await cluster.api.hosts();
      return [a, b].every((x) => hosts.some((h) => h.id === x.hostId && h.status === 'up'));
    });
    const { vm, looks, libvirt, procs } = await vmOn(a, b, 'fencer-killed');
    const before = await readFenceRecord(a.hostId);
    const fencer = fencerPid(a);
    expect(fencer, `A's fencer runs\n${a.process.tail()}`).toBeDefined();

    process.kill(fencer!, 'SIGKILL');
    const killedAt = performance.now();
    await waitUntil('the VM to be stopped', () => looks.some((l) => l.at > killedAt && l.onA === 0 && l.onB === 0), { timeoutMs: 30_000 });
    const stoppedAt = looks.find((l) => l.at > killedAt && l.onA === 0)!.at;
    const proof = await waitFor('the fence record', async () => {
      const r = await readFenceRecord(a.hostId);
      return r && r.revision !== before?.revision ? r : undefined;
    }, { timeoutMs: 10_000 });
    const { pid: restarted } = await waitFor('a new fencer', () => {
      const pid = fencerPid(a);
      return Promise.resolve(pid && pid !== fencer ? { pid } : undefined);
    }, { timeoutMs: 20_000 });
    const running = await waitFor(
      'the VM to run again',
      async () => {
        const w = await cluster.api.get(vm.id);
        const last = looks.at(-1);
        return w.state === 'running' && last && last.onA + last.onB === 1 ? w : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${cluster.logs()}`);
    });
    const samplesNow = procs.progress().samples;
    await waitUntil('a few more samples', () => procs.progress().samples >= samplesNow + 10);
    const reports = { libvirt: await libvirt.stop(), procs: await procs.stop() };
    console.log(
      [
        `fencer ${fencer} SIGKILLed: VM stopped ${Math.round(stoppedAt - killedAt)} ms later; new fencer ${restarted}; running again on ${running.host_id === a.hostId ? 'A' : 'B'} (${running.message})`,
        `  fence record: ${JSON.stringify(proof.record)}`,
        `  libvirt: ${fmt(reports.libvirt)}`,
        `  /proc: ${fmt(reports.procs)}`,
      ].join('\n'),
    );
    for (const [name, r] of Object.entries(reports)) {
      expect(samplingProblems(r, SAMPLE_MS, { maxBlindMs: 3000 }), `${name}: the sampler watched throughout`).toEqual([]);
      expect(r.maxCount, `${name}: never two copies; ${fmt(r)}`).toBe(1);
    }
    expect(proof.record).toMatchObject({ host_id: a.hostId, workloads: [vm.id] });
    expect(proof.record.reason).toMatch(/fencer exited/);
    expect(a.process.running, 'the agent lives on').toBe(true);
  });
});
