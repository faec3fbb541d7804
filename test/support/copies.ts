import { readdir, readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { ConnectListAllDomainsFlags, DomainState, type Hypervisor } from '@unraid/libvirt';
import Docker from 'dockerode';
import { DOCKER_LABELS } from '../../packages/agent/src/drivers/docker/docker-driver.js';
import { parseOwnership } from '../../packages/agent/src/drivers/libvirt/domain-xml.js';

// These probes ask Docker and libvirt directly, never virtfleet: they exist to catch
// virtfleet believing there is one copy of a workload while the backends run two.

const docker = new Docker({ socketPath: '/var/run/docker.sock' });

/** Guest names of the QEMU processes running on this machine, read from /proc: never waits on libvirtd. */
export async function qemuGuests(): Promise<string[]> {
  const names: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.includes('qemu-system')) continue;
    const name = /(?:^|\0)guest=([^,\0]+)/.exec(cmdline)?.[1];
    if (name) names.push(name);
  }
  return names;
}

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

/** A container as Docker lists it, with the virtfleet labels the docker driver writes. */
export interface ContainerCopy {
  id: string;
  /** Docker's state: created, running, paused, exited, ... */
  state: string;
  hostId: string | undefined;
  workloadId: string | undefined;
}

const containerCopy = (c: Docker.ContainerInfo): ContainerCopy => ({ id: c.Id, state: c.State, hostId: c.Labels[DOCKER_LABELS.host], workloadId: c.Labels[DOCKER_LABELS.workload] });

/** Every container labelled as `workloadId`, in any state (created and exited too), on any host. */
export async function containersOfWorkload(workloadId: string): Promise<ContainerCopy[]> {
  return (await docker.listContainers({ all: true, filters: { label: [`${DOCKER_LABELS.workload}=${workloadId}`] } })).map(containerCopy);
}

/** Every container labelled as belonging to host `hostId`, in any state: what an orphan check looks through. */
export async function containersOfHost(hostId: string): Promise<ContainerCopy[]> {
  return (await docker.listContainers({ all: true, filters: { label: [`${DOCKER_LABELS.host}=${hostId}`] } })).map(containerCopy);
}

/**
 * A sampler of how many containers, in any state, each of a set of workloads
 * has, through Docker with one listing per sample (cheaper than a sampler per
 * workload). Its count is the largest any of them had at that sample;
 * `maxPerWorkload` keeps each workload's own maximum. `ids` is read at every
 * sample, so workloads can be added while it runs.
 */
export function containersPerWorkloadSampler(ids: () => Iterable<string>, intervalMs = 100): { sampler: CopySampler; maxPerWorkload: Map<string, number> } {
  const maxPerWorkload = new Map<string, number>();
  const probe = async () => {
    const perWorkload = new Map<string, number>();
    for (const c of await docker.listContainers({ all: true, filters: { label: [DOCKER_LABELS.workload] } })) {
      const id = c.Labels[DOCKER_LABELS.workload];
      if (id !== undefined) perWorkload.set(id, (perWorkload.get(id) ?? 0) + 1);
    }
    let largest = 0;
    for (const id of ids()) {
      const n = perWorkload.get(id) ?? 0;
      maxPerWorkload.set(id, Math.max(maxPerWorkload.get(id) ?? 0, n));
      largest = Math.max(largest, n);
    }
    return largest;
  };
  return { sampler: new CopySampler(probe, intervalMs), maxPerWorkload };
}

/** A libvirt domain that carries virtfleet metadata. */
export interface DomainCopy {
  name: string;
  /** libvirt's UUID: a domain undefined and defined again under the same name gets a new one. */
  uuid: string;
  hostId: string;
  workloadId: string;
  state: DomainState;
  /** Anything but shut off: a hypervisor process exists. */
  active: boolean;
}

/**
 * Every libvirt domain, defined or running, whose virtfleet metadata names an
 * owner, whatever the domain is called: a copy defined under another name
 * counts too. Domains that vanish while being inspected are skipped.
 */
export async function virtfleetDomains(hypervisor: Hypervisor): Promise<DomainCopy[]> {
  const all = await hypervisor.connectListAllDomains();
  const found = await Promise.all(
    all.map(async (domain): Promise<DomainCopy | undefined> => {
      try {
        const owner = await parseOwnership(await hypervisor.domainGetXMLDesc(domain));
        if (!owner) return undefined;
        const { state } = await hypervisor.domainGetInfo(domain);
        return {
          name: await hypervisor.domainGetName(domain),
          uuid: await hypervisor.domainGetUUIDString(domain),
          hostId: owner.hostId,
          workloadId: owner.workloadId,
          state,
          active: state !== DomainState.SHUTOFF,
        };
      } catch {
        return undefined;
      }
    }),
  );
  return found.filter((d): d is DomainCopy => d !== undefined);
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
  /**
   * The longest stretch with no good sample: from start() to the first, between
   * two, or from the last to stop(). A count that rose and fell back within it
   * went unseen, so a claim about the maximum holds only for changes that last
   * longer than this.
   */
  longestBlindMs: number;
  /** The slowest probe, failed ones included. */
  slowestProbeMs: number;
  /** From start() to stop(). */
  durationMs: number;
}

