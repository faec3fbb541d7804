import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager, AckPolicy, DeliverPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import { connect, headers, nkeyAuthenticator, type NatsConnection, type PermissionViolationError } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createLogger,
  createNatsUserKey,
  fenceRecordKey,
  heartbeatSubject,
  hostLeaseKey,
  LEASE_BUCKET_STREAM_HARDENING,
  natsInboxPrefix,
  renderNatsAuthorization,
  telemetrySubject,
  type NatsRole,
} from '@virtfleet/shared';
import { CatalogImageSource } from '../../packages/agent/src/images/catalog-source.js';
import { HostLease } from '../../packages/agent/src/fencing/host-lease.js';
import { freePort, spawnProcess, waitForPort, type ManagedProcess } from '../support/processes.js';
import { waitUntil } from '../support/wait.js';

// Real nats-server running the generated authorization config; every check is a real client connection.
const LEASE_BUCKET = 'virtfleet_hosts';
const IMAGE_BUCKET = 'virtfleet_images';
const EVENT_STREAM = 'VIRTFLEET_EVENTS';
const log = createLogger('nats-auth-test', 'silent');

const keys = { c1: createNatsUserKey(), h1: createNatsUserKey(), h2: createNatsUserKey(), m1: createNatsUserKey() };

interface Client {
  nc: NatsConnection;
  /** Every permissions violation nats-server reported to this connection, as `operation subject`. */
  violations: string[];
}

