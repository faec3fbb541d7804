import { readFileSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import type { Telemetry } from '@virtfleet/shared';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

interface CpuTimes {
  idle: number;
  total: number;
}

function readCpuTimes(): CpuTimes {
  let idle = 0;
  let total = 0;
  for (const cpu of cpus()) {
    const t = cpu.times;
    idle += t.idle;
    total += t.user + t.nice + t.sys + t.idle + t.irq;
  }
  return { idle, total };
}

/** Parses /proc/meminfo into MiB figures; MemAvailable is the kernel's own estimate of what can be allocated. */
export function parseMeminfo(text: string): { totalMiB: number; availableMiB: number } {
  const kib = (key: string): number | undefined => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    return m?.[1] ? Number(m[1]) : undefined;
  };
  const total = kib('MemTotal');
  const available = kib('MemAvailable') ?? kib('MemFree');
  if (total === undefined || available === undefined) throw new Error('unexpected /proc/meminfo format');
  return { totalMiB: total / 1024, availableMiB: available / 1024 };
}

type StorageSample = Telemetry['host']['storage'][number];

/** Where telemetry gets the machine's own figures. */
export interface HostSource {
  sample(): Promise<Telemetry['host']>;
}
type Statfs = (path: string) => Promise<{ blocks: number; bfree: number; bsize: number }>;

/**
 * Samples host CPU, memory and storage. CPU utilisation is measured between successive calls.
 * A statfs that does not answer within storageDeadlineMs (a hung NFS mount, a thread pool held by
 * stuck engine calls) does not hold up the sample: the path reports its last figures and their age.
 */
export class HostSampler implements HostSource {
  private previous = readCpuTimes();
  private readonly storage = new Map<string, { last: StorageSample; pending?: Promise<void> }>();

  constructor(
    private readonly storagePaths: readonly string[],
    private readonly storageDeadlineMs = 1000,
    private readonly statfsOf: Statfs = statfs,
  ) {}

  async sample(): Promise<Telemetry['host']> {
    const now = readCpuTimes();
    const dTotal = now.total - this.previous.total;
    const dIdle = now.idle - this.previous.idle;
    this.previous = now;
    const utilisation = dTotal > 0 ? Math.min(1, Math.max(0, 1 - dIdle / dTotal)) : 0;

    let memory: { totalMiB: number; availableMiB: number };
    try {
      // procfs answers from memory; a synchronous read keeps this off libuv's thread pool.
      memory = parseMeminfo(readFileSync('/proc/meminfo', 'utf8'));
    } catch {
      memory = { totalMiB: totalmem() / MiB, availableMiB: 0 };
    }
    const storage = await this.sampleStorage();
    const [load1 = 0, load5 = 0, load15 = 0] = loadavg();
    return {
      cpu_count: cpus().length,
      cpu_utilisation: round(utilisation, 4),
      load1,
      load5,
      load15,
      memory_total_mib: Math.round(memory.totalMiB),
      memory_used_mib: Math.round(memory.totalMiB) - Math.round(memory.availableMiB),
      memory_available_mib: Math.round(memory.availableMiB),
      storage,
    };
  }

  private async sampleStorage(): Promise<StorageSample[]> {
    const pending = this.storagePaths.map((path) => {
      let entry = this.storage.get(path);
      if (!entry) {
        entry = { last: { path, total_gib: 0, used_gib: 0 } };
        this.storage.set(path, entry);
      }
      const current = entry;
      current.pending ??= this.statfsOf(path)
        .then(
          (s) => {
            current.last = { path, total_gib: round((s.blocks * s.bsize) / GiB), used_gib: round(((s.blocks - s.bfree) * s.bsize) / GiB), sampled_at: new Date().toISOString() };
          },
          () => {
            current.last = { path, total_gib: 0, used_gib: 0, sampled_at: new Date().toISOString() };
          },
        )
        .finally(() => {
          current.pending = undefined;
        });
      return current.pending;
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.storageDeadlineMs);
    });
    await Promise.race([Promise.all(pending), deadline]);
    clearTimeout(timer);
    return this.storagePaths.map((path) => this.storage.get(path)!.last);
  }
}

function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/**
 * One sample of the machine shared by every host simulated in one process
 * (they all run on it): a new one is taken at most every `maxAgeMs`, so
 * 5,000 hosts cost one /proc read per interval rather than 5,000, and CPU
 * utilisation is measured over an interval rather than between two hosts.
 */
export class SharedHostSampler implements HostSource {
  private last: { atMs: number; sample: Promise<Telemetry['host']> } | undefined;

  constructor(
    private readonly inner: HostSource,
    private readonly maxAgeMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  sample(): Promise<Telemetry['host']> {
    const now = this.now();
    if (!this.last || now - this.last.atMs >= this.maxAgeMs) this.last = { atMs: now, sample: this.inner.sample() };
    return this.last.sample;
  }
}
