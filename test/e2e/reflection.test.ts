import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { credentials, loadPackageDefinition, status, type Client, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, waitForHostsUp, type TestCluster } from '../support/cluster.js';

// gRPC server reflection (grpc.reflection.v1), as grpcurl uses it: a client that knows nothing of virtfleet's protos lists the
// services and fetches their descriptors, over the same mutual TLS and with the same callers as every other method.
const REFLECTION_PROTO = join(dirname(createRequire(import.meta.url).resolve('@grpc/reflection/package.json')), 'build', 'proto', 'grpc', 'reflection', 'v1', 'reflection.proto');
interface ReflectionResponse {
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
}
type ReflectionClient = Client & { ServerReflectionInfo(): ClientDuplexStream<object, ReflectionResponse> };
const { ServerReflection } = (loadPackageDefinition(loadSync(REFLECTION_PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true })) as unknown as {
  grpc: { reflection: { v1: { ServerReflection: new (address: string, creds: ReturnType<typeof credentials.createSsl>) => ReflectionClient } } };
}).grpc.reflection.v1;

/** One reflection request and its answer, on a stream of its own. */
function ask(client: ReflectionClient, request: object): Promise<ReflectionResponse> {
  return new Promise((resolve, reject) => {
    const call = client.ServerReflectionInfo();
    call.once('data', (r: ReflectionResponse) => {
      resolve(r);
      call.end();
    });
    call.once('error', (err: ServiceError) => reject(err));
    call.write(request);
  });
}

describe('gRPC server reflection on the coordinator and the agent', () => {
  let cluster: TestCluster;
  const clients: Client[] = [];
  const connect = (address: string, files?: { cert: string; key: string }) => {
    const c = new ServerReflection(address, credentials.createSsl(readFileSync(cluster.pki.ca), files ? readFileSync(files.key) : null, files ? readFileSync(files.cert) : null, { checkServerIdentity: () => undefined }));
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    cluster = await startCluster({ agents: [{ drivers: { fake: { enabled: true } } }] });
    await waitForHostsUp(cluster);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await cluster?.stop();
  });

  it.each([
    { server: 'coordinator', service: 'virtfleet.v1.Coordinator', method: 'SubmitWorkload', caller: ['operator', 'reflection'] as const },
    { server: 'agent', service: 'virtfleet.v1.Agent', method: 'CreateWorkload', caller: ['coordinator', 'reflection'] as const },
  ])('the $server lists its services and describes $service to a caller it accepts, and refuses one without a certificate', async ({ server, service, method, caller }) => {
    const address = server === 'coordinator' ? cluster.coordinatorAddress : `127.0.0.1:${cluster.agents[0]!.port}`;
    const client = connect(address, await cluster.pki.issue(caller[0], caller[1]));
    const listed = await ask(client, { list_services: '' });
    expect(listed.list_services_response?.service.map((s) => s.name)).toEqual([service]);

    const described = await ask(client, { file_containing_symbol: service });
    const files = described.file_descriptor_response?.file_descriptor_proto ?? [];
    expect(files.length).toBeGreaterThan(0);
    expect(Buffer.concat(files).toString('latin1'), `the descriptor of ${service} names its methods`).toContain(method);
    const unknown = await ask(client, { file_containing_symbol: 'no.such.Service' });
    expect(unknown.error_response?.error_code).toBe(status.NOT_FOUND);

    const anonymous = await ask(connect(address), { list_services: '' }).catch((err: ServiceError) => err);
    expect((anonymous as ServiceError).code).toBe(status.UNAUTHENTICATED);
  });
});
