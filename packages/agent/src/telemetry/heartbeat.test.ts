import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger, heartbeatSchema, type NatsConnection } from '@virtfleet/shared';
import { HeartbeatPublisher } from './heartbeat.js';

const log = createLogger('test', 'silent');

/** Records what is published; publishing is synchronous, as in nats.js. */
function recordingConnection() {
  const published: { subject: string; body: unknown }[] = [];
  const nc = { isClosed: () => false, publish: (subject: string, data: string) => published.push({ subject, body: JSON.parse(data) as unknown }) };
  return { nc: nc as unknown as NatsConnection, published };
}

describe('HeartbeatPublisher', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] }));
  afterEach(() => vi.useRealTimers());

  it('publishes a valid beat at once and then every interval, numbered from 0, on its host subject', () => {
    const { nc, published } = recordingConnection();
    const hb = new HeartbeatPublisher(nc, { host_id: 'h1', boot_id: 'boot-1', address: '127.0.0.1:7101' }, 1000, log);
    hb.start();
    vi.advanceTimersByTime(3000);
    hb.stop();
    vi.advanceTimersByTime(3000);
    expect(published.map((p) => p.subject)).toEqual(Array(4).fill('virtfleet.heartbeat.h1'));
    expect(published.map((p) => heartbeatSchema.parse(p.body).seq)).toEqual([0, 1, 2, 3]);
    expect(published[0]!.body).toMatchObject({ version: 1, host_id: 'h1', boot_id: 'boot-1', address: '127.0.0.1:7101' });
  });

  it('stands down while telemetry goes out each interval, and beats an interval apart once it stops, 1.25 intervals after the last', () => {
    const { nc, published } = recordingConnection();
    const hb = new HeartbeatPublisher(nc, { host_id: 'h1', boot_id: 'b', address: '127.0.0.1:1' }, 1000, log);
    hb.start();
    const beatsAt: number[] = [];
    for (let t = 0; t < 6000; t += 10) {
      // Telemetry each second (once 30 ms late) from 0.5 s to 2.5 s; then it stalls.
      if ([500, 1530, 2500].includes(t)) hb.telemetrySent();
      const before = published.length;
      vi.advanceTimersByTime(10);
      if (published.length > before) beatsAt.push(t + 10);
    }
    hb.stop();
    // The beat at start, none while telemetry came (the last at 2.5 s), then 3.75 s and every second.
    expect([published.length, beatsAt]).toEqual([4, [3750, 4750, 5750]]);
  });

  it('keeps beating when a publish throws, and publishes nothing on a closed connection', () => {
    let calls = 0;
    let closed = false;
    const nc = {
      isClosed: () => closed,
      publish: () => {
        calls++;
        if (calls === 2) throw new Error('buffer full');
      },
    } as unknown as NatsConnection;
    const hb = new HeartbeatPublisher(nc, { host_id: 'h1', boot_id: 'b', address: '127.0.0.1:1' }, 500, log);
    hb.start();
    vi.advanceTimersByTime(1000);
    expect(calls).toBe(3);
    closed = true;
    vi.advanceTimersByTime(1000);
    expect(calls).toBe(3);
    hb.stop();
  });
});
