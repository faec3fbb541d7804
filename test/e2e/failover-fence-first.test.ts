import { performance } from 'node:perf_hooks';
import { Kvm } from '@nats-io/kv';
import { ConnectListAllDomainsFlags, Hypervisor } from '@unraid/libvirt';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostLeaseKey, hostLeaseSchema } from '@virtfleet/shared';
import { backendName } from '../../packages/agent/src/drivers/driver.js';
import { DOCKER_LABELS } from '../../packages/agent/src/drivers/docker/docker-driver.js';
import { parseOwnership } from '../../packages/agent/src/drivers/libvirt/domain-xml.js';
import { removeContainersOf, removeDomains } from '../support/cleanup.js';
import { REAL_DRIVERS, startCluster, waitForHostsUp, waitForState, type TestAgent, type TestCluster } from '../support/cluster.js';
import { agentConfigOf, coordinatorConfigOf } from '../support/configs.js';
import type { NatsUsers } from '../support/nats-server.js';
import { CopySampler, qemuGuests, runningContainerCopies, runningDomainCopies, type SamplerReport } from '../support/copies.js';
import { waitFor, waitUntil } from '../support/wait.js';
import { retainedEvents, sleeperContainer } from '../support/workloads.js';

// Fence-first failover with real processes, real Docker and real qemu:///system
// domains: a host cut off from NATS and the coordinator stops its own copies,
// and the coordinator starts new ones elsewhere only on proof (its fence record,
// which cannot get out while it is cut off, or an operator's confirm-dead); a
// frozen host's workloads move only once an operator confirms it dead.

const TTL_MS = 3000;
const FENCE_MARGIN_MS = 1000;
const CHECK_MS = 250;

const docker = new Docker({ socketPath: '/var/run/docker.sock' });

/** Domains of `workloadId` owned by `hostId`, defined or running (by default every domain, shut off ones included). */
async function domainsOf(hypervisor: Hypervisor, workloadId: string, hostId: string, flags?: ConnectListAllDomainsFlags): Promise<string[]> {
  const domains = await hypervisor.connectListAllDomains(flags);
  const owned = await Promise.all(
    domains.map(async (domain) => {
      try {
        const owner = await parseOwnership(await hypervisor.domainGetXMLDesc(domain));
        return owner?.workloadId === workloadId && owner.hostId === hostId ? await hypervisor.domainGetName(domain) : undefined;
      } catch {
        return undefined; // undefined between the listing and the lookup
      }
    }),
  );
  return owned.filter((n): n is string => n !== undefined);
}

/** Containers of `workloadId` (labelled as owned by `hostId` when given), in any state unless `runningOnly`. */
async function containersOf(workloadId: string, hostId: string | undefined, runningOnly = false): Promise<Docker.ContainerInfo[]> {
  const label = [`${DOCKER_LABELS.workload}=${workloadId}`, ...(hostId ? [`${DOCKER_LABELS.host}=${hostId}`] : [])];
  const list = await docker.listContainers({ all: true, filters: { label } });
  return runningOnly ? list.filter((c) => c.State === 'running' || c.State === 'paused') : list;
}

/**
 * Names of the QEMU processes running now, from their `-name guest=NAME,` argument.
 * Read from /proc, so it never waits on libvirtd, whose own answers stall for
 * a second or more while a domain is being destroyed or started.
 */

/** One look at both hosts: copies on A and on B, with when the look began and ended (ms on the performance clock). */
interface Look {
  startedAt: number;
  endedAt: number;
  onA: number;
  onB: number;
}

/**
 * A probe for a CopySampler that returns the total and records each look per host,
 * so the order of "gone from A" and "running on B" can be read off afterwards.
 */
function perHostProbe(count: () => Promise<{ onA: number; onB: number }>, looks: Look[]): () => Promise<number> {
  return async () => {
    const startedAt = performance.now();
    const { onA, onB } = await count();
    looks.push({ startedAt, endedAt: performance.now(), onA, onB });
    return onA + onB;
  };
}

