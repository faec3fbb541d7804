import { randomBytes } from 'node:crypto';
import { Hypervisor } from '@unraid/libvirt';
import { parseWorkloadSpec } from '@virtfleet/shared';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DOCKER_LABELS } from '../../packages/agent/src/drivers/docker/docker-driver.js';
import { buildDomainXml } from '../../packages/agent/src/drivers/libvirt/domain-xml.js';
import { removeDomains } from '../support/cleanup.js';
import { CopySampler, runningContainerCopies, runningDomainCopies, samplingProblems } from '../support/copies.js';
import { waitUntil } from '../support/wait.js';

const run = randomBytes(4).toString('hex');
// Defining or starting a domain can take tens of seconds when libvirtd re-probes QEMU.
const SLOW = 300_000;

describe('runningContainerCopies, asking Docker directly', () => {
  const docker = new Docker({ socketPath: '/var/run/docker.sock' });
  const workloadId = `copies-ctr-${run}`;
  let container: Docker.Container | undefined;

  afterAll(async () => {
    await container?.remove({ force: true }).catch(() => undefined);
  });

  it('counts a labelled container while it runs or is paused, and not once it stopped', async () => {
    expect(await runningContainerCopies(workloadId)).toBe(0);
    container = await docker.createContainer({
      name: `copies-test-${run}`,
      Image: 'virtfleet-test/busybox:latest',
      Cmd: ['/bin/sleep', '1000'],
      // Only the workload label, no host label: no agent of a concurrent test can mistake it for its own.
      Labels: { [DOCKER_LABELS.workload]: workloadId },
      HostConfig: { NetworkMode: 'none' },
    });
    expect(await runningContainerCopies(workloadId), 'created but not started').toBe(0);

    await container.start();
    expect(await runningContainerCopies(workloadId)).toBe(1);
    expect(await runningContainerCopies(`${workloadId}-other`), 'another workload id').toBe(0);

    await container.pause();
    expect(await runningContainerCopies(workloadId), 'a paused container still holds its memory').toBe(1);
    await container.unpause();

    await container.stop({ t: 0 });
    expect(await runningContainerCopies(workloadId)).toBe(0);
  });
});

describe('runningDomainCopies, asking libvirt directly', () => {
  const hypervisor = new Hypervisor({ uri: 'qemu:///system' });
  const workloadId = `copies-vm-${run}`;
  // Not virtfleet's name for this workload (virtfleet-<id>): a rescheduled copy may be named differently, and must still be counted.
  const domainName = `copies-test-${run}`;

  beforeAll(async () => {
    await hypervisor.connectOpen();
  });

  afterAll(async () => {
    await removeDomains(hypervisor, [domainName]);
    await hypervisor.connectClose();
  }, SLOW);

  it(
    'counts an active domain by its virtfleet metadata, paused included, and not once shut off',
    async () => {
      expect(await runningDomainCopies(hypervisor, workloadId)).toBe(0);

      // The XML the libvirt driver writes: diskless, no <interface>, emulated (TCG) so it needs no KVM.
      const spec = parseWorkloadSpec({ name: 'copies-vm', kind: 'vm', vcpus: 1, memory_mib: 64 });
      const xml = buildDomainXml(workloadId, spec, `copies-host-${run}`, 'qemu').replace(/<name>[^<]*<\/name>/, `<name>${domainName}</name>`);
      expect(xml).toContain(`<name>${domainName}</name>`);
      expect(xml).not.toContain('<interface');
      const domain = await hypervisor.domainDefineXML(xml);
      expect(await runningDomainCopies(hypervisor, workloadId), 'defined but shut off').toBe(0);

      await hypervisor.domainCreate(domain);
      expect(await runningDomainCopies(hypervisor, workloadId)).toBe(1);
      expect(await runningDomainCopies(hypervisor, `${workloadId}-other`), 'another workload id').toBe(0);

      await hypervisor.domainSuspend(domain);
      expect(await runningDomainCopies(hypervisor, workloadId), 'a paused domain still holds its memory').toBe(1);
      await hypervisor.domainResume(domain);

      await hypervisor.domainDestroy(domain);
      await waitUntil('the domain to shut off', async () => (await runningDomainCopies(hypervisor, workloadId)) === 0, { timeoutMs: 10_000 });
    },
    SLOW,
  );
});

