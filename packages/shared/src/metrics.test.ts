import { credentials, makeGenericClientConstructor, Server, ServerCredentials, ServerInterceptingCall, status, type ServerInterceptor, type ServiceError } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grpcClientMetrics, grpcServerMetrics, metricsRoute, newMetricsRegistry } from './metrics.js';
import { openRoute } from './http-server.js';

const bytes = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
const method = (name: string) => ({ path: `/test.Echo/${name}`, requestStream: false, responseStream: false, requestSerialize: bytes.serialize, requestDeserialize: bytes.deserialize, responseSerialize: bytes.serialize, responseDeserialize: bytes.deserialize });
const service = { Echo: method('Echo'), Guarded: method('Guarded') };

/** Refuses every call to Guarded before its handler, as the authorization interceptors do. */
const refuseGuarded: ServerInterceptor = (descriptor, call) =>
  new ServerInterceptingCall(call, {
    start: (next) => {
      if (descriptor.path.endsWith('/Guarded')) return call.sendStatus({ code: status.PERMISSION_DENIED, details: 'no' });
      next();
    },
  });

type EchoClient = { [k in 'Echo' | 'Guarded']: (req: Buffer, cb: (err: ServiceError | null, res?: Buffer) => void) => void } & { close(): void };

describe('gRPC metrics interceptors', () => {
  const serverRegistry = new Registry();
  const clientRegistry = new Registry();
  const server = new Server({ interceptors: [grpcServerMetrics(serverRegistry), refuseGuarded] });
  let client: EchoClient;

  beforeAll(async () => {
    server.addService(service, {
      Echo: (call: { request: Buffer }, cb: (err: Partial<ServiceError> | null, res?: Buffer) => void) => (call.request.length > 0 ? cb(null, call.request) : cb({ code: status.INVALID_ARGUMENT, details: 'empty' })),
      Guarded: (_: unknown, cb: (err: null, res: Buffer) => void) => cb(null, Buffer.from('reached')),
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    const Client = makeGenericClientConstructor(service, 'Echo');
    client = new Client(`127.0.0.1:${port}`, credentials.createInsecure(), { interceptors: [grpcClientMetrics(clientRegistry)] }) as unknown as EchoClient;
    const call = (name: 'Echo' | 'Guarded', payload: string) => new Promise<void>((resolve) => client[name](Buffer.from(payload), () => resolve()));
    await call('Echo', 'a');
    await call('Echo', 'b');
    await call('Echo', '');
    await call('Guarded', 'c');
  });
  afterAll(() => {
    client.close();
    server.forceShutdown();
  });

  it.each([
    { side: 'server', registry: () => serverRegistry },
    { side: 'client', registry: () => clientRegistry },
  ])('$side: counts calls by method and code, refusals by later interceptors included, and times them', async ({ side, registry }) => {
    const text = await registry().metrics();
    expect(text).toContain(`virtfleet_grpc_${side}_handled_total{service="test.Echo",method="Echo",code="OK"} 2`);
    expect(text).toContain(`virtfleet_grpc_${side}_handled_total{service="test.Echo",method="Echo",code="INVALID_ARGUMENT"} 1`);
    expect(text).toContain(`virtfleet_grpc_${side}_handled_total{service="test.Echo",method="Guarded",code="PERMISSION_DENIED"} 1`);
    expect(text).toContain(`virtfleet_grpc_${side}_handling_seconds_count{service="test.Echo",method="Echo"} 3`);
    expect(text).toContain(`virtfleet_grpc_${side}_handling_seconds_count{service="test.Echo",method="Guarded"} 1`);
  });
});

describe('metricsRoute', () => {
  it('serves the registry in Prometheus text format, with the process metrics', async () => {
    const registry = newMetricsRegistry();
    const response = await metricsRoute(registry, openRoute).handler({ method: 'GET', path: '/metrics', query: new URLSearchParams(), headers: {}, peer: undefined });
    expect(response.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(response.body).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(response.body).toMatch(/^nodejs_eventloop_lag_seconds /m);
  });
});
