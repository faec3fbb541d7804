import { afterEach, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { createLogger, hostLeaseKey } from '@virtfleet/shared';
import { HostLease, type Fenceable } from '../../packages/agent/src/fencing/host-lease.js';
import { HostLeaseMonitor } from '../../packages/coordinator/src/hosts/host-lease-monitor.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { waitFor, waitUntil } from '../support/wait.js';

const log = createLogger('fencing-test', 'silent');
const BUCKET = 'hosts_test';
const FENCE_TIMEOUT_MS = 1500;
const RENEW_MS = 300;
const MARGIN_MS = 500;

/** Records what the lease asks of the host's workloads. */
class RecordingHost implements Fenceable {
  held = false;
  fencedAt: number | undefined;
  fences = 0;
  async fence(): Promise<{ stopped: number; failed: number }> {
    this.fences++;
    this.fencedAt ??= Date.now();
    return { stopped: 1, failed: 0 };
  }
  setLeaseHeld(held: boolean): void {
    this.held = held;
  }
}

describe('host leases and self-fencing against a real nats-server', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  const setup = async () => {
    const nats: NatsServer = await startNatsServer();
    cleanups.push(() => nats.stop());
    const coordinatorNc = await connect({ servers: [nats.url] });
    cleanups.push(() => coordinatorNc.close());
    const monitor = await HostLeaseMonitor.open(coordinatorNc, 'c1', { bucket: BUCKET, replicas: 1, fenceMarginMs: MARGIN_MS, probeIntervalMs: 100 }, log);
    cleanups.push(() => monitor.stop());
    const proxy: TcpProxy = await startTcpProxy({ host: '127.0.0.1', port: nats.port });
    cleanups.push(() => proxy.close());
    const agentNc: NatsConnection = await connect({ servers: [proxy.url('nats')], maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    cleanups.push(() => agentNc.close());
    const startLease = async (host: RecordingHost, bootId: string) => {
      const lease = new HostLease(agentNc, 'h1', bootId, { bucket: BUCKET, fenceTimeoutMs: FENCE_TIMEOUT_MS, renewIntervalMs: RENEW_MS }, host, log);
      cleanups.push(() => lease.stop());
      await lease.start();
      return lease;
    };
    return { nats, monitor, proxy, coordinatorNc, startLease };
  };

  it('fences the agent cut off from NATS before the coordinator may deem it fenced, and lifts the block once renewed', async () => {
    const { monitor, proxy, startLease } = await setup();
    const host = new RecordingHost();
    await startLease(host, 'boot-1');
    await waitUntil('the lease to be held', () => host.held);
    await new Promise((r) => setTimeout(r, 4 * RENEW_MS));
    expect(monitor.verdict('h1').fenced, 'a renewing host is not fenced').toBe(false);
    expect(host.fences).toBe(0);

    proxy.cut();
    const cutAt = Date.now();
    const { at: deemedAt } = await waitFor('the coordinator to deem the host fenced', () => (monitor.verdict('h1').fenced ? { at: Date.now() } : undefined), { timeoutMs: 10_000, intervalMs: 10 });
    const fencedAt = host.fencedAt;
    console.log(`cut at 0 ms; agent fenced at ${fencedAt! - cutAt} ms; coordinator deemed it fenced at ${deemedAt - cutAt} ms (fence timeout ${FENCE_TIMEOUT_MS} ms, margin ${MARGIN_MS} ms)`);
    expect(fencedAt, 'the agent fenced itself').toBeDefined();
    expect(fencedAt!, 'the agent fenced first').toBeLessThan(deemedAt);
    expect(fencedAt! - cutAt, 'within the fence timeout of its last renewal').toBeLessThanOrEqual(FENCE_TIMEOUT_MS + 250);
    expect(host.held).toBe(false);

    proxy.restore();
    await waitUntil('the lease to be renewed again', () => host.held, { timeoutMs: 10_000 });
    await waitUntil('the coordinator to see the host renewing', () => !monitor.verdict('h1').fenced, { timeoutMs: 5_000 });
    expect(host.fences, 'renewing again does not fence again').toBe(1);
  });

  it('a restarted agent whose previous lease lapsed fences before anything else', async () => {
    const { coordinatorNc, startLease } = await setup();
    const kv = await new Kvm(coordinatorNc).open(BUCKET);
    const lapsed = { host_id: 'h1', boot_id: 'old-boot', fence_timeout_ms: FENCE_TIMEOUT_MS, renewed_at: new Date(Date.now() - 60_000).toISOString() };
    await kv.put(hostLeaseKey('h1'), JSON.stringify(lapsed));
    const host = new RecordingHost();
    await startLease(host, 'new-boot');
    expect(host.fences, 'fenced during start').toBe(1);
    await waitUntil('the lease to be held', () => host.held);
  });

  it('a host with no lease is never deemed fenced', async () => {
    const { monitor } = await setup();
    await new Promise((r) => setTimeout(r, 1000));
    expect(monitor.verdict('never-seen')).toMatchObject({ fenced: false, detail: expect.stringMatching(/confirm-dead/) });
  });
});