describe('CopySampler', () => {
  it('records samples, the maximum, the first duplicate, changes and errors without overlapping probes', async () => {
    const script: (number | Error)[] = [0, 0, 1, 1, new Error('backend hiccup'), 2, 2, 1, 0];
    let call = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    const probe = async (): Promise<number> => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      // Slower than the interval, so overlapping would show if the sampler allowed it.
      await new Promise((r) => setTimeout(r, 15));
      inFlight -= 1;
      const step = script[Math.min(call++, script.length - 1)]!;
      if (step instanceof Error) throw step;
      return step;
    };

    const sampler = new CopySampler(probe, 5);
    sampler.start();
    expect(() => sampler.start()).toThrow(/already started/);
    await waitUntil('the script to run out', () => call >= script.length + 2, { timeoutMs: 5_000, intervalMs: 5 });
    const report = await sampler.stop();

    expect(maxInFlight).toBe(1);
    expect(report.samples + report.errors).toBe(call);
    expect(report.errors).toBe(1);
    expect(report.lastError).toBe('backend hiccup');
    expect(report.maxCount).toBe(2);
    expect(report.timeline.map((c) => c.count)).toEqual([0, 1, 2, 1, 0]);
    const duplicate = report.timeline.find((c) => c.count === 2)!;
    expect(report.firstDuplicateAtMs).toBe(duplicate.atMs);
    expect(report.timeline.every((c, i) => i === 0 || c.atMs > report.timeline[i - 1]!.atMs)).toBe(true);
    expect(report.durationMs).toBeGreaterThanOrEqual(report.timeline.at(-1)!.atMs);

    // Stopped means stopped: no more probes, and stop() returns the same report again.
    const callsAtStop = call;
    await new Promise((r) => setTimeout(r, 50));
    expect(call).toBe(callsAtStop);
    expect(await sampler.stop()).toBe(report);
  });

  it('reports no duplicate when the count never reaches 2, at the default interval', async () => {
    const sampler = new CopySampler(() => Promise.resolve(1));
    sampler.start();
    await new Promise((r) => setTimeout(r, 350));
    const report = await sampler.stop();
    // One sample per 100 ms at most (the first at 0 ms); fewer only if timers ran late on a busy machine.
    expect(report.samples).toBeGreaterThanOrEqual(2);
    expect(report.samples).toBeLessThanOrEqual(Math.floor(report.durationMs / 100) + 1);
    expect(report).toMatchObject({ maxCount: 1, errors: 0, timeline: [{ atMs: expect.any(Number), count: 1 }] });
    expect(report.firstDuplicateAtMs).toBeUndefined();
    expect(samplingProblems(report, 100, { maxBlindMs: 1000 }), 'a healthy sampler vouches for its maximum').toEqual([]);
  });

  it('measures its longest blind stretch and slowest probe, and samplingProblems names each shortfall', async () => {
    let failing = false;
    let calls = 0;
    let failedCalls = 0;
    const probe = async (): Promise<number> => {
      calls += 1;
      if (!failing) return 1;
      failedCalls += 1;
      // The first failing probe is also slow.
      if (failedCalls === 1) await new Promise((r) => setTimeout(r, 60));
      throw new Error('libvirtd stalled');
    };
    const sampler = new CopySampler(probe, 10);
    sampler.start();
    await waitUntil('three good samples', () => calls >= 3, { timeoutMs: 5_000, intervalMs: 5 });
    failing = true;
    const failingFrom = performance.now();
    await waitUntil('300 ms of failing probes', () => failedCalls >= 5 && performance.now() - failingFrom >= 300, { timeoutMs: 10_000, intervalMs: 5 });
    const failedFor = performance.now() - failingFrom;
    failing = false;
    const callsAtRecovery = calls;
    await waitUntil('three good samples again', () => calls >= callsAtRecovery + 3, { timeoutMs: 5_000, intervalMs: 5 });
    const report = await sampler.stop();

    expect(report.errors).toBe(failedCalls);
    expect(report.longestBlindMs, 'blind at least while every probe failed').toBeGreaterThanOrEqual(failedFor);
    expect(report.longestBlindMs).toBeLessThanOrEqual(report.durationMs);
    // A 60 ms timer may fire up to a millisecond early by performance.now()'s finer clock.
    expect(report.slowestProbeMs).toBeGreaterThanOrEqual(59);
    expect(report.maxCount).toBe(1);
    const problems = samplingProblems(report, 10, { maxBlindMs: 100, maxErrorShare: 0.01 });
    expect(problems).toEqual(expect.arrayContaining([expect.stringMatching(/^blind for \d+ ms at a stretch \(at most 100 ms allowed\)$/), expect.stringMatching(/probes failed .*libvirtd stalled$/)]));
    expect(samplingProblems(report, 10, { maxBlindMs: report.longestBlindMs, maxErrorShare: 1, minCoverage: 0 }), 'within every allowance').toEqual([]);
  });

  it('cannot vouch for a maximum of 0 when every probe failed', async () => {
    let calls = 0;
    const sampler = new CopySampler(() => {
      calls += 1;
      return Promise.reject(new Error('docker unreachable'));
    }, 10);
    sampler.start();
    await waitUntil('five failed probes', () => calls >= 5, { timeoutMs: 5_000, intervalMs: 5 });
    const report = await sampler.stop();
    expect(report).toMatchObject({ samples: 0, maxCount: 0, lastError: 'docker unreachable' });
    expect(report.errors).toBeGreaterThan(0);
    expect(report.longestBlindMs, 'blind from start to stop').toBe(report.durationMs);
    const problems = samplingProblems(report, 10, { maxBlindMs: 1000 });
    expect(problems).toEqual(expect.arrayContaining([expect.stringMatching(/^only 0 good samples in \d+ ms at 10 ms intervals \(need \d+\)$/), expect.stringMatching(/^\d+ of \d+ probes failed/)]));
  });
});
