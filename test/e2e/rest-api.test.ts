import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { httpsRequest, httpsStream } from '../support/https.js';
import { waitUntil } from '../support/wait.js';

const container = (name: string) => ({ name, kind: 'container', image: 'sim:latest', vcpus: 0.1, memory_mib: 16 });

/** The events of a Server-Sent Events text: id, type and data of each. */
function sseEvents(text: string): { id?: string; event?: string; data: { type: string; subject: string; sequence: string; data?: string } }[] {
  return text
    .split('\n\n')
    .map((block) => block.split('\n').filter((l) => !l.startsWith(':')))
    .filter((lines) => lines.some((l) => l.startsWith('data: ')))
    .map((lines) => {
      const field = (name: string) => lines.find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
      return { ...(field('id') ? { id: field('id') } : {}), ...(field('event') ? { event: field('event') } : {}), data: JSON.parse(field('data')!) as { type: string; subject: string; sequence: string; data?: string } };
    });
}

// The operator API over HTTPS/JSON on the coordinator's HTTP port, through its REST gateway, against a real cluster.
describe('REST/JSON API', () => {
  let cluster: TestCluster;
  let admin: string;
  let viewer: string;
  const call = (method: string, body: unknown, token?: string, extra: { httpMethod?: string; raw?: string } = {}) =>
    httpsRequest(cluster.coordinatorHttpPort, `/v1/${method}`, {
      ca: cluster.pki.ca,
      method: extra.httpMethod ?? 'POST',
      body: extra.raw ?? JSON.stringify(body),
      headers: token ? { authorization: `Bearer ${token}` } : {},
    }).then((r) => ({ status: r.status, json: r.body ? (JSON.parse(r.body) as Record<string, unknown> & { error?: { code: string; message: string; field?: string } }) : {} }));
  const state = async () => (await cluster.api.list({})).workloads.map((w) => `${w.id}:${w.state}:${w.desired_state}`).sort();

  beforeAll(async () => {
    cluster = await startCluster({ agents: [{ drivers: { fake: { enabled: true } } }] });
    await waitForHostsUp(cluster);
    const token = async (role: string) => (await cluster.api.createToken({ role, tenant: '', ttl_seconds: '0', description: `rest ${role}`, request_id: '' })).bearer;
    admin = await token('admin');
    viewer = await token('viewer');
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('submits, reads and acts on workloads with the same answers as the gRPC API', async () => {
    const submitted = await call('SubmitWorkload', { request_id: 'rest-1', spec: container('rest-web') }, admin);
    expect(submitted.status, JSON.stringify(submitted.json)).toBe(200);
    const id = submitted.json.id as string;
    await waitForState(cluster, id, 'running');
    const got = await call('GetWorkload', { id: 'rest-web' }, viewer);
    expect(got.json).toMatchObject({ id, state: 'running', spec: { name: 'rest-web', vcpus: 0.1, memory_mib: 16 } });
    expect(got.json).toEqual(JSON.parse(JSON.stringify(await cluster.api.get(id))));
    const again = await call('SubmitWorkload', { request_id: 'rest-1', spec: container('rest-web') }, admin);
    expect(again.json.id, 'a repeated request id answers the first result').toBe(id);

    expect((await call('StopWorkload', { id, request_id: 'rest-stop-1' }, admin)).status).toBe(200);
    await waitForState(cluster, id, 'stopped');
    const listed = await call('ListWorkloads', {}, viewer);
    expect((listed.json.workloads as { id: string; state: string }[]).find((w) => w.id === id)?.state).toBe('stopped');
  });

  it.each([
    { name: 'no token', method: 'ListWorkloads', body: {}, token: () => undefined, status: 401, code: 'UNAUTHENTICATED', field: undefined },
    { name: 'an unknown token', method: 'ListWorkloads', body: {}, token: () => 'vft_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', status: 401, code: 'UNAUTHENTICATED', field: undefined },
    { name: 'a viewer deleting', method: 'DeleteWorkload', body: { id: 'rest-web', request_id: 'rest-v-del' }, token: () => viewer, status: 403, code: 'PERMISSION_DENIED', field: undefined },
    { name: 'an unknown field', method: 'SubmitWorkload', body: { request_id: 'rest-x', spec: { ...container('rest-x'), memroy: 1 } }, token: () => admin, status: 400, code: 'INVALID_ARGUMENT', field: 'spec.memroy' },
    { name: 'a spec the API refuses', method: 'SubmitWorkload', body: { request_id: 'rest-y', spec: { ...container('rest-y'), memory_mib: 0 } }, token: () => admin, status: 400, code: 'INVALID_ARGUMENT', field: 'spec.memory_mib' },
    { name: 'a shell metacharacter in a name', method: 'SubmitWorkload', body: { request_id: 'rest-z', spec: container('a;rm -rf /') }, token: () => admin, status: 400, code: 'INVALID_ARGUMENT', field: 'spec.name' },
    { name: 'an unknown workload', method: 'StartWorkload', body: { id: 'no-such', request_id: 'rest-nf' }, token: () => admin, status: 404, code: 'NOT_FOUND', field: undefined },
    { name: 'pausing a stopped workload', method: 'PauseWorkload', body: { id: 'rest-web', request_id: 'rest-p' }, token: () => admin, status: 400, code: 'FAILED_PRECONDITION', field: undefined },
    { name: 'an unknown method', method: 'DropEverything', body: {}, token: () => admin, status: 404, code: 'NOT_FOUND', field: 'path' },
  ])('answers $name with $status $code and changes nothing', async ({ method, body, token, status, code, field }) => {
    const before = await state();
    const r = await call(method, body, token());
    expect([r.status, r.json.error?.code, r.json.error?.field], JSON.stringify(r.json)).toEqual([status, code, field]);
    expect(r.json.error?.message).toBeTruthy();
    expect(await state()).toEqual(before);
  });

  it('refuses malformed JSON, a GET on a unary method, and a body past grpc.maxMessageBytes', async () => {
    const malformed = await call('SubmitWorkload', undefined, admin, { raw: '{"spec": ' });
    expect([malformed.status, malformed.json.error?.field]).toEqual([400, 'body']);
    const get = await httpsRequest(cluster.coordinatorHttpPort, '/v1/ListWorkloads', { ca: cluster.pki.ca, headers: { authorization: `Bearer ${viewer}` } });
    expect([get.status, get.headers.allow]).toEqual([405, 'POST']);
    const huge = await call('SubmitWorkload', undefined, admin, { raw: JSON.stringify({ request_id: 'rest-huge', spec: { ...container('rest-huge'), labels: { big: 'x'.repeat(5 * 2 ** 20) } } }) }).catch((err: Error) => ({ status: 0, json: { error: { code: err.message } } }));
    expect(huge.status === 429 || huge.status === 0, JSON.stringify(huge.json).slice(0, 200)).toBe(true);
    expect(cluster.coordinator.running).toBe(true);
  });

  it('serves an OpenAPI 3 document of every method', async () => {
    const r = await httpsRequest(cluster.coordinatorHttpPort, '/openapi.json', { ca: cluster.pki.ca });
    const doc = JSON.parse(r.body) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toBe('3.0.3');
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/SubmitWorkload', '/v1/ListHosts', '/v1/CreateToken', '/v1/WatchEvents']));
    expect(Object.keys(doc.paths['/v1/WatchEvents']!)).toEqual(['get']);
  });

  it('answers a stream that fails before its first message with its JSON error, and stays up', async () => {
    // The fake driver keeps no logs. The gateway used to write the SSE headers again at the stream's end, which killed the coordinator.
    const r = await httpsRequest(cluster.coordinatorHttpPort, '/v1/WorkloadLogs?id=rest-web', { ca: cluster.pki.ca, headers: { authorization: `Bearer ${viewer}` } });
    expect([r.status, (JSON.parse(r.body) as { error?: { code: string } }).error?.code], r.body).toEqual([501, 'UNIMPLEMENTED']);
    expect((await call('ListWorkloads', {}, viewer)).status, 'the coordinator still answers').toBe(200);
  });

  it('streams events as Server-Sent Events, resumable from Last-Event-ID', async () => {
    const path = '/v1/WatchEvents?from_start=true&follow=true&type_prefix=io.virtfleet.workload';
    const first = await httpsStream(cluster.coordinatorHttpPort, path, { ca: cluster.pki.ca, headers: { authorization: `Bearer ${viewer}` } });
    expect([first.status, first.headers['content-type']]).toEqual([200, 'text/event-stream; charset=utf-8']);
    await waitUntil('the retained workload events', () => sseEvents(first.text()).length >= 3, { timeoutMs: 10_000 });
    first.close();
    const seen = sseEvents(first.text());
    expect(seen.every((e) => e.id === e.data.sequence && e.event === e.data.type)).toBe(true);
    const lastId = seen.at(-1)!.id!;

    // While nobody listens, more happens; a reconnect with Last-Event-ID gets exactly what followed.
    const submitted = await call('SubmitWorkload', { request_id: 'rest-2', spec: container('rest-sse') }, admin);
    await waitForState(cluster, submitted.json.id as string, 'running');
    const resumed = await httpsStream(cluster.coordinatorHttpPort, path, { ca: cluster.pki.ca, headers: { authorization: `Bearer ${viewer}`, 'last-event-id': lastId } });
    const reachedRunning = (e: { data: { subject: string; data?: string } }) => e.data.subject === submitted.json.id && (JSON.parse(e.data.data ?? '{}') as { to?: string }).to === 'running';
    await waitUntil('the events since', () => sseEvents(resumed.text()).some(reachedRunning), { timeoutMs: 10_000 });
    resumed.close();
    const after = sseEvents(resumed.text()).map((e) => e.id);
    // Exactly what the log holds after that event: nothing missed, nothing again.
    const replay = await httpsRequest(cluster.coordinatorHttpPort, '/v1/WatchEvents?from_start=true&type_prefix=io.virtfleet.workload', { ca: cluster.pki.ca, headers: { authorization: `Bearer ${viewer}` } });
    const expected = sseEvents(replay.body).map((e) => e.id).filter((id) => BigInt(id!) > BigInt(lastId));
    expect(after).toEqual(expected.slice(0, after.length));
    expect(after.length).toBeGreaterThanOrEqual(3);

    const refused = await httpsStream(cluster.coordinatorHttpPort, path, { ca: cluster.pki.ca });
    refused.close();
    expect(refused.status).toBe(401);
  });
});
