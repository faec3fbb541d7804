import { afterEach, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { createLogger, fenceRecordKey, fenceRecordSchema, hostLeaseKey } from '@virtfleet/shared';
import { HostLease, type Fenceable, type LeaseBucket } from '../../packages/agent/src/fencing/host-lease.js';
import { HostLeaseMonitor } from '../../packages/coordinator/src/hosts/host-lease-monitor.js';
import { startNatsServer, type NatsServer } from '../support/nats-server.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { waitFor, waitUntil } from '../support/wait.js';

const log = createLogger('fencing-test', 'silent');
const BUCKET = 'hosts_test';
const FENCE_TIMEOUT_MS = 1500;
const RENEW_MS = 300;
const MARGIN_MS = 500;
const PROBE_MS = 100;
/** The agent's own lapse check runs this often (HostLease). */
const CHECK_MS = Math.max(50, Math.min(250, FENCE_TIMEOUT_MS / 10));
/** How long the monitor needs at most, unloaded, to deem a silent host's lease lapsed: timeout and margin, then a probe's round trip. */
const DEEM_MS = FENCE_TIMEOUT_MS + MARGIN_MS + 2 * PROBE_MS;
/** Deadline for waits on the lease machinery: generous against a loaded machine, since the waits end on a condition. */
const WAIT_MS = 10 * DEEM_MS;
/** The monitor's verdict on a host whose lease lapsed with no fence record after it. */
const LAPSED_WITHOUT_PROOF = /lease lapsed but it has recorded no fencing/;

/** Records what the lease asks of the host's workloads, on the monotonic clock the lease uses. */
class RecordingHost implements Fenceable {
  held = false;
  fencedAt: number | undefined;
  fences = 0;
  async fence(): Promise<{ stopped: number; failed: number; workloads: string[] }> {
    this.fences++;
    this.fencedAt ??= performance.now();
    return { stopped: 1, failed: 0, workloads: ['w-1'] };
  }
  setLeaseHeld(held: boolean): void {
    this.held = held;
  }
}

/** The agent's real lease bucket, with every renewal sent counted and every acknowledged one timed. */
class ObservedBucket {
  sent = 0;
  failed = 0;
  readonly acks: { sentAt: number; ackedAt: number }[] = [];
  constructor(private readonly nc: NatsConnection) {}
  open = async (): Promise<LeaseBucket> => {
    // The same timeout as HostLease's own default opener.
    const kv = await new Kvm(this.nc).open(BUCKET, { timeout: Math.min(5_000, Math.max(500, RENEW_MS)) });
    return {
      get: (key) => kv.get(key),
      put: async (key, value) => {
        const sentAt = performance.now();
        this.sent++;
        try {
          const revision = await kv.put(key, value);
          this.acks.push({ sentAt, ackedAt: performance.now() });
          return revision;
        } catch (err) {
          this.failed++;
          throw err;
        }
      },
    };
  };
}

describe('host leases and self-fencing against a real nats-server', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  const setup = async () => {
    const nats: NatsServer = await startNatsServer();
    cleanups.push(() => nats.stop());
    const coordinatorNc = await nats.connect();
    cleanups.push(() => coordinatorNc.close());
    const monitor = await HostLeaseMonitor.open(coordinatorNc, 'c1', { bucket: BUCKET, replicas: 1, fenceMarginMs: MARGIN_MS, probeIntervalMs: PROBE_MS }, log);
    cleanups.push(() => monitor.stop());
    const proxy: TcpProxy = await startTcpProxy({ host: '127.0.0.1', port: nats.port });
    cleanups.push(() => proxy.close());
    const agentNc: NatsConnection = await nats.connect({ servers: [proxy.url('nats')], maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    cleanups.push(() => agentNc.close());
    const bucket = new ObservedBucket(agentNc);
    const startLease = async (host: RecordingHost, bootId: string) => {
      const lease = new HostLease(agentNc, 'h1', bootId, { bucket: BUCKET, fenceTimeoutMs: FENCE_TIMEOUT_MS, renewIntervalMs: RENEW_MS }, host, log, undefined, bucket.open);
      cleanups.push(() => lease.stop());
      await lease.start();
      return lease;
    };
    /**
     * Writes one lease for `hostId` and never renews it, then waits until the
     * monitor deems that lease lapsed: proof that the monitor's watch and probes
     * ran past the fence timeout and margin of anything it saw before. Without a
     * fence record that host is not fenced: a silent renewer proves nothing.
     */
    const silentHostLapsed = async (hostId: string) => {
      const kv = await new Kvm(coordinatorNc).open(BUCKET);
      const writtenAt = performance.now();
      await kv.put(hostLeaseKey(hostId), JSON.stringify({ host_id: hostId, boot_id: 'silent', fence_timeout_ms: FENCE_TIMEOUT_MS, renewed_at: new Date().toISOString() }));
      await waitUntil(`the monitor to deem the silent host ${hostId}'s lease lapsed`, () => LAPSED_WITHOUT_PROOF.test(monitor.verdict(hostId).detail), { timeoutMs: WAIT_MS, intervalMs: 20 });
      expect(monitor.verdict(hostId).fenced, 'a lapsed lease alone is no proof').toBe(false);
      return { writtenAt, kv };
    };
    return { nats, monitor, proxy, coordinatorNc, bucket, startLease, silentHostLapsed };
  };

  it('fences the agent cut off from NATS before its lease may count as lapsed, stores its fence record before renewing again, and lifts the block once renewed', async () => {
    const { monitor, proxy, bucket, coordinatorNc, startLease, silentHostLapsed } = await setup();
    const host = new RecordingHost();
    await startLease(host, 'boot-1');
    await waitUntil('the lease to be held', () => host.held, { timeoutMs: WAIT_MS });

    // A host that stopped renewing when this one was already renewing has lapsed; this one, still renewing, has not.
    const { writtenAt } = await silentHostLapsed('h-silent');
    expect(bucket.acks.filter((a) => a.sentAt > writtenAt).length, 'renewals went on while the silent host lapsed').toBeGreaterThan(0);
    expect(monitor.verdict('h1'), 'a renewing host is not fenced').toMatchObject({ fenced: false, detail: expect.stringMatching(/not lapsed/) });
    expect(host.fences).toBe(0);

    proxy.cut();
    const cutAt = performance.now();
    const { at: deemedAt } = await waitFor("the coordinator to deem the host's lease lapsed", () => (LAPSED_WITHOUT_PROOF.test(monitor.verdict('h1').detail) ? { at: performance.now() } : undefined), { timeoutMs: WAIT_MS, intervalMs: 10 });
    // Cut off, the agent cannot store its fence record: the coordinator has no proof and moves nothing.
    expect(monitor.verdict('h1').fenced, 'a lapsed lease is no proof while the fence record cannot reach NATS').toBe(false);
    const fencedAt = host.fencedAt;
    expect(fencedAt, 'the agent fenced itself').toBeDefined();
    expect(fencedAt!, 'the agent fenced first').toBeLessThan(deemedAt);
    // Timed from the last renewal acknowledged before the fence, as the agent times it, not from the cut.
    const confirmed = bucket.acks.filter((a) => a.ackedAt < fencedAt!);
    const last = confirmed[confirmed.length - 1]!;
    const previous = confirmed[confirmed.length - 2]!;
    console.log(
      `last renewal sent ${Math.round(last.sentAt - cutAt)} ms from the cut; agent fenced ${Math.round(fencedAt! - last.sentAt)} ms after it, ` +
        `the coordinator deemed its lease lapsed ${Math.round(deemedAt - last.sentAt)} ms after it (fence timeout ${FENCE_TIMEOUT_MS} ms, check every ${CHECK_MS} ms, margin ${MARGIN_MS} ms)`,
    );
    // Renewals never overlap, so the last one was sent after the one before it was acknowledged: not fenced early...
    expect(fencedAt! - previous.ackedAt, 'not before the fence timeout').toBeGreaterThan(FENCE_TIMEOUT_MS);
    // ...and the coordinator, which saw that renewal no earlier than it was sent, deems the lease lapsed a timeout and margin after it: fenced before then.
    expect(fencedAt! - last.sentAt, 'within the fence timeout and margin of its last renewal').toBeLessThanOrEqual(FENCE_TIMEOUT_MS + MARGIN_MS);
    expect(host.held).toBe(false);

    proxy.restore();
    await waitUntil('the lease to be renewed again', () => host.held, { timeoutMs: WAIT_MS });
    await waitUntil('the coordinator to see the host renewing', () => /not lapsed/.test(monitor.verdict('h1').detail), { timeoutMs: WAIT_MS });
    expect(host.fences, 'renewing again does not fence again').toBe(1);
    // The fence record, stored once NATS was reachable again and before the renewal that lifted the block.
    const kv = await new Kvm(coordinatorNc).open(BUCKET);
    const record = await kv.get(fenceRecordKey('h1'));
    const lease = await kv.get(hostLeaseKey('h1'));
    expect(record, 'the agent stored its fence record').not.toBeNull();
    expect(fenceRecordSchema.parse(record!.json())).toMatchObject({ host_id: 'h1', boot_id: 'boot-1', workloads: ['w-1'] });
    expect(record!.revision, 'the fence record went before the renewal').toBeLessThan(lease!.revision);
    expect(monitor.verdict('h1').fenced, 'renewing again: not fenced').toBe(false);
  });

  it("a dead renewer's lapsed lease is not proof; a fence record stored after the last renewal is", async () => {
    const { monitor, coordinatorNc, startLease } = await setup();
    const host = new RecordingHost();
    const lease = await startLease(host, 'boot-1');
    await waitUntil('the lease to be held', () => host.held, { timeoutMs: WAIT_MS });
    // The renewer dies without fencing anything (an agent SIGKILLed): its lease lapses, and that is all.
    lease.stop();
    await waitUntil("the coordinator to deem h1's lease lapsed", () => LAPSED_WITHOUT_PROOF.test(monitor.verdict('h1').detail), { timeoutMs: WAIT_MS, intervalMs: 20 });
    expect(host.fences).toBe(0);
    expect(monitor.verdict('h1')).toMatchObject({ fenced: false, detail: expect.stringMatching(/confirm-dead/) });
    // A fence record stored after the last renewal (as the host's fencer writes it) is proof.
    const kv = await new Kvm(coordinatorNc).open(BUCKET);
    await kv.put(fenceRecordKey('h1'), JSON.stringify({ host_id: 'h1', boot_id: 'boot-1', fenced_at: new Date().toISOString(), reason: 'test', workloads: ['w-1'] }));
    await waitUntil('the coordinator to deem h1 fenced on its record', () => monitor.verdict('h1').fenced, { timeoutMs: WAIT_MS, intervalMs: 20 });
    expect(monitor.verdict('h1').detail).toMatch(/recorded stopping its fence-first workloads .*\(1 stopped\)/);
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
    const { monitor, proxy, bucket, startLease, silentHostLapsed } = await setup();
    // h1 is cut off from NATS from the start: it tries to renew, never stores a lease, and fences itself.
    proxy.cut();
    const host = new RecordingHost();
    await startLease(host, 'boot-1');
    await waitUntil('h1 to fence itself for want of a lease', () => host.fences === 1, { timeoutMs: WAIT_MS });
    const { kv } = await silentHostLapsed('h-silent');
    console.log(`h1 cut off: ${bucket.sent} renewals sent, ${bucket.failed} failed, ${bucket.acks.length} acknowledged`);
    expect(bucket.sent, 'renewals were sent').toBeGreaterThan(0);
    expect(bucket.acks).toEqual([]);
    expect(await kv.get(hostLeaseKey('h1')), 'h1 has no lease in the bucket').toBeNull();
    // The monitor saw h-silent's lease lapse above, but knows nothing at all about h1.
    expect(monitor.verdict('h1')).toMatchObject({ fenced: false, detail: expect.stringMatching(/confirm-dead/) });
  });
});