/**
 * From looks that go A-only, then none, then B-only: when the copy on A was
 * seen gone first (end of that look), when the copy on B was seen first
 * (start of that look), and whether some single look saw neither in between.
 */
function handover(looks: readonly Look[]): { lastAliveOnA?: number; goneFromA?: number; seenOnB?: number; emptyLooks: number } {
  const firstGone = looks.find((l, i) => l.onA === 0 && looks.slice(0, i).some((p) => p.onA > 0));
  const lastAlive = looks.findLast((l) => l.onA > 0);
  const firstOnB = looks.find((l) => l.onB > 0);
  const emptyLooks = looks.filter((l) => l.onA === 0 && l.onB === 0 && firstGone && firstOnB && l.startedAt >= firstGone.startedAt && l.startedAt < firstOnB.startedAt).length;
  return {
    // A look that saw the copy proves it alive at some instant after the look began.
    ...(lastAlive ? { lastAliveOnA: lastAlive.startedAt } : {}),
    // A look that saw none proves it gone by the time the look ended.
    ...(firstGone ? { goneFromA: firstGone.endedAt } : {}),
    ...(firstOnB ? { seenOnB: firstOnB.startedAt } : {}),
    emptyLooks,
  };
}

/** Log lines of a process, parsed (pino JSON), with the wall-clock time each was written. */
function logLines(output: readonly string[]): { time: number; msg: string; line: Record<string, unknown> }[] {
  return output
    .join('')
    .split('\n')
    .flatMap((l) => {
      try {
        const line = JSON.parse(l) as Record<string, unknown>;
        return typeof line.time === 'number' && typeof line.msg === 'string' ? [{ time: line.time, msg: line.msg, line }] : [];
      } catch {
        return [];
      }
    });
}

/**
 * Every host-lease renewal of `hostId` stored in NATS, read over the test's own
 * connection (not through the host's proxy), with when the agent sent it
 * (its `renewed_at`; one machine, one wall clock).
 */
async function leaseRenewals(nats: NatsUsers, bucket: string, hostId: string): Promise<{ sentAt: number[]; stop(): Promise<void> }> {
  const nc = await nats.connect();
  const watch = await (await new Kvm(nc).open(bucket)).watch({ key: hostLeaseKey(hostId) });
  const sentAt: number[] = [];
  void (async () => {
    for await (const e of watch) {
      const parsed = e.operation === 'PUT' ? hostLeaseSchema.safeParse(e.json()) : undefined;
      if (parsed?.success) sentAt.push(Date.parse(parsed.data.renewed_at));
    }
  })();
  return {
    sentAt,
    async stop() {
      watch.stop();
      await nc.close();
    },
  };
}

/** A sampler started now, with its start on the same clock as the test's own marks. */
function startSampler(probe: () => Promise<number>): { sampler: CopySampler; startedAt: number; gaps: { maxGapMs: number; maxProbeMs: number; probes: number } } {
  // The sampler stamps each sample with when its probe started: a slow probe is a blind spot, so track the widest one.
  const gaps = { maxGapMs: 0, maxProbeMs: 0, probes: 0 };
  let lastStart: number | undefined;
  const timed = async () => {
    const t0 = performance.now();
    if (lastStart !== undefined) gaps.maxGapMs = Math.max(gaps.maxGapMs, t0 - lastStart);
    lastStart = t0;
    try {
      return await probe();
    } finally {
      gaps.maxProbeMs = Math.max(gaps.maxProbeMs, performance.now() - t0);
      gaps.probes += 1;
    }
  };
  const sampler = new CopySampler(timed, 100);
  const startedAt = performance.now();
  sampler.start();
  return { sampler, startedAt, gaps };
}