describe('generated NATS authorization on a real nats-server', () => {
  let server: ManagedProcess;
  let url: string;
  let dir: string;
  let coordinator: Client;
  let h1: Client;
  let h2: Client;
  let monitor: Client;
  let jsm: JetStreamManager;
  let coordinatorLeases: KV;

  const login = async (role: NatsRole, name: string, seed: string): Promise<Client> => {
    const nc = await connect({ servers: url, authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)), inboxPrefix: role === 'coordinator' ? undefined : natsInboxPrefix(role, name) });
    const violations: string[] = [];
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'error' && s.error.name === 'PermissionViolationError') {
          const pe = s.error as PermissionViolationError;
          violations.push(`${pe.operation} ${pe.subject}`);
        }
      }
    })();
    return { nc, violations };
  };
  /** Waits until nats-server has reported a violation for `subject` to `client`. */
  const refused = (client: Client, operation: 'publish' | 'subscription', subject: string) =>
    waitUntil(`nats-server reports a ${operation} violation on ${subject}`, () => client.violations.includes(`${operation} ${subject}`), { timeoutMs: 5_000 }).then(() => true);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'virtfleet-nats-auth-'));
    const port = await freePort();
    const config = [
      `listen: "127.0.0.1:${port}"`,
      `jetstream { store_dir: "${join(dir, 'js')}" }`,
      renderNatsAuthorization({
        coordinators: [{ name: 'c1', nkey: keys.c1.publicKey }],
        agents: [
          { name: 'h1', nkey: keys.h1.publicKey },
          { name: 'h2', nkey: keys.h2.publicKey },
        ],
        monitors: [{ name: 'm1', nkey: keys.m1.publicKey }],
      }),
    ].join('\n');
    writeFileSync(join(dir, 'nats.conf'), config);
    server = spawnProcess('nats-server', 'nats-server', ['-c', join(dir, 'nats.conf')]);
    await waitForPort(port);
    url = `nats://127.0.0.1:${port}`;

    coordinator = await login('coordinator', 'c1', keys.c1.seed);
    // What the coordinator creates: the lease bucket (as HostLeaseMonitor does), the image store, the event stream (as EventLog does).
    coordinatorLeases = await new Kvm(coordinator.nc).create(LEASE_BUCKET, { history: 1 });
    const images = await new Objm(coordinator.nc).create(IMAGE_BUCKET, { storage: StorageType.File });
    await images.putBlob({ name: 'debian' }, image);
    jsm = await jetstreamManager(coordinator.nc);
    await jsm.streams.add({ name: EVENT_STREAM, subjects: ['virtfleet.eventlog.>'], storage: StorageType.File });
    await jetstream(coordinator.nc).publish('virtfleet.eventlog.host.h1', JSON.stringify({ type: 'io.virtfleet.host.up', subject: 'h1' }));

    h1 = await login('agent', 'h1', keys.h1.seed);
    h2 = await login('agent', 'h2', keys.h2.seed);
    monitor = await login('monitor', 'm1', keys.m1.seed);
  });
  afterAll(async () => {
    for (const c of [coordinator, h1, h2, monitor]) await c?.nc.close();
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** An 8 MiB image: large enough that JetStream asks for flow control while the agent reads it. */
  const image = Buffer.alloc(8 * 2 ** 20, 7);

  /** The subjects a coordinator-side subscriber saw, in order, until `last` arrived. */
  async function seenUntil(pattern: string, publish: () => void, last: string): Promise<string[]> {
    const seen: string[] = [];
    const sub = coordinator.nc.subscribe(pattern, { callback: (_err, msg) => void seen.push(`${msg.subject} ${msg.string()}`) });
    await coordinator.nc.flush();
    publish();
    await waitUntil(`the coordinator receives ${last}`, () => seen.includes(last), { timeoutMs: 5_000 });
    sub.unsubscribe();
    return seen;
  }

  it('agent h1 publishes its own telemetry and heartbeat; nats-server refuses its telemetry and heartbeat for h2', async () => {
    const seen = await seenUntil(
      'virtfleet.>',
      () => {
        h1.nc.publish(telemetrySubject('h2'), 'forged');
        h1.nc.publish(heartbeatSubject('h2'), 'forged');
        h1.nc.publish(heartbeatSubject('h1'), 'beat');
        h1.nc.publish(telemetrySubject('h1'), 'real');
      },
      `${telemetrySubject('h1')} real`,
    );
    // The coordinator saw h1's own messages, sent after the forged ones on the same connection, and nothing for h2.
    expect(seen).toEqual([`${heartbeatSubject('h1')} beat`, `${telemetrySubject('h1')} real`]);
    expect(await refused(h1, 'publish', telemetrySubject('h2'))).toBe(true);
    expect(await refused(h1, 'publish', heartbeatSubject('h2'))).toBe(true);
  });

  it("agent h1 renews its own lease through the real HostLease and writes its fence record; putting or reading h2's lease is refused", async () => {
    const kv = await new Kvm(jetstream(h1.nc, { timeout: 3_000 })).open(LEASE_BUCKET, { allow_direct: true });
    const lease = new HostLease(h1.nc, 'h1', 'boot-1', { bucket: LEASE_BUCKET, fenceTimeoutMs: 6_000, renewIntervalMs: 500 }, { fence: () => Promise.resolve({ stopped: 0, failed: 0 }), setLeaseHeld: () => undefined }, log, undefined, () => Promise.resolve(kv));
    await lease.start();
    try {
      await waitUntil('h1 holds its host lease', () => lease.held, { timeoutMs: 10_000 });
      const stored = await coordinatorLeases.get(hostLeaseKey('h1'));
      expect(stored?.json<{ host_id: string }>().host_id, 'the coordinator reads the lease h1 renewed').toBe('h1');
    } finally {
      lease.stop();
    }
    // Its own lease read back (what HostLease does at start) and its fence record.
    expect((await kv.get(hostLeaseKey('h1')))?.json<{ boot_id: string }>().boot_id).toBe('boot-1');
    await kv.put(fenceRecordKey('h1'), '{"host_id":"h1"}');
    expect((await coordinatorLeases.get(fenceRecordKey('h1')))?.string()).toBe('{"host_id":"h1"}');

    await (await new Kvm(h2.nc).open(LEASE_BUCKET)).put(hostLeaseKey('h2'), 'h2-own');
    await expect(kv.put(hostLeaseKey('h2'), 'stolen'), "h1 putting h2's lease").rejects.toThrow();
    await expect(kv.put(fenceRecordKey('h2'), 'forged'), "h1 storing h2's fence record").rejects.toThrow();
    await expect(kv.get(hostLeaseKey('h2')), "h1 reading h2's lease").rejects.toThrow();
    expect(await refused(h1, 'publish', `$KV.${LEASE_BUCKET}.${hostLeaseKey('h2')}`)).toBe(true);
    expect((await coordinatorLeases.get(hostLeaseKey('h2')))?.string(), "h2's lease is as h2 wrote it").toBe('h2-own');
    expect(await coordinatorLeases.get(fenceRecordKey('h2')), 'no fence record for h2').toBeNull();
  });

  it('a rollup on its own lease key purges every host lease unless the bucket has LEASE_BUCKET_STREAM_HARDENING, which refuses it', async () => {
    const h1js = jetstream(h1.nc, { timeout: 3_000 });
    const rollupAll = () => {
      const h = headers();
      h.set('Nats-Rollup', 'all');
      return h1js.publish(`$KV.${LEASE_BUCKET}.${hostLeaseKey('h1')}`, 'rollup', { headers: h });
    };
    const h2Leases = await new Kvm(h2.nc).open(LEASE_BUCKET, { allow_direct: true });
    await h2Leases.put(hostLeaseKey('h2'), 'before');
    await rollupAll();
    expect(await coordinatorLeases.get(hostLeaseKey('h2')), 'without hardening the rollup took h2 lease with it').toBeNull();

    const info = await jsm.streams.info(`KV_${LEASE_BUCKET}`);
    await jsm.streams.update(`KV_${LEASE_BUCKET}`, { ...info.config, ...LEASE_BUCKET_STREAM_HARDENING });
    await h2Leases.put(hostLeaseKey('h2'), 'after');
    await expect(rollupAll()).rejects.toThrow(/rollup/i);
    expect((await coordinatorLeases.get(hostLeaseKey('h2')))?.string()).toBe('after');
    // Hardened, the bucket still takes what agents and the coordinator write.
    await (await new Kvm(h1.nc).open(LEASE_BUCKET, { allow_direct: true })).put(hostLeaseKey('h1'), 'renewed');
    await coordinatorLeases.put('probe.c1', 'probe');
    expect((await coordinatorLeases.get(hostLeaseKey('h1')))?.string()).toBe('renewed');
  });

  it("agent h1 reads a catalog image through the real CatalogImageSource, byte for byte", async () => {
    // The coordinator's user sees every subject, JetStream's own included: it shows which API calls and flow-control replies the read made.
    const calls: string[] = [];
    const watch = coordinator.nc.subscribe('$JS.>', { callback: (_e, m) => void calls.push(m.subject) });
    await coordinator.nc.flush();
    const source = new CatalogImageSource(() => Promise.resolve(h1.nc), IMAGE_BUCKET);
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of await source.read('debian')) {
      hash.update(chunk);
      bytes += chunk.length;
    }
    await h1.nc.flush();
    await coordinator.nc.flush();
    watch.unsubscribe();
    expect(bytes).toBe(image.length);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(image).digest('hex'));
    expect(calls.filter((c) => c.startsWith(`$JS.FC.OBJ_${IMAGE_BUCKET}.`)).length, 'JetStream asked for flow control, and h1 answered').toBeGreaterThan(0);
    expect(calls.filter((c) => c.startsWith(`$JS.API.CONSUMER.CREATE.OBJ_${IMAGE_BUCKET}.`)), 'one consumer, filtered on the image chunks').toEqual([expect.stringMatching(new RegExp(`\\.\\$O\\.${IMAGE_BUCKET}\\.C\\.[A-Za-z0-9]+$`))]);
    expect(h1.violations, 'no permission was missing while reading').toEqual([`publish ${telemetrySubject('h2')}`, `publish ${heartbeatSubject('h2')}`, `publish $KV.${LEASE_BUCKET}.${hostLeaseKey('h2')}`, `publish $KV.${LEASE_BUCKET}.${fenceRecordKey('h2')}`, `publish $JS.API.DIRECT.GET.KV_${LEASE_BUCKET}.$KV.${LEASE_BUCKET}.${hostLeaseKey('h2')}`]);
  });

  it('the monitor receives events and reads the event stream, but nats-server refuses its telemetry, events and lease writes', async () => {
    const events: string[] = [];
    monitor.nc.subscribe('virtfleet.events.>', { callback: (_err, msg) => void events.push(msg.subject) });
    await monitor.nc.flush();
    coordinator.nc.publish('virtfleet.events.host.h1', '{}');
    await waitUntil('the monitor receives the event', () => events.includes('virtfleet.events.host.h1'), { timeoutMs: 5_000 });

    const consumer = await jetstream(monitor.nc).consumers.get(EVENT_STREAM, { deliver_policy: DeliverPolicy.All });
    const first = await consumer.next({ expires: 5_000 });
    expect(first?.json<{ type: string }>().type, 'the first stored event').toBe('io.virtfleet.host.up');
    expect(monitor.violations, 'no permission was missing for the subscription and the stream read').toEqual([]);

    const seen = await seenUntil(
      'virtfleet.>',
      () => {
        monitor.nc.publish(telemetrySubject('h1'), 'forged');
        monitor.nc.publish('virtfleet.events.host.h1', 'forged');
        monitor.nc.publish('virtfleet.eventlog.host.h1', 'forged');
        coordinator.nc.publish('virtfleet.events.host.marker', 'marker');
      },
      'virtfleet.events.host.marker marker',
    );
    // The monitor's publishes were flushed before the coordinator's marker was even sent.
    await monitor.nc.flush();
    expect(await refused(monitor, 'publish', telemetrySubject('h1'))).toBe(true);
    expect(await refused(monitor, 'publish', 'virtfleet.events.host.h1')).toBe(true);
    expect(await refused(monitor, 'publish', 'virtfleet.eventlog.host.h1')).toBe(true);
    expect(seen.filter((s) => s.endsWith('forged')), 'no forged message reached a subscriber').toEqual([]);
    expect((await jsm.streams.info(EVENT_STREAM)).state.messages, 'the stream holds only the coordinator event').toBe(1);
    await expect(new Kvm(jetstream(monitor.nc, { timeout: 2_000 })).open(LEASE_BUCKET).then((kv) => kv.put(hostLeaseKey('h1'), 'x'))).rejects.toThrow();
  });

  it('the monitor cannot subscribe to telemetry or to an agent inbox', async () => {
    monitor.nc.subscribe('virtfleet.telemetry.>');
    monitor.nc.subscribe(`${natsInboxPrefix('agent', 'h1')}.>`);
    expect(await refused(monitor, 'subscription', 'virtfleet.telemetry.>')).toBe(true);
    expect(await refused(monitor, 'subscription', `${natsInboxPrefix('agent', 'h1')}.>`)).toBe(true);
    h2.nc.subscribe(`${natsInboxPrefix('agent', 'h1')}.>`);
    expect(await refused(h2, 'subscription', `${natsInboxPrefix('agent', 'h1')}.>`), "h2 cannot read h1's replies").toBe(true);
  });

  it('a client with no credentials, or with an nkey the config does not list, cannot connect', async () => {
    await expect(connect({ servers: url, reconnect: false })).rejects.toThrow(/Authorization Violation/i);
    const stranger = createNatsUserKey();
    await expect(connect({ servers: url, reconnect: false, authenticator: nkeyAuthenticator(new TextEncoder().encode(stranger.seed)) })).rejects.toThrow(/Authorization Violation/i);
  });

  it('known limit (nats-server#8274): a push consumer the monitor creates delivers stored events to a subject it may not publish to', async () => {
    const delivered: string[] = [];
    const sub = coordinator.nc.subscribe('virtfleet.events.replayed', { callback: (_e, m) => void delivered.push(m.string()) });
    await coordinator.nc.flush();
    await (await jetstreamManager(monitor.nc)).consumers.add(EVENT_STREAM, { name: 'replay', deliver_subject: 'virtfleet.events.replayed', ack_policy: AckPolicy.None });
    await waitUntil('the push consumer delivers', () => delivered.length > 0, { timeoutMs: 5_000 });
    sub.unsubscribe();
    expect(delivered[0], 'the replayed message is a genuine stored event, not the monitor own').toContain('io.virtfleet.host.up');
  });
});
