import { status, type handleUnaryCall, type ServerUnaryCall } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, EVENT_TYPES, type pb } from '@virtfleet/shared';
import { RequestLedger } from '../requests/request-ledger.js';
import { testWorkload } from '../workloads/workload.test-support.js';
import { HostForgetter } from './host-forgetter.js';
import { controllers, harness, type Harness } from './host-drainer.test-support.js';
import { hostHandlers } from './host-service.js';

const log = createLogger('test', 'silent');

afterEach(async () => {
  for (const c of controllers.splice(0)) await c.stop();
});

/** Calls a unary handler as grpc-js would; a refusal rejects with its ServiceError. */
function call<Req, Res>(handler: handleUnaryCall<Req, Res>, request: Req): Promise<Res> {
  return new Promise((resolve, reject) => handler({ request } as ServerUnaryCall<Req, Res>, (err, res) => (err ? reject(err) : resolve(res!))));
}

function service(h: Harness) {
  const requests = new RequestLedger(h.store, log);
  const forgetter = new HostForgetter(h.controller, h.registry, h.store, { drains: h.drainer, leases: { forget: () => undefined }, agents: { forget: () => undefined } }, h.sink, { ttlMs: 10_000, forgetDownAfterMs: 0 }, log);
  return hostHandlers(h.drainer, forgetter, h.controller, h.registry, requests, log);
}

const drainRequest = (overrides: Partial<pb.DrainHostRequest__Output> = {}): pb.DrainHostRequest__Output => ({ host_id: 'h1', request_id: 'r1', parallel: 0, deadline_seconds: 0, mode: '', ...overrides });

describe('DrainHost, GetHostDrain, UndrainHost', () => {
  it('answers a repeated request id with the first answer and starts one drain; the same id with other parameters is refused', async () => {
    const h = await harness(() => ({ refuse: 'workload a is a container; only VMs migrate, and only live' }), [testWorkload('a')]);
    const api = service(h);
    const first = await call(api.DrainHost, drainRequest());
    expect(first).toMatchObject({ host_id: 'h1', state: 'draining', mode: 'auto', parallel: 2, waiting: 1 });
    await h.drainer.idle();
    expect(await call(api.DrainHost, drainRequest()), 'a repeat gets the first answer').toEqual(first);
    await expect(call(api.DrainHost, drainRequest({ parallel: 3 }))).rejects.toMatchObject({ code: status.FAILED_PRECONDITION, details: expect.stringMatching(/request_id r1 was already used/) });
    expect(h.events.filter((e) => e.type === EVENT_TYPES.hostDrainStarted)).toHaveLength(1);
    const got = await call(api.GetHostDrain, { host_id: 'h1' });
    expect(got).toMatchObject({ id: first.id, state: 'incomplete', left: 1, workloads: [{ workload_id: 'a', outcome: 'refused', reason: expect.stringMatching(/only VMs migrate/) }] });
  });

  it.each([
    { name: 'a bad host id', req: drainRequest({ host_id: 'no such/host' }), fields: /^host_id: must be 1-63 letters/ },
    { name: 'too many at once', req: drainRequest({ parallel: 65 }), fields: /^parallel: must be at most 64 \(0: 2\)$/ },
    { name: 'a deadline over a week', req: drainRequest({ deadline_seconds: 604_801 }), fields: /^deadline_seconds: must be at most 604800/ },
    { name: 'an unknown mode', req: drainRequest({ mode: 'warp' }), fields: /^mode: must be live, cold or auto \(empty: auto\)$/ },
    { name: 'a bad request id', req: drainRequest({ request_id: 'a b' }), fields: /^request_id: must be/ },
    { name: 'every bad field at once', req: drainRequest({ parallel: 65, mode: 'warp', deadline_seconds: 604_801 }), fields: /^parallel: .*; deadline_seconds: .*; mode: / },
  ])('refuses $name with INVALID_ARGUMENT naming the field, and drains nothing', async ({ req, fields }) => {
    const h = await harness(() => ({ to: 'h2' }), [testWorkload('a')]);
    const writes = h.store.writes;
    await expect(call(service(h).DrainHost, req)).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringMatching(fields) });
    expect([h.store.writes, h.events, h.registry.get('h1')?.cordoned]).toEqual([writes, [], false]);
  });

  it('GetHostDrain is NOT_FOUND for a host never drained; UndrainHost uncordons and reports the drain it stopped', async () => {
    const h = await harness(() => ({ refuse: 'unused' }));
    const api = service(h);
    await expect(call(api.GetHostDrain, { host_id: 'h1' })).rejects.toMatchObject({ code: status.NOT_FOUND });
    const drain = await call(api.DrainHost, drainRequest());
    expect([drain.state, h.registry.get('h1')?.cordoned]).toEqual(['drained', true]);
    const undrained = await call(api.UndrainHost, { host_id: 'h1', request_id: 'u1' });
    expect(undrained).toMatchObject({ host: { id: 'h1', cordoned: false }, drain: { id: drain.id, state: 'drained' } });
    expect(h.events.map((e) => e.type).slice(-2)).toEqual([EVENT_TYPES.hostUncordoned, EVENT_TYPES.hostUndrained]);
  });
});