/** What a report must show before its maximum can be trusted (see samplingProblems). */
export interface SamplingNeeds {
  /** No stretch without a good sample may be longer than this. */
  maxBlindMs: number;
  /** At least this share of the samples the interval allows over the duration must have succeeded. @default 0.25 */
  minCoverage?: number;
  /** At most this share of the probes may have failed. @default 0.1 */
  maxErrorShare?: number;
}

/**
 * Why `report` cannot vouch for the count over its whole duration, one
 * sentence per problem; empty when it can. A sampler whose probes all failed
 * reports a maximum of 0: check this before believing its maximum.
 */
export function samplingProblems(report: SamplerReport, intervalMs: number, needs: SamplingNeeds): string[] {
  const problems: string[] = [];
  const probes = report.samples + report.errors;
  const allowed = Math.floor(report.durationMs / intervalMs) + 1;
  const minSamples = Math.max(1, Math.ceil(allowed * (needs.minCoverage ?? 0.25)));
  const maxErrorShare = needs.maxErrorShare ?? 0.1;
  if (report.samples < minSamples) problems.push(`only ${report.samples} good samples in ${Math.round(report.durationMs)} ms at ${intervalMs} ms intervals (need ${minSamples})`);
  if (report.longestBlindMs > needs.maxBlindMs) problems.push(`blind for ${Math.round(report.longestBlindMs)} ms at a stretch (at most ${needs.maxBlindMs} ms allowed)`);
  if (report.errors > maxErrorShare * probes) problems.push(`${report.errors} of ${probes} probes failed (at most ${maxErrorShare * 100}% allowed); last: ${report.lastError}`);
  return problems;
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
  private readonly report: Omit<SamplerReport, 'durationMs'> = { samples: 0, maxCount: 0, timeline: [], errors: 0, longestBlindMs: 0, slowestProbeMs: 0 };
  /** When the last good sample was taken (ms since start); 0 before the first. */
  private lastGoodAtMs = 0;

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

  /** What was seen so far, while sampling goes on: wait on it (e.g. for a count to show) instead of sleeping. */
  progress(): { samples: number; errors: number; lastCount: number | undefined } {
    return { samples: this.report.samples, errors: this.report.errors, lastCount: this.report.timeline.at(-1)?.count };
  }

  /** Stops sampling, waits for a probe in flight to settle, and returns what was seen. */
  async stop(): Promise<SamplerReport> {
    if (!this.loop) throw new Error('sampler was never started');
    if (!this.finalReport) {
      this.stopping = true;
      this.wake?.();
      await this.loop;
      const durationMs = performance.now() - this.startedAt;
      const longestBlindMs = Math.max(this.report.longestBlindMs, durationMs - this.lastGoodAtMs);
      this.finalReport = { ...this.report, timeline: [...this.report.timeline], longestBlindMs, durationMs };
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
      this.report.slowestProbeMs = Math.max(this.report.slowestProbeMs, performance.now() - takenAt);
      // Keep the cadence when probes are quick, but never catch up with a burst after a slow one.
      const now = performance.now();
      if (nextAt < now) nextAt = now;
      await this.sleep(nextAt - now);
    }
  }

  private record(atMs: number, count: number): void {
    const r = this.report;
    r.samples += 1;
    r.longestBlindMs = Math.max(r.longestBlindMs, atMs - this.lastGoodAtMs);
    this.lastGoodAtMs = atMs;
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

/** One look at a VM's QEMU processes: how many run under host A's domain name and under host B's. */
export interface TwoHostLook {
  at: number;
  onA: number;
  onB: number;
}

/**
 * Starts counting a VM's copies two ways every `intervalMs`: through libvirt
 * (any domain whose metadata names the workload) and per host through /proc
 * (QEMU processes named as host A's or host B's domain). Resolves once each
 * sampler has a baseline of five samples.
 */
export async function sampleVmOnTwoHosts(
  hypervisor: Hypervisor,
  workloadId: string,
  names: { a: string; b: string },
  intervalMs: number,
): Promise<{ looks: TwoHostLook[]; libvirt: CopySampler; procs: CopySampler }> {
  const looks: TwoHostLook[] = [];
  const libvirt = new CopySampler(() => runningDomainCopies(hypervisor, workloadId), intervalMs);
  const procs = new CopySampler(async () => {
    const guests = await qemuGuests();
    const look = { at: performance.now(), onA: guests.filter((n) => n === names.a).length, onB: guests.filter((n) => n === names.b).length };
    looks.push(look);
    return look.onA + look.onB;
  }, intervalMs);
  libvirt.start();
  procs.start();
  const deadline = performance.now() + 30_000;
  while (libvirt.progress().samples < 5 || procs.progress().samples < 5) {
    if (performance.now() > deadline) throw new Error('no baseline of VM copy samples within 30 s');
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return { looks, libvirt, procs };
}

