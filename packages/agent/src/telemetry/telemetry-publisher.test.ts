import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { MsgHdrs } from '@nats-io/transport-node';
import { createLogger, telemetrySchema, TELEMETRY_KIND_HEADER, WorkloadView, type NatsConnection, type Telemetry, type WorkloadTelemetry } from '@virtfleet/shared';
import type { HostSource } from './host-sampler.js';
import { TelemetryPublisher } from './telemetry-publisher.js';
import type { WorkloadSampler } from './workload-sampler.js';

const log = createLogger('test', 'silent');
const INTERVAL_MS = 1000;

const host: HostSource = {
  sample: () => Promise.resolve({ cpu_count: 2, cpu_utilisation: 0.1, load1: 0, load5: 0, load15: 0, memory_total_mib: 1024, memory_used_mib: 512, memory_available_mib: 512, storage: [] }),
};

/** A workload sampler whose observation takes `takesMs` and finds `workloads()`. */
function slowSampler(takesMs: number, workloads: () => WorkloadTelemetry[] = () => []): WorkloadSampler {
  return {
    snapshot: () =>
      takesMs === 0
        ? Promise.resolve({ workloads: workloads(), startedAtMs: Date.now() })
        : new Promise((resolve) => setTimeout(() => resolve({ workloads: workloads(), startedAtMs: Date.now() }), takesMs)),
  } as unknown as WorkloadSampler;
}

function publisher(takesMs: number, workloads?: () => WorkloadTelemetry[]) {
  const at: number[] = [];
  const sent: { kind: string | undefined; message: Telemetry }[] = [];
  const nc = {
    isClosed: () => false,
    publish: (_subject: string, data: string, options?: { headers?: MsgHdrs }) => {
      const parsed = telemetrySchema.safeParse(JSON.parse(data));
      expect(parsed.success).toBe(true);
      sent.push({ kind: options?.headers?.get(TELEMETRY_KIND_HEADER), message: parsed.data! });
      at.push(Date.now());
    },
  } as unknown as NatsConnection;
  const identity = { host_id: 'h1', hostname: 'h1', address: '127.0.0.1:1', agent_version: '0', boot_id: 'b', labels: {}, trust_level: 0, features: [], overcommit: { cpu: 1, memory: 1 }, reserved: { vcpus: 0, memory_mib: 0, disk_gib: 0 } };
  const capacity = () => Promise.resolve({ drivers: [], capacity: { vcpus: 1, memory_mib: 1024, disk_gib: 1 } });
  return { p: new TelemetryPublisher(nc, identity, capacity, host, slowSampler(takesMs, workloads), INTERVAL_MS, log, 5 * INTERVAL_MS), at, sent };
}

describe('TelemetryPublisher', () => {
  beforeEach(() => {
    // performance too: the publisher counts intervals on the monotonic clock.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'performance'] });
    vi.setSystemTime(0);
  });
  afterEach(() => vi.useRealTimers());

  it.each([
    { name: 'a quick sample: one message per interval from phase 0', takesMs: 0, phase: 0, want: [0, 1000, 2000, 3000] },
    { name: 'a slow sample does not stretch the interval', takesMs: 300, phase: 0, want: [300, 1300, 2300, 3300] },
    { name: 'phase 0.25 starts a quarter interval in and keeps that phase', takesMs: 100, phase: 0.25, want: [350, 1350, 2350, 3350] },
  ])('$name', async ({ takesMs, phase, want }) => {
    const { p, at } = publisher(takesMs);
    p.start(phase);
    await vi.advanceTimersByTimeAsync(3500);
    await p.stop();
    expect(at).toEqual(want);
  });

  it('sends the whole workload list every fullEveryMs and the changes between, which rebuild the list', async () => {
    let list: WorkloadTelemetry[] = [];
    const { p, sent } = publisher(0, () => list);
    const view = new WorkloadView();
    p.start(0);
    let applied = 0;
    for (let i = 0; i < 12; i++) {
      list = [...list.filter((_, j) => j % 3 !== 1 || i % 4 !== 0), { workload_id: `w${i}`, name: `w${i}`, kind: 'container', state: 'running', driver: 'fake', driver_ref: `r${i}`, cpu_percent: 0, memory_used_mib: 1 }];
      await vi.advanceTimersByTimeAsync(INTERVAL_MS);
      for (; applied < sent.length; applied++) view.apply(sent[applied]!.message);
      expect(view.complete).toBe(true);
      expect([...view.values()].map((w) => w.workload_id).sort()).toEqual(list.map((w) => w.workload_id).sort());
    }
    await p.stop();
    expect(sent.map((s) => s.kind).slice(0, 12)).toEqual(['full', 'delta', 'delta', 'delta', 'delta', 'full', 'delta', 'delta', 'delta', 'delta', 'full', 'delta']);
    expect(sent.filter((s) => s.kind === 'delta').every((s) => s.message.workloads.length <= 1)).toBe(true);
  });

  it('publishes 50 ms after a nudge, and a second nudge does not postpone it', async () => {
    const { p, at } = publisher(0);
    p.start(0);
    await vi.advanceTimersByTimeAsync(400);
    p.nudge();
    await vi.advanceTimersByTimeAsync(30);
    p.nudge();
    await vi.advanceTimersByTimeAsync(570);
    await p.stop();
    expect(at).toEqual([0, 450]);
  });

  it('keeps publishing every interval while nudged every 10 ms, at most four messages per interval', async () => {
    const { p, at } = publisher(0);
    p.start(0);
    const nudger = setInterval(() => p.nudge(), 10);
    await vi.advanceTimersByTimeAsync(3000);
    clearInterval(nudger);
    await p.stop();
    const perSecond = [0, 1, 2].map((s) => at.filter((t) => t >= s * 1000 && t < (s + 1) * 1000).length);
    expect(perSecond.every((n) => n >= 1 && n <= 4), `messages at ${at.join(', ')}`).toBe(true);
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(250);
  });
});
