import { performance } from 'node:perf_hooks';
import { ConnectListAllDomainsFlags, type Hypervisor } from '@unraid/libvirt';
import Docker from 'dockerode';
import { DOCKER_LABELS } from '../../packages/agent/src/drivers/docker/docker-driver.js';
import { parseOwnership } from '../../packages/agent/src/drivers/libvirt/domain-xml.js';

// These probes ask Docker and libvirt directly, never virtfleet: they exist to catch
// virtfleet believing there is one copy of a workload while the backends run two.

const docker = new Docker({ socketPath: '/var/run/docker.sock' });

/**
 * Container states that count as a live copy. A paused container is frozen but
 * still holds its memory and its place on the host, and `unpause` brings it back
 * at once, so it counts as much as a running one.
 */
const LIVE_CONTAINER_STATES: ReadonlySet<string> = new Set(['running', 'paused']);

/** Number of containers labelled as `workloadId` (the label the docker driver writes) that are running or paused. */
export async function runningContainerCopies(workloadId: string): Promise<number> {
  const containers = await docker.listContainers({ all: true, filters: { label: [`${DOCKER_LABELS.workload}=${workloadId}`] } });
  return containers.filter((c) => LIVE_CONTAINER_STATES.has(c.State)).length;
}

/**
 * Number of active libvirt domains (running, paused, or any other state but
 * shut off) whose virtfleet metadata names `workloadId`. Matches on the
 * metadata rather than the domain name, so a copy defined under another name
 * still counts. Domains that vanish while being inspected are skipped.
 */
export async function runningDomainCopies(hypervisor: Hypervisor, workloadId: string): Promise<number> {
  // ACTIVE is libvirt's "has a running hypervisor process": everything except shut off.
  const active = await hypervisor.connectListAllDomains(ConnectListAllDomainsFlags.ACTIVE);
  const owners = await Promise.all(
    active.map(async (domain) => {
      try {
        return await parseOwnership(await hypervisor.domainGetXMLDesc(domain));
      } catch {
        // Undefined between the listing and this lookup: it is no longer a copy.
        return undefined;
      }
    }),
  );
  return owners.filter((owner) => owner?.workloadId === workloadId).length;
}

/** A change in the sampled count, at milliseconds since the sampler started. */
export interface CountChange {
  atMs: number;
  count: number;
}

export interface SamplerReport {
  /** Probes that returned a count. */
  samples: number;
  /** Largest count any sample returned; 0 when none did. */
  maxCount: number;
  /** When the first sample with a count of 2 or more was taken, in ms since start. */
  firstDuplicateAtMs?: number;
  /** Every change of the count, starting with the first sample. */
  timeline: CountChange[];
  /** Probes that threw. */
  errors: number;
  lastError?: string;
  /** From start() to stop(). */
  durationMs: number;
}

/**
 * Samples a count (such as runningContainerCopies) every `intervalMs` until
 * stopped. Probes never overlap: the next one starts only after the previous
 * one settled, and later than planned if a probe took longer than the interval.
 * Each sample's time is when its probe started. Probe errors are counted, not thrown.
 */
export class CopySampler {
  private startedAt = 0;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private finalReport: SamplerReport | undefined;
  private readonly report: Omit<SamplerReport, 'durationMs'> = { samples: 0, maxCount: 0, timeline: [], errors: 0 };

  constructor(
    private readonly probe: () => Promise<number>,
    private readonly intervalMs = 100,
  ) {
    if (!(intervalMs > 0)) throw new Error(`sampler interval must be positive, got ${intervalMs}`);
  }

  start(): void {
    if (this.loop) throw new Error('sampler already started');
    this.startedAt = performance.now();
    this.loop = this.run();
  }

  /** Stops sampling, waits for a probe in flight to settle, and returns what was seen. */
  async stop(): Promise<SamplerReport> {
    if (!this.loop) throw new Error('sampler was never started');
    if (!this.finalReport) {
      this.stopping = true;
      this.wake?.();
      await this.loop;
      this.finalReport = { ...this.report, timeline: [...this.report.timeline], durationMs: performance.now() - this.startedAt };
    }
    return this.finalReport;
  }

  private async run(): Promise<void> {
    let nextAt = this.startedAt;
    while (!this.stopping) {
      const takenAt = performance.now();
      nextAt += this.intervalMs;
      try {
        this.record(takenAt - this.startedAt, await this.probe());
      } catch (err) {
        this.report.errors += 1;
        this.report.lastError = err instanceof Error ? err.message : String(err);
      }
      // Keep the cadence when probes are quick, but never catch up with a burst after a slow one.
      const now = performance.now();
      if (nextAt < now) nextAt = now;
      await this.sleep(nextAt - now);
    }
  }

  private record(atMs: number, count: number): void {
    const r = this.report;
    r.samples += 1;
    r.maxCount = Math.max(r.maxCount, count);
    if (count >= 2 && r.firstDuplicateAtMs === undefined) r.firstDuplicateAtMs = atMs;
    if (r.timeline.at(-1)?.count !== count) r.timeline.push({ atMs, count });
  }

  /** Waits `ms`, or less if stop() is called meanwhile. */
  private async sleep(ms: number): Promise<void> {
    if (this.stopping || ms <= 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wake = undefined;
  }
}
