import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorApi } from '@virtfleet/cli';
import type { pb } from '@virtfleet/shared';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { runCli } from '../support/processes.js';
import { refusal } from '../support/refusal.js';
import { waitFor, waitUntil } from '../support/wait.js';

const container = (name: string, tenant?: string) => ({ name, kind: 'container', image: 'sim:latest', vcpus: 0.1, memory_mib: 16, ...(tenant ? { tenant } : {}) });

describe('operator identities: tokens, roles, tenants and the audit trail', () => {
  let cluster: TestCluster;
  let followerAddress: string;
  const clients: CoordinatorApi[] = [];
  /** A client of the leader (or, with `address`, of another coordinator) calling with `token`. */
  const as = (token: string, address = cluster.coordinatorAddress) => {
    const c = new CoordinatorApi({ address, timeoutMs: 10_000, tls: cluster.operatorTls, token });
    clients.push(c);
    return c;
  };
  const create = async (role: string, tenant = '') => (await cluster.api.createToken({ role, tenant, ttl_seconds: '0', description: `rbac ${role} ${tenant}`, request_id: '' })).bearer;

  beforeAll(async () => {
    cluster = await startCluster({ agents: [{ drivers: { fake: { enabled: true } } }] });
    followerAddress = (await cluster.addCoordinator('follower')).address;
    await waitForHostsUp(cluster);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await cluster?.stop();
  });

  it('lets a viewer read and nothing more, and a refused call changes nothing', async () => {
    const mine = await cluster.api.submit({ request_id: 'rbac-base', spec: container('rbac-base') });
    await waitForState(cluster, mine.id, 'running');
    const viewer = as(await create('viewer'));
    const before = (await cluster.api.list({})).workloads.map((w) => `${w.id}:${w.state}`).sort();
    expect((await viewer.list({})).workloads.map((w) => w.id)).toContain(mine.id);
    for (const [what, call] of [
      ['delete', viewer.act('DeleteWorkload', { id: mine.id, request_id: 'rbac-viewer-delete' })],
      ['submit', viewer.submit({ request_id: 'rbac-viewer-submit', spec: container('rbac-viewer') })],
      ['cordon', viewer.cordon(cluster.agents[0]!.hostId, true)],
      ['create a token', viewer.createToken({ role: 'admin', tenant: '', ttl_seconds: '0', description: '', request_id: '' })],
      // A client stream: refused at its first message, before the handler reads anything.
      ['import an image', viewer.importImage({ name: 'rbac-img', format: 'raw', size: '4', sha256: 'a'.repeat(64) }, async function* () {
        yield Buffer.from('abcd');
      })],
    ] as const) {
      const err = await refusal(call);
      expect(err.code, what).toBe(status.PERMISSION_DENIED);
      expect(err.message, what).toMatch(/^token [0-9a-f]{16} \(viewer\) may not call \w+: it takes the (operator|admin) role$/);
    }
    expect((await cluster.api.list({})).workloads.map((w) => `${w.id}:${w.state}`).sort(), 'no refused call changed anything').toEqual(before);
    expect((await cluster.api.listImages()).images.map((i) => i.name)).not.toContain('rbac-img');
    expect(cluster.coordinator.running).toBe(true);
  });

  it('keeps a tenant-scoped operator to its own tenant: it cannot see or touch another tenant’s workloads', async () => {
    const blue = as(await create('operator', 'blue'));
    const red = as(await create('operator', 'red'));
    const b = await blue.submit({ request_id: 'rbac-blue', spec: container('rbac-blue') });
    expect(b.spec?.tenant, 'a spec naming no tenant goes into the caller’s').toBe('blue');
    const r = await red.submit({ request_id: 'rbac-red', spec: container('rbac-red', 'red') });
    await waitForState(cluster, r.id, 'running');
    const crossing = await refusal(blue.submit({ request_id: 'rbac-blue-into-red', spec: container('rbac-sneak', 'red') }));
    expect(crossing.code).toBe(status.PERMISSION_DENIED);
    expect(crossing.message).toMatch(/may submit only into tenant blue, not red/);

    expect((await blue.list({})).workloads.map((w) => w.spec?.name).sort()).toEqual(['rbac-blue']);
    expect((await blue.queue()).entries.every((e) => e.tenant === 'blue')).toBe(true);
    for (const ref of [r.id, 'rbac-red']) {
      for (const [what, call] of [
        ['get', blue.get(ref)],
        ['explain', blue.explain(ref)],
        ['delete', blue.act('DeleteWorkload', { id: ref, request_id: `rbac-blue-del-${ref}` })],
        ['stop', blue.act('StopWorkload', { id: ref, request_id: `rbac-blue-stop-${ref}` })],
        ['logs', blue.streamLogs({ id: ref, options: {} }, () => undefined, new AbortController().signal)],
      ] as const) {
        const err = await refusal(call);
        expect(err.code, `${what} ${ref}`).toBe(status.NOT_FOUND);
      }
    }
    expect((await cluster.api.get(r.id)).state, 'red’s workload is untouched').toBe('running');
    // Reads across tenants are refused for cluster-wide calls too.
    expect((await refusal(blue.planRebalance('consolidate'))).code).toBe(status.PERMISSION_DENIED);

    // Events: blue sees its own workload's, and no other.
    const seen: pb.Event__Output[] = [];
    const abort = new AbortController();
    await blue.streamEvents({ from_start: true, follow: false }, (e) => void seen.push(e), abort.signal);
    expect(seen.length).toBeGreaterThan(0);
    expect(new Set(seen.map((e) => e.subject))).toEqual(new Set([b.id]));
  });

  it('stops a revoked token within a second on the leader and on a follower', async () => {
    const bearer = await create('viewer');
    const onLeader = as(bearer);
    const onFollower = as(bearer, followerAddress);
    await onLeader.list({});
    await waitUntil('the follower to know the new token', async () => onFollower.list({}).then(() => true, () => false), { timeoutMs: 5_000 });
    const id = /^vft_([0-9a-f]{16})_/.exec(bearer)![1]!;
    const revokedAt = performance.now();
    await cluster.api.revokeToken({ id, request_id: `rbac-revoke-${id}` });
    for (const [where, client] of [['leader', onLeader], ['follower', onFollower]] as const) {
      await waitUntil(`the ${where} to refuse the revoked token`, async () => (await onLeaderOrFollower(client)) === status.UNAUTHENTICATED, { timeoutMs: 1_000, intervalMs: 20 });
      expect(performance.now() - revokedAt, `${where}: refused within a second of the revocation`).toBeLessThan(1_000);
    }
    const err = await refusal(onFollower.list({}));
    expect(err.message).toMatch(new RegExp(`^token ${id} was revoked at `));
    const listed = (await cluster.api.listTokens()).tokens.find((t) => t.id === id);
    expect(listed?.revoked_at).not.toBe('');
  });

  it('refuses an operator certificate without a token and not listed in auth.certificateRoles', async () => {
    const mallory = await cluster.pki.issue('operator', 'mallory');
    const c = new CoordinatorApi({ address: cluster.coordinatorAddress, timeoutMs: 10_000, tls: mallory });
    clients.push(c);
    const err = await refusal(c.list({}));
    expect(err.code).toBe(status.UNAUTHENTICATED);
    expect(err.message).toMatch(/a bearer token is required/);
    const forged = await refusal(as('vft_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA').list({}));
    expect(forged.code).toBe(status.UNAUTHENTICATED);
    expect(forged.message).toMatch(/not one this cluster issued/);
  });

  it('audits every mutating call, allowed or denied, with the caller; the CLI manages tokens and exits 6 when refused', async () => {
    const created = await cluster.cli('-o', 'json', 'token', 'create', '--role', 'viewer', '--ttl', '1h', '--description', 'cli viewer');
    expect(created.code, created.stderr).toBe(0);
    const { bearer, token } = JSON.parse(created.stdout) as { bearer: string; token: { id: string; expires_at: string } };
    expect(Date.parse(token.expires_at) - Date.now()).toBeGreaterThan(3_500_000);
    const denied = await runCli(['--coordinator', cluster.coordinatorAddress, 'workload', 'delete', 'rbac-base'], { ...cluster.cliEnv, VIRTFLEET_TOKEN: bearer });
    expect(denied.code, denied.stderr).toBe(6);
    expect(denied.stderr).toMatch(/may not call DeleteWorkload/);
    const ls = await cluster.cli('token', 'ls');
    expect(ls.stdout).toContain(token.id);
    expect(ls.stdout).not.toContain(bearer.slice(21));

    const audit = await waitFor(
      'the audit events',
      async () => {
        const r = await cluster.cli('-o', 'json', 'events', '--type', 'io.virtfleet.audit');
        const events = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; subject: string; data: { caller: { id: string; role: string } | null; method: string; object: string; result: string } });
        const deniedDelete = events.find((e) => e.type === 'io.virtfleet.audit.denied' && e.data.method === 'DeleteWorkload' && e.data.caller?.id === token.id);
        const allowedCreate = events.find((e) => e.type === 'io.virtfleet.audit.allowed' && e.data.method === 'CreateToken' && e.data.caller?.id === 'e2e');
        return deniedDelete && allowedCreate ? { deniedDelete, allowedCreate } : undefined;
      },
      { timeoutMs: 10_000 },
    );
    expect(audit.deniedDelete).toMatchObject({ subject: `token-${token.id}`, data: { object: 'rbac-base', result: 'PERMISSION_DENIED', caller: { role: 'viewer' } } });
    expect(audit.allowedCreate).toMatchObject({ subject: 'certificate-e2e', data: { result: 'OK', caller: { role: 'admin' } } });
  });
});

/** The status a read gets now: OK (0) or the refusal's code. */
async function onLeaderOrFollower(client: CoordinatorApi): Promise<number> {
  return client.list({}).then(
    () => status.OK,
    (err: { code?: number }) => err.code ?? status.UNKNOWN,
  );
}
