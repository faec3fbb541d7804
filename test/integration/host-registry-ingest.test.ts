import { afterEach, describe, expect, it } from 'vitest';
import { headers } from '@nats-io/transport-node';
import { createLogger, telemetrySubject, TELEMETRY_KIND_HEADER, WorkloadDeltaEncoder, type WorkloadTelemetry } from '@virtfleet/shared';
import { HostRegistry } from '../../packages/coordinator/src/hosts/host-registry.js';
import { testTelemetry } from '../../packages/coordinator/src/hosts/telemetry.test-support.js';
import { startNatsServer } from '../support/nats-server.js';
import { waitUntil } from '../support/wait.js';

const log = createLogger('host-registry-ingest-test', 'silent');

describe('HostRegistry telemetry ingest against a real nats-server', () => {
  const cleanups: (() => Promise<unknown> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('applies the newest message of each host when a burst outruns it, and lets timers run in between', async () => {
    const nats = await startNatsServer();
    cleanups.push(() => nats.stop());
    const nc = await nats.connect();
    cleanups.push(() => nc.close());
    const applied: { host: string; seq: number }[] = [];
    // A timer armed at the first message applied must fire while the burst is being applied, not after all of it.
    let timerFiredAfter = -1;
    const onTelemetry = (h: { id: string; telemetry: { seq: number } }) => {
      if (applied.length === 0) setTimeout(() => (timerFiredAfter = applied.length), 0);
      applied.push({ host: h.id, seq: h.telemetry.seq });
    };
    const registry = new HostRegistry(60_000, { onStatusChange: () => undefined, onTelemetry }, log);
    registry.start(nc);
    cleanups.push(() => registry.stop());
    await nc.flush();

    const publisher = await nats.connect();
    cleanups.push(() => publisher.close());
    const hosts = 200;
    const rounds = 20;
    for (let seq = 1; seq <= rounds; seq++) for (let h = 0; h < hosts; h++) publisher.publish(telemetrySubject(`h${h}`), JSON.stringify(testTelemetry(`h${h}`, { seq })));
    await publisher.flush();

    await waitUntil('every host at its last message', () => registry.list().length === hosts && registry.list().every((h) => h.telemetry.seq === rounds), { timeoutMs: 10_000 });
    expect(applied.length + registry.superseded).toBe(hosts * rounds);
    expect(registry.superseded).toBeGreaterThan(0);
    expect(timerFiredAfter).toBeGreaterThanOrEqual(0);
    expect(timerFiredAfter).toBeLessThan(applied.length);
    // Never an older message after a newer one of the same host.
    const lastSeq = new Map<string, number>();
    for (const { host, seq } of applied) {
      expect(seq, host).toBeGreaterThan(lastSeq.get(host) ?? 0);
      lastSeq.set(host, seq);
    }
  });

  it('applies every delta after the newest full list of each host, in order, so the view of each host ends whole', async () => {
    const nats = await startNatsServer();
    cleanups.push(() => nats.stop());
    const nc = await nats.connect();
    cleanups.push(() => nc.close());
    const applied: { host: string; seq: number; reported: number }[] = [];
    const registry = new HostRegistry(
      60_000,
      { onStatusChange: () => undefined, onTelemetry: (h, reported) => applied.push({ host: h.id, seq: h.telemetry.seq, reported: reported.length }) },
      log,
    );
    registry.start(nc);
    cleanups.push(() => registry.stop());
    await nc.flush();

    const publisher = await nats.connect();
    cleanups.push(() => publisher.close());
    const hosts = 100;
    const rounds = 40;
    const workload = (i: number): WorkloadTelemetry => ({ workload_id: `w${i}`, name: `w${i}`, kind: 'container', state: 'running', driver: 'fake', driver_ref: `r${i}`, cpu_percent: 0, memory_used_mib: 1 });
    const lists = new Map<string, WorkloadTelemetry[]>();
    // A full list at rounds 0 and 20 (the encoder's clock is the round), deltas between: each round adds a workload and drops one.
    const encoders = Array.from({ length: hosts }, () => {
      let round = 0;
      return { enc: new WorkloadDeltaEncoder(20, () => round), at: (r: number) => (round = r) };
    });
    for (let seq = 0; seq < rounds; seq++) {
      for (let h = 0; h < hosts; h++) {
        const id = `h${h}`;
        const list = [...(lists.get(id) ?? [workload(-1), workload(-2)]).filter((w) => w.workload_id !== `w${seq - 5}`), workload(seq)];
        lists.set(id, list);
        encoders[h]!.at(seq);
        const { part, kind } = encoders[h]!.enc.encode(seq, list);
        const hdrs = headers();
        hdrs.set(TELEMETRY_KIND_HEADER, kind);
        publisher.publish(telemetrySubject(id), JSON.stringify(testTelemetry(id, { seq, ...part })), { headers: hdrs });
      }
    }
    await publisher.flush();

    await waitUntil('every host at its last message', () => registry.list().length === hosts && registry.list().every((h) => h.telemetry.seq === rounds - 1), { timeoutMs: 20_000 });
    expect(applied.length + registry.superseded).toBe(hosts * rounds);
    for (const host of registry.list()) {
      expect(host.workloads.complete, host.id).toBe(true);
      expect([...host.workloads.values()].map((w) => w.workload_id).sort(), host.id).toEqual(lists.get(host.id)!.map((w) => w.workload_id).sort());
    }
    // Each host's messages applied in order, with no delta applied after a gap: a dropped message is only ever followed by a full list.
    const lastSeq = new Map<string, number>();
    const wrong: string[] = [];
    for (const { host, seq, reported } of applied) {
      const before = lastSeq.get(host);
      if (before !== undefined && seq !== before + 1 && seq % 20 !== 0) wrong.push(`${host}: delta ${seq} applied after ${before}`);
      if (seq % 20 !== 0 && reported !== 1) wrong.push(`${host}: delta ${seq} reported ${reported} workloads`);
      lastSeq.set(host, seq);
    }
    expect(wrong).toEqual([]);
  });
});
