/** Latency summary of a sample, in microseconds. */
export interface Summary {
  n: number;
  p50: number;
  p99: number;
  mean: number;
}

export function summarise(samplesNs: bigint[]): Summary {
  const us = samplesNs.map((s) => Number(s) / 1000).sort((a, b) => a - b);
  const at = (q: number) => us[Math.min(us.length - 1, Math.floor(q * us.length))] ?? 0;
  return { n: us.length, p50: at(0.5), p99: at(0.99), mean: us.reduce((a, b) => a + b, 0) / Math.max(1, us.length) };
}

/** Runs `op` sequentially `n` times after `warmup` unmeasured runs; returns each latency. */
export async function measure(n: number, warmup: number, op: (i: number) => Promise<unknown>): Promise<bigint[]> {
  for (let i = 0; i < warmup; i++) await op(-i - 1);
  const out: bigint[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await op(i);
    out.push(process.hrtime.bigint() - t0);
  }
  return out;
}

export const fmt = (us: number) => `${us.toFixed(0)} µs`;
