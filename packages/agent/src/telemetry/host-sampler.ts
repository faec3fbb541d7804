import { readFile, statfs } from 'node:fs/promises';
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

/** Samples host CPU, memory and storage. CPU utilisation is measured between successive calls. */
export class HostSampler {
  private previous = readCpuTimes();

  constructor(private readonly storagePaths: readonly string[]) {}

  async sample(): Promise<Telemetry['host']> {
    const now = readCpuTimes();
    const dTotal = now.total - this.previous.total;
    const dIdle = now.idle - this.previous.idle;
    this.previous = now;
    const utilisation = dTotal > 0 ? Math.min(1, Math.max(0, 1 - dIdle / dTotal)) : 0;

    let memory: { totalMiB: number; availableMiB: number };
    try {
      memory = parseMeminfo(await readFile('/proc/meminfo', 'utf8'));
    } catch {
      memory = { totalMiB: totalmem() / MiB, availableMiB: 0 };
    }
    const storage = await Promise.all(
      this.storagePaths.map(async (path) => {
        try {
          const s = await statfs(path);
          const total = s.blocks * s.bsize;
          return { path, total_gib: round(total / GiB), used_gib: round((s.blocks - s.bfree) * s.bsize / GiB) };
        } catch {
          return { path, total_gib: 0, used_gib: 0 };
        }
      }),
    );
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
}

function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
