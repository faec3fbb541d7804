import { afterEach, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { createLogger, telemetrySubject } from '@virtfleet/shared';
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
    const nc = await connect({ servers: nats.url });
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

    const publisher = await connect({ servers: nats.url });
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
});
