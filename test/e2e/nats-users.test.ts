import { readFileSync } from 'node:fs';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, nkeyAuthenticator, type NatsConnection, type PermissionViolationError } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { revokeNatsUser } from '@virtfleet/cli';
import type { CoordinatorApi } from '@virtfleet/cli';
import { DEFAULT_EVENT_STREAM, EVENT_TYPES, fenceRecordKey, heartbeatSubject, hostLeaseKey, natsInboxPrefix, telemetrySubject, type NatsRole } from '@virtfleet/shared';
import { testTelemetry } from '../../packages/coordinator/src/hosts/telemetry.test-support.js';
import { startCluster, waitForHostsUp, type TestAgent, type TestCluster } from '../support/cluster.js';
import { coordinatorConfigOf } from '../support/configs.js';
import { waitFor, waitUntil } from '../support/wait.js';

const FAKE = { drivers: { fake: { enabled: true } } };

interface Client {
  nc: NatsConnection;
  /** Each permissions violation nats-server reported to this connection, as `operation subject`. */
  violations: string[];
}

// Real daemons behind a nats-server whose users `virtfleet nats issue` made: what one user's
// credential can and cannot do to the cluster, checked by what the coordinators then show.
describe('NATS users: every connection is a user held to its own subjects', () => {
  let cluster: TestCluster;
  let follower: CoordinatorApi;
  let a: TestAgent;
  let b: TestAgent;
  const clients: Client[] = [];

  /** A connection as `role` user `name`, with the seed its daemon uses (issued now if there is none). */
  const login = async (role: Exclude<NatsRole, 'admin'>, name: string): Promise<Client> => {
    const { nkeySeedFile } = await cluster.nats.daemonConfig(role, name);
    const nc = await connect({
      servers: [cluster.nats.url],
      authenticator: nkeyAuthenticator(new TextEncoder().encode(readFileSync(nkeySeedFile!, 'utf8').trim())),
      ...(role === 'coordinator' ? {} : { inboxPrefix: natsInboxPrefix(role, name) }),
    });
    const client: Client = { nc, violations: [] };
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'error' && s.error.name === 'PermissionViolationError') {
          const pe = s.error as PermissionViolationError;
          client.violations.push(`${pe.operation} ${pe.subject}`);
        }
      }
    })();
    clients.push(client);
    return client;
  };
  const refused = (client: Client, subject: string) =>
    waitUntil(`nats-server to refuse a publish on ${subject}`, () => client.violations.includes(`publish ${subject}`), { timeoutMs: 5_000 });
  /** What the coordinators show of a host: the fields forged telemetry or replayed events would change. */
  const view = async (api: CoordinatorApi, id: string) => {
    const h = (await api.hosts()).hosts.find((x) => x.id === id);
    return h && { status: h.status, trust: h.trust_level, vcpus: h.capacity?.vcpus, address: h.address, cordoned: h.cordoned };
  };
  const forged = (hostId: string) =>
    JSON.stringify(testTelemetry(hostId, { trust_level: 10, capacity: { vcpus: 4096, memory_mib: 4_194_304, disk_gib: 16_384 }, address: '127.0.0.1:1', seq: 1_000_000 }));

  beforeAll(async () => {
    cluster = await startCluster({ agents: [FAKE, FAKE] });
    [a, b] = cluster.agents as [TestAgent, TestAgent];
    follower = cluster.client((await cluster.addCoordinator('follower')).address, 10_000);
    await waitForHostsUp(cluster);
  });
  afterAll(async () => {
    for (const c of clients) await c.nc.close().catch(() => undefined);
    follower?.close();
    await cluster?.stop();
  });

  it("refuses an agent's credential speaking for another host: telemetry, heartbeat, lease and fence record; nothing about that host changes", async () => {
    const before = await view(cluster.api, b.hostId);
    const leaseBucket = coordinatorConfigOf(cluster.coordinator).hosts.leaseBucket;
    const admin = await cluster.nats.connect();
    const leases = await new Kvm(admin).open(leaseBucket);
    const bLease = (await leases.get(hostLeaseKey(b.hostId)))?.json<{ boot_id: string }>();
    expect(bLease?.boot_id, "b's agent holds its lease").toBeTruthy();

    const asA = await login('agent', a.hostId);
    for (let i = 0; i < 8; i++) asA.nc.publish(telemetrySubject(b.hostId), forged(b.hostId));
    asA.nc.publish(heartbeatSubject(b.hostId), JSON.stringify({ host_id: b.hostId }));
    asA.nc.publish(telemetrySubject('evil'), forged('evil'));
    await refused(asA, telemetrySubject(b.hostId));
    await refused(asA, heartbeatSubject(b.hostId));
    await refused(asA, telemetrySubject('evil'));
    const aLeases = await new Kvm(asA.nc).open(leaseBucket, { allow_direct: true, timeout: 2_000 });
    await expect(aLeases.put(hostLeaseKey(b.hostId), JSON.stringify({ host_id: b.hostId, boot_id: 'stolen', renewed_at: new Date().toISOString() })), "a renewing b's lease").rejects.toThrow();
    await expect(aLeases.put(fenceRecordKey(b.hostId), '{}'), "a writing b's fence record").rejects.toThrow();
    await expect(aLeases.get(hostLeaseKey(b.hostId)), "a reading b's lease").rejects.toThrow();

    // Its own subject with another host's id in the message: nats-server lets it through, the coordinator drops it.
    asA.nc.publish(telemetrySubject(a.hostId), forged(b.hostId));
    await waitUntil('the coordinator to drop telemetry whose subject and host id disagree', () => cluster.coordinator.output.join('').includes('dropped invalid telemetry'), { timeoutMs: 5_000 });

    // Two telemetry intervals and then some: anything that got through would show by now.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await view(cluster.api, b.hostId)).toEqual(before);
    expect(await view(follower, b.hostId)).toEqual(before);
    expect(await view(cluster.api, 'evil')).toBeUndefined();
    expect((await leases.get(hostLeaseKey(b.hostId)))?.json<{ boot_id: string }>().boot_id).toBe(bLease?.boot_id);
    expect(await leases.get(fenceRecordKey(b.hostId))).toBeNull();

    // The control: the same forged message from a user allowed that subject does make a host.
    admin.publish(telemetrySubject('evil'), forged('evil'));
    await waitFor('a host evil from the admin user’s message', () => view(cluster.api, 'evil'), { timeoutMs: 5_000 });
    expect((await view(cluster.api, 'evil'))?.trust).toBe(10);
    await admin.close();
  });

  it('refuses a connection without credentials, and a user once it is revoked and the server has reloaded', async () => {
    await expect(connect({ servers: [cluster.nats.url], reconnect: false })).rejects.toThrow(/Authorization Violation/i);
    const { nkeySeedFile } = await cluster.nats.daemonConfig('monitor', 'gone');
    const seed = readFileSync(nkeySeedFile!, 'utf8').trim();
    const asGone = () => connect({ servers: [cluster.nats.url], reconnect: false, authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)), inboxPrefix: natsInboxPrefix('monitor', 'gone') });
    await (await asGone()).close();
    revokeNatsUser(cluster.nats.usersDir, 'monitor', 'gone');
    cluster.nats.process.child.kill('SIGHUP');
    await waitUntil('the revoked user to be refused', () => asGone().then((nc) => nc.close().then(() => false), () => true), { timeoutMs: 5_000, intervalMs: 100 });
  });

  it("lets the monitoring user read events and nothing else: its forgeries are refused and a replay of stored host events changes no coordinator's view", async () => {
    const monitor = await login('monitor', 'grafana');
    const live: { type: string; subject: string; sequence: number }[] = [];
    monitor.nc.subscribe('virtfleet.events.>', { callback: (_e, m) => void live.push(m.json()) });
    await monitor.nc.flush();

    // Cordoned, then uncordoned: the stream holds both, and a replay of the first would cordon the host again.
    await cluster.api.cordon(a.hostId, true);
    await cluster.api.cordon(a.hostId, false);
    const cordonedEvent = await waitFor('the cordoned event on the monitor’s subscription', () => live.find((e) => e.type === EVENT_TYPES.hostCordoned && e.subject === a.hostId), { timeoutMs: 5_000 });
    await waitFor('the uncordoned event', () => live.find((e) => e.type === EVENT_TYPES.hostUncordoned && e.subject === a.hostId), { timeoutMs: 5_000 });
    await waitUntil('the follower to show the host uncordoned', async () => (await view(follower, a.hostId))?.cordoned === false, { timeoutMs: 5_000 });
    const before = { leader: await view(cluster.api, a.hostId), follower: await view(follower, a.hostId) };
    const workloadsBefore = (await cluster.api.list({})).workloads.length;

    // It reads the stream's history through an ordered consumer of its own.
    const ordered = await jetstream(monitor.nc).consumers.get(DEFAULT_EVENT_STREAM, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: cordonedEvent.sequence });
    expect((await ordered.next({ expires: 5_000 }))?.json<{ type: string }>().type).toBe(EVENT_TYPES.hostCordoned);
    const jsm = await jetstreamManager(monitor.nc);

    // Forgeries: telemetry, a host event, a state write. nats-server refuses each.
    monitor.nc.publish(telemetrySubject(a.hostId), forged(a.hostId));
    monitor.nc.publish(`virtfleet.events.host.${a.hostId}`, JSON.stringify({ ...cordonedEvent, sequence: cordonedEvent.sequence + 1_000_000 }));
    await refused(monitor, telemetrySubject(a.hostId));
    await refused(monitor, `virtfleet.events.host.${a.hostId}`);
    const state = coordinatorConfigOf(cluster.coordinator).state.bucket;
    await expect((await new Kvm(monitor.nc).open(state, { timeout: 2_000 })).put('workload.forged', '{}')).rejects.toThrow();

    // A replay: a push consumer delivering the stored "cordoned" event onto the host-event subject
    // followers listen to. Explicit acks the monitor cannot send hold it to that one message.
    const replayed: { reply: string }[] = [];
    const admin = await cluster.nats.connect();
    admin.subscribe(`virtfleet.events.host.${a.hostId}`, { callback: (_e, m) => void (m.reply ? replayed.push({ reply: m.reply }) : undefined) });
    await admin.flush();
    await jsm.consumers.add(DEFAULT_EVENT_STREAM, {
      name: 'replay',
      deliver_subject: `virtfleet.events.host.${a.hostId}`,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: cordonedEvent.sequence,
      ack_policy: AckPolicy.Explicit,
      max_ack_pending: 1,
      inactive_threshold: 30_000_000_000,
    });
    await waitUntil('the replayed event to arrive on the followers’ subject', () => replayed.length > 0, { timeoutMs: 5_000 });
    await new Promise((r) => setTimeout(r, 500));
    expect({ leader: await view(cluster.api, a.hostId), follower: await view(follower, a.hostId) }).toEqual(before);
    expect(cluster.coordinator.output.join('')).toContain('host event ignored');
    expect((await cluster.api.list({})).workloads).toHaveLength(workloadsBefore);
    await admin.close();
  });
});