describe('fence-first failover: a host cut off from NATS and the coordinator', () => {
  let cluster: TestCluster;
  let a: TestAgent;
  let b: TestAgent;
  const hypervisor = new Hypervisor({ uri: 'qemu:///system' });
  const domainNames: string[] = [];
  const samplers: CopySampler[] = [];

  beforeAll(async () => {
    await hypervisor.connectOpen();
    cluster = await startCluster({
      hostTtlMs: TTL_MS,
      agents: [{ proxied: true, drivers: REAL_DRIVERS }, { drivers: REAL_DRIVERS }],
      coordinatorExtra: { failover: { fenceMarginMs: FENCE_MARGIN_MS, checkIntervalMs: CHECK_MS } },
    });
    [a, b] = [cluster.agents[0]!, cluster.agents[1]!];
    await waitForHostsUp(cluster);
  });

  afterAll(async () => {
    for (const s of samplers) await s.stop().catch(() => undefined);
    a?.proxies?.nats.restore();
    a?.proxies?.grpc.restore();
    const hostIds = cluster?.agents.map((x) => x.hostId) ?? [];
    await cluster?.stop();
    await removeContainersOf(hostIds);
    await removeDomains(hypervisor, domainNames);
    await hypervisor.connectClose();
  }, 120_000);

  it('stops the copies on the cut-off host, starts them on another only on proof (confirm-dead), never running two, and cleans up when it returns', async () => {
    // The timings that bound the hand-over, as the daemons were configured.
    const coordinatorConfig = coordinatorConfigOf(cluster.coordinator);
    const fenceTimeoutMs = agentConfigOf(a.process).fencing.timeoutMs;
    const { fenceMarginMs } = coordinatorConfig.failover;
    const renewals = await leaseRenewals(cluster.nats, coordinatorConfig.hosts.leaseBucket, a.hostId);
    // Place both on A: B is cordoned until they run.
    await cluster.api.cordon(b.hostId, true);
    const vm = await cluster.api.submit({ request_id: 'ff-vm', spec: { name: 'ff-vm', kind: 'vm', vcpus: 1, memory_mib: 64 } });
    const ctr = await cluster.api.submit({
      request_id: 'ff-ctr',
      spec: sleeperContainer('ff-ctr', { failover: 'fence-first' }),
    });
    domainNames.push(backendName(a.hostId, vm.id), backendName(b.hostId, vm.id));
    expect(vm.spec?.failover, 'VMs default to fence-first').toBe('fence-first');
    expect(ctr.spec?.failover).toBe('fence-first');
    const vmRunning = await waitForState(cluster, vm.id, 'running', 60_000);
    const ctrRunning = await waitForState(cluster, ctr.id, 'running', 30_000);
    expect([vmRunning.host_id, ctrRunning.host_id]).toEqual([a.hostId, a.hostId]);
    await cluster.api.cordon(b.hostId, false);
    await waitUntil('exactly one copy of each in libvirt and Docker', async () =>
      (await runningDomainCopies(hypervisor, vm.id)) === 1 && (await runningContainerCopies(ctr.id)) === 1 && (await qemuGuests()).includes(backendName(a.hostId, vm.id)),
    );

    // Copies as libvirt and Docker count them (test/support/copies.ts)...
    const total = { vm: startSampler(() => runningDomainCopies(hypervisor, vm.id)), ctr: startSampler(() => runningContainerCopies(ctr.id)) };
    // ...and per host, in one look each: QEMU processes from /proc (libvirt stalls during a destroy or a start), containers from Docker.
    const looks: Record<'vm' | 'ctr', Look[]> = { vm: [], ctr: [] };
    const vmNames = { a: backendName(a.hostId, vm.id), b: backendName(b.hostId, vm.id) };
    const perHost = {
      vm: startSampler(
        perHostProbe(async () => {
          const guests = await qemuGuests();
          return { onA: guests.filter((n) => n === vmNames.a).length, onB: guests.filter((n) => n === vmNames.b).length };
        }, looks.vm),
      ),
      ctr: startSampler(
        perHostProbe(async () => {
          const live = await containersOf(ctr.id, undefined, true);
          return { onA: live.filter((c) => c.Labels[DOCKER_LABELS.host] === a.hostId).length, onB: live.filter((c) => c.Labels[DOCKER_LABELS.host] === b.hostId).length };
        }, looks.ctr),
      ),
    };
    samplers.push(total.vm.sampler, total.ctr.sampler, perHost.vm.sampler, perHost.ctr.sampler);
    const allGaps = [total.vm.gaps, total.ctr.gaps, perHost.vm.gaps, perHost.ctr.gaps];
    const probesTaken = (n: number) => waitUntil(`every sampler to take ${n} samples`, () => allGaps.every((g) => g.probes >= n), { timeoutMs: 60_000 });
    await probesTaken(5); // a baseline of samples with one copy each
    await waitUntil('A to renew its host lease', () => renewals.sentAt.length >= 2, { timeoutMs: 10 * fenceTimeoutMs });

    a.proxies!.nats.cut();
    a.proxies!.grpc.cut();
    const cutAt = performance.now();
    const cutWall = Date.now();

    // A stops its copies itself, but cut off it cannot store the fence record that proves it: a lapsed lease
    // looks the same as a dead agent's, so the coordinator moves nothing and says why. The message is written
    // by the lost-host check from the lease monitor's verdict after the lease lapsed, so that check has run.
    const waiting = await waitFor(
      'both workloads to wait for proof of fencing, with A stopped',
      async () => {
        const [vmNow, ctrNow] = await Promise.all([cluster.api.get(vm.id), cluster.api.get(ctr.id)]);
        const lastLook = (k: 'vm' | 'ctr') => looks[k].at(-1);
        const waitingNow = [vmNow, ctrNow].every((w) => w.host_id === a.hostId && w.state === 'unknown' && /recorded no fencing since its last renewal/.test(w.message));
        return waitingNow && lastLook('vm')?.onA === 0 && lastLook('ctr')?.onA === 0 ? { vm: vmNow, ctr: ctrNow, at: performance.now() } : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${cluster.logs()}`);
    });
    // Two more lost-host check intervals: still nothing placed on B.
    const probesNow = Math.max(...allGaps.map((g) => g.probes));
    await waitUntil('two more check intervals', () => performance.now() - waiting.at > 2 * CHECK_MS + 500 && allGaps.every((g) => g.probes > probesNow));
    expect((await cluster.api.get(vm.id)).host_id, 'vm: not moved without proof').toBe(a.hostId);
    expect((await cluster.api.get(ctr.id)).host_id, 'ctr: not moved without proof').toBe(a.hostId);
    expect(looks.vm.some((l) => l.onB > 0) || looks.ctr.some((l) => l.onB > 0), 'nothing started on B without proof').toBe(false);
    // The operator, who can see A cut off and its copies stopped, confirms it dead.
    const confirmed = await cluster.cli('host', 'confirm-dead', a.hostId);
    expect(confirmed.code, confirmed.stderr).toBe(0);
    const confirmedAt = performance.now();

    // The coordinator's view, polled: when A is down, when each workload leaves A, lands on B, runs there.
    const marks = new Map<string, number>();
    const mark = (what: string) => {
      if (!marks.has(what)) marks.set(what, Math.round(performance.now() - cutAt));
    };
    await waitUntil(
      'both workloads to run on B',
      async () => {
        const [{ hosts }, vmNow, ctrNow] = await Promise.all([cluster.api.hosts(), cluster.api.get(vm.id), cluster.api.get(ctr.id)]);
        if (hosts.find((h) => h.id === a.hostId)?.status === 'down') mark('A down');
        for (const [key, w] of [['vm', vmNow], ['ctr', ctrNow]] as const) {
          if (w.host_id !== a.hostId) mark(`${key} rescheduled`);
          if (w.host_id === b.hostId) mark(`${key} placed on B`);
          if (w.host_id === b.hostId && w.state === 'running') mark(`${key} running on B (coordinator)`);
        }
        return marks.has('vm running on B (coordinator)') && marks.has('ctr running on B (coordinator)');
      },
      { timeoutMs: 60_000, intervalMs: 50 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${cluster.logs()}`);
    });
    await waitUntil('libvirt and Docker to show the copies on B', async () => (await domainsOf(hypervisor, vm.id, b.hostId, ConnectListAllDomainsFlags.ACTIVE)).length === 1 && (await containersOf(ctr.id, b.hostId, true)).length === 1, { timeoutMs: 30_000 });
    // Keep sampling a little after the move.
    const probesAfterMove = Math.max(...allGaps.map((g) => g.probes)) + 5;
    await probesTaken(probesAfterMove);
    await renewals.stop();

    const reports = {
      total: { vm: await total.vm.sampler.stop(), ctr: await total.ctr.sampler.stop() },
      perHost: { vm: await perHost.vm.sampler.stop(), ctr: await perHost.ctr.sampler.stop() },
    };
    const sinceCut = (at: number | undefined) => (at === undefined ? undefined : Math.round(at - cutAt));
    // A's renewals that reached NATS before the cut. All but perhaps the last were acknowledged, since A sends one only after the one before it completed.
    const stored = renewals.sentAt.filter((t) => t <= cutWall);
    const lastRenewal = stored.at(-1)!;
    const lastConfirmedAtLeast = stored.at(-2)!;
    /** A time on the test's performance clock, on the wall clock of the renewals. */
    const wall = (at: number) => cutWall + (at - cutAt);
    const moves = { vm: handover(looks.vm), ctr: handover(looks.ctr) };
    // The agents' own account, from their logs: when A fenced itself, when B was asked to create each copy.
    const fenceLog = logLines(a.process.output).filter((l) => l.time >= cutWall && /fenc/.test(l.msg));
    const fencedAt = fenceLog.find((l) => /^fenced/.test(l.msg))?.time;
    const fmtReport = (r: SamplerReport) => `${r.samples} samples, ${r.errors} errors, max ${r.maxCount}, timeline ${r.timeline.map((c) => `${Math.round(c.atMs)}ms:${c.count}`).join(' ')}`;
    const fmtGaps = (g: { maxGapMs: number; maxProbeMs: number }) => `widest gap between samples ${Math.round(g.maxGapMs)} ms, slowest probe ${Math.round(g.maxProbeMs)} ms`;
    console.log(
      [
        `fence-first failover after cutting host A off (fence timeout ${fenceTimeoutMs} ms, margin ${fenceMarginMs} ms, TTL ${coordinatorConfig.hosts.ttlMs} ms), ms after the cut:`,
        `  A's lease renewals stored in NATS: ${stored.length} before the cut, the last ${cutWall - lastRenewal} ms before it, ${renewals.sentAt.length - stored.length} after it`,
        `  agent A: ${fenceLog.map((l) => `${l.time - cutWall} ${l.msg} ${JSON.stringify({ reason: l.line.reason, stopped: l.line.stopped, failed: l.line.failed })}`).join('; ') || '(no fencing logged)'}`,
        `  coordinator: waiting for proof by ${Math.round(waiting.at - cutAt)} ("${waiting.vm.message}"), confirm-dead at ${Math.round(confirmedAt - cutAt)}; ${[...marks].map(([k, v]) => `${k} ${v}`).join(', ')}`,
        ...(['vm', 'ctr'] as const).map(
          (k) => `  ${k}: last seen on A at ${sinceCut(moves[k].lastAliveOnA)}, gone from A by ${sinceCut(moves[k].goneFromA)}, first seen on B at ${sinceCut(moves[k].seenOnB)}, ${moves[k].emptyLooks} look(s) in between saw no copy anywhere`,
        ),
        ...(['vm', 'ctr'] as const).map((k) => `  sampler total/${k} (${k === 'vm' ? 'runningDomainCopies' : 'runningContainerCopies'}): ${fmtReport(reports.total[k])}; ${fmtGaps(total[k].gaps)}`),
        ...(['vm', 'ctr'] as const).map((k) => `  sampler per-host/${k} (${k === 'vm' ? 'QEMU processes' : 'Docker'}): ${fmtReport(reports.perHost[k])}; ${fmtGaps(perHost[k].gaps)}`),
      ].join('\n'),
    );

    for (const key of ['vm', 'ctr'] as const) {
      for (const r of [reports.total[key], reports.perHost[key]]) {
        expect(r.maxCount, `${key}: never two copies at once; ${fmtReport(r)}`).toBe(1);
        expect(r.firstDuplicateAtMs).toBeUndefined();
        expect(r.errors, `${key}: ${r.lastError}`).toBeLessThan(r.samples / 10 + 1);
        expect(r.timeline[0]?.count).toBe(1);
        expect(r.timeline.at(-1)?.count).toBe(1);
      }
      // libvirt's own count may miss the gap while libvirtd stalls; QEMU processes and Docker must show it.
      expect(reports.perHost[key].timeline.map((c) => c.count), `${key}: one copy, then none, then one`).toEqual([1, 0, 1]);
      const m = moves[key];
      expect(m.goneFromA, `${key} stopped on A`).toBeDefined();
      expect(m.seenOnB, `${key} started on B`).toBeDefined();
      expect(m.emptyLooks, `${key}: some look saw no copy at all between A's and B's`).toBeGreaterThan(0);
      expect(m.goneFromA!, `${key}: stopped on A before it started on B`).toBeLessThan(m.seenOnB!);
      // A fences itself once no renewal has been confirmed for the fence timeout: not before...
      expect(wall(m.goneFromA!) - lastConfirmedAtLeast, `${key}: not stopped on A before its lease could lapse`).toBeGreaterThanOrEqual(fenceTimeoutMs);
      // ...and its copy is gone before the coordinator may deem it fenced, which is the fence timeout and margin after it saw the last renewal, no earlier than A sent it.
      expect(wall(m.lastAliveOnA!) - lastRenewal, `${key}: not seen on A once the coordinator may deem A fenced`).toBeLessThan(fenceTimeoutMs + fenceMarginMs);
      // The coordinator moves it only on proof: here the operator's confirm-dead, after the lease had lapsed.
      expect(cutWall + marks.get(`${key} rescheduled`)! - lastRenewal, `${key}: rescheduled only after the fence timeout and margin`).toBeGreaterThanOrEqual(fenceTimeoutMs + fenceMarginMs);
      expect(marks.get(`${key} rescheduled`)!, `${key}: rescheduled only after confirm-dead`).toBeGreaterThanOrEqual(Math.floor(confirmedAt - cutAt));
      expect(looks[key].at(-1), `${key}: on B only at the end`).toMatchObject({ onA: 0, onB: 1 });
    }
    // A logs its fencing once every stop returned (libvirt's destroy may return well after QEMU exited).
    expect(fencedAt, `A logged its fencing\n${a.process.tail(60)}`).toBeDefined();
    expect(fenceLog.find((l) => /^fenced/.test(l.msg))!.line).toMatchObject({ stopped: 2, failed: 0 });
    expect((await cluster.api.get(vm.id)).host_id).toBe(b.hostId);
    expect((await cluster.api.get(ctr.id)).host_id).toBe(b.hostId);
    // A's stopped copies are still there, as libvirt and Docker see them, until A is reachable again.
    expect(await domainsOf(hypervisor, vm.id, a.hostId)).toEqual([vmNames.a]);
    expect(await containersOf(ctr.id, a.hostId)).toHaveLength(1);

    // Heal the partition: A comes back as recovering, its stale copies are deleted, then it is up again.
    const eventsBefore = (await retainedEvents(cluster.api)).length;
    a.proxies!.nats.restore();
    a.proxies!.grpc.restore();
    const restoredAt = performance.now();
    await waitUntil(
      "A's stale copies to be deleted and A up",
      async () => {
        const host = (await cluster.api.hosts()).hosts.find((h) => h.id === a.hostId);
        return host?.status === 'up' && (await domainsOf(hypervisor, vm.id, a.hostId)).length === 0 && (await containersOf(ctr.id, a.hostId)).length === 0;
      },
      { timeoutMs: 45_000 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${cluster.logs()}`);
    });
    const recoveredMs = Math.round(performance.now() - restoredAt);
    const after = (await retainedEvents(cluster.api)).slice(eventsBefore);
    const aStatus = after.filter((e) => e.subject === a.hostId && e.type.startsWith('io.virtfleet.host.')).map((e) => e.type.slice('io.virtfleet.host.'.length));
    const drift = after.filter((e) => e.type === 'io.virtfleet.workload.drift' && e.data.host_id === a.hostId);
    console.log(`after restoring A: up again and clean ${recoveredMs} ms later; A's status events: ${aStatus.join(' → ')}; drift on A: ${drift.map((e) => `${e.subject} ${String(e.data.drift)} → ${String(e.data.repair)}`).join(', ')}`);
    expect(aStatus, 'A returned through recovering').toEqual(['recovering', 'up']);
    expect(drift.map((e) => [e.subject, e.data.drift, e.data.repair]).sort()).toEqual(
      [
        [ctr.id, 'extra', 'delete'],
        [vm.id, 'extra', 'delete'],
      ].sort(),
    );
    const upSeq = after.find((e) => e.subject === a.hostId && e.type === 'io.virtfleet.host.up')!.sequence;
    expect(drift.every((e) => e.sequence < upSeq), 'schedulable only after the stale copies were removed').toBe(true);

    // Still exactly one running copy of each, on B.
    expect(await runningDomainCopies(hypervisor, vm.id)).toBe(1);
    expect(await runningContainerCopies(ctr.id)).toBe(1);
    expect(await domainsOf(hypervisor, vm.id, b.hostId, ConnectListAllDomainsFlags.ACTIVE)).toEqual([vmNames.b]);
    expect(await containersOf(ctr.id, b.hostId, true)).toHaveLength(1);
    const [vmEnd, ctrEnd] = await Promise.all([cluster.api.get(vm.id), cluster.api.get(ctr.id)]);
    expect([vmEnd.host_id, vmEnd.state, ctrEnd.host_id, ctrEnd.state]).toEqual([b.hostId, 'running', b.hostId, 'running']);
  });
});

describe('confirm-dead: a frozen host whose lease will not lapse soon', () => {
  let cluster: TestCluster;
  let frozen: TestAgent;
  let other: TestAgent;
  const cli = (...args: string[]) => cluster.cli(...args);

  beforeAll(async () => {
    cluster = await startCluster({
      hostTtlMs: TTL_MS,
      agents: [{ drivers: { docker: { enabled: true } }, extra: { fencing: { timeoutMs: 600_000 } } }],
      coordinatorExtra: { failover: { fenceMarginMs: FENCE_MARGIN_MS, checkIntervalMs: CHECK_MS } },
    });
    frozen = cluster.agents[0]!;
    await waitForHostsUp(cluster);
  });

  afterAll(async () => {
    frozen?.process.signal('SIGCONT');
    const hostIds = cluster?.agents.map((x) => x.hostId) ?? [];
    await cluster?.stop();
    await removeContainersOf(hostIds);
  }, 60_000);

  it('refuses a host that is up, and rejects unknown and invalid host ids', async () => {
    const up = await cli('host', 'confirm-dead', frozen.hostId);
    expect(up.code, up.stderr).toBe(5);
    expect(up.stderr).toMatch(new RegExp(`host ${frozen.hostId} is up\\b.*not dead`));

    const unknown = await cli('host', 'confirm-dead', 'no-such-host');
    expect(unknown.code, unknown.stderr).toBe(3);
    expect(unknown.stderr).toMatch(/no-such-host.*not found/);

    const invalid = await cli('host', 'confirm-dead', 'bad host!');
    expect(invalid.code, invalid.stderr).toBe(2);
    expect(invalid.stderr).toMatch(/host_id/);
  });

  it('keeps a fence-first workload on a frozen host until an operator confirms it dead, then moves it at once', async () => {
    const w = await cluster.api.submit({
      request_id: 'cd-ctr',
      spec: sleeperContainer('cd-ctr', { failover: 'fence-first' }),
    });
    // A control beside it: a reschedule workload, which moves once the host has been down for the grace.
    const control = await cluster.api.submit({ request_id: 'cd-control', spec: sleeperContainer('cd-control') });
    expect(control.spec?.failover, 'containers default to reschedule').toBe('reschedule');
    expect((await waitForState(cluster, w.id, 'running')).host_id).toBe(frozen.hostId);
    expect((await waitForState(cluster, control.id, 'running')).host_id).toBe(frozen.hostId);
    other = await cluster.addAgent({ drivers: { docker: { enabled: true } } });
    await waitForHostsUp(cluster);

    frozen.process.signal('SIGSTOP');
    const stoppedAt = performance.now();
    await waitUntil('the frozen host to be down', async () => (await cluster.api.hosts()).hosts.find((h) => h.id === frozen.hostId)?.status === 'down', { timeoutMs: TTL_MS + 5000, intervalMs: 50 });
    const downMs = Math.round(performance.now() - stoppedAt);

    // Its lease has about ten minutes to run: the workload stays put, saying why.
    const held = await waitFor('the workload to say it waits for fencing', async () => {
      const now = await cluster.api.get(w.id);
      return now.host_id === frozen.hostId && /fence/.test(now.message) ? now : undefined;
    }, { timeoutMs: 5000 });
    // The lost-host checks have run past the TTL and the grace once the control has moved; the fence-first workload has not.
    await waitFor('the reschedule control to run on the other host', async () => {
      const now = await cluster.api.get(control.id);
      return now.host_id === other.hostId && now.state === 'running' ? now : undefined;
    }, { timeoutMs: 30_000 }).catch((err: Error) => {
      throw new Error(`${err.message}\n${cluster.logs()}`);
    });
    const stayed = await cluster.api.get(w.id);
    expect(stayed.host_id, `not rescheduled while the host may still run it: ${stayed.message}`).toBe(frozen.hostId);
    expect(stayed.state).toBe('unknown');
    expect(stayed.message).toMatch(/fence/);
    expect(await runningContainerCopies(w.id), 'the frozen host still runs its copy').toBe(1);

    const confirmed = await cli('host', 'confirm-dead', frozen.hostId);
    const confirmedAt = performance.now();
    expect(confirmed.code, confirmed.stderr).toBe(0);
    expect(confirmed.stdout.trim()).toBe(`${frozen.hostId} confirmed dead; 1 fence-first workload(s) will be placed elsewhere`);
    const moved = await waitFor('the workload to run on the other host', async () => {
      const now = await cluster.api.get(w.id);
      return now.host_id === other.hostId && now.state === 'running' ? now : undefined;
    }, { timeoutMs: 15_000, intervalMs: 50 }).catch((err: Error) => {
      throw new Error(`${err.message}\n${cluster.logs()}`);
    });
    const movedMs = Math.round(performance.now() - confirmedAt);
    expect((await containersOf(w.id, other.hostId, true)).length).toBe(1);
    console.log(`confirm-dead: host down ${downMs} ms after SIGSTOP; waiting message: "${held.message}"; running on the other host ${movedMs} ms after confirm-dead (${moved.message})`);
    expect(movedMs, 'moved at once').toBeLessThan(10_000);

    // The operator vouched wrongly here: the host was only frozen. When it thaws, reconciliation removes its copy.
    frozen.process.signal('SIGCONT');
    await waitUntil('the thawed host to be up and its copies gone', async () =>
      (await cluster.api.hosts()).hosts.find((h) => h.id === frozen.hostId)?.status === 'up' && (await containersOf(w.id, frozen.hostId)).length === 0 && (await containersOf(control.id, frozen.hostId)).length === 0,
    { timeoutMs: 20_000 }).catch((err: Error) => {
      throw new Error(`${err.message}\n${cluster.logs()}`);
    });
    expect(await runningContainerCopies(w.id)).toBe(1);
    expect((await cluster.api.get(w.id)).host_id).toBe(other.hostId);
  });
});
