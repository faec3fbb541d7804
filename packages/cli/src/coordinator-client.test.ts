import { createServer } from 'node:net';
import { Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { bindServer, loadCoordinatorProto, NotLeaderError, toServiceError, type pb } from '@virtfleet/shared';
import { CoordinatorApi, CoordinatorUnreachableError } from './coordinator-client.js';

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

type ListHosts = (call: ServerUnaryCall<object, pb.ListHostsResponse>, cb: sendUnaryData<pb.ListHostsResponse>) => void;

const servers: Server[] = [];
const clients: CoordinatorApi[] = [];

/** A coordinator stand-in answering ListHosts with `handler`. */
async function fakeCoordinator(handler: ListHosts): Promise<string> {
  const server = new Server();
  server.addService(loadCoordinatorProto().Coordinator.service, { ListHosts: handler });
  const port = await bindServer(server, '127.0.0.1:0', ServerCredentials.createInsecure());
  servers.push(server);
  return `127.0.0.1:${port}`;
}

const answers: ListHosts = (_call, cb) => cb(null, { hosts: [] });
const follower: ListHosts = (_call, cb) => cb(toServiceError(new NotLeaderError('not the leader (the leader is c1 at 127.0.0.1:1)')));

function client(address: string, timeoutMs: number): CoordinatorApi {
  const c = new CoordinatorApi({ address, timeoutMs });
  clients.push(c);
  return c;
}

async function timed<T>(p: Promise<T>): Promise<{ ms: number; result?: T; err?: unknown }> {
  const start = performance.now();
  try {
    const result = await p;
    return { ms: performance.now() - start, result };
  } catch (err) {
    return { ms: performance.now() - start, err };
  }
}

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) s.forceShutdown();
});

describe('CoordinatorApi failover and failing fast', () => {
  it('fails at once, naming the address and the reason, when the only coordinator refuses connections', async () => {
    const port = await closedPort();
    const { ms, err } = await timed(client(`127.0.0.1:${port}`, 30_000).hosts());
    expect(err).toBeInstanceOf(CoordinatorUnreachableError);
    expect(err).toMatchObject({ code: status.UNAVAILABLE, message: `cannot reach the coordinator at 127.0.0.1:${port}: connection refused` });
    expect(ms, 'a refused connection must not wait for the 30 s deadline').toBeLessThan(1000);
  });

  it('fails at once naming every address when all of them refuse', async () => {
    const [a, b] = [await closedPort(), await closedPort()];
    const { ms, err } = await timed(client(`127.0.0.1:${a}, 127.0.0.1:${b}`, 30_000).hosts());
    expect((err as Error).message).toBe(`cannot reach any coordinator: 127.0.0.1:${a}: connection refused; 127.0.0.1:${b}: connection refused`);
    expect(ms).toBeLessThan(1000);
  });

  it('moves past an address that is down to one that answers', async () => {
    const up = await fakeCoordinator(answers);
    const { result } = await timed(client(`127.0.0.1:${await closedPort()},${up}`, 30_000).hosts());
    expect(result).toMatchObject({ hosts: [] });
  });

  it('keeps trying until the deadline while a follower answers, as during an election', async () => {
    let leading = false;
    const upLater = await fakeCoordinator((call, cb) => (leading ? answers(call, cb) : follower(call, cb)));
    setTimeout(() => (leading = true), 700);
    const { ms, result } = await timed(client(`127.0.0.1:${await closedPort()},${upLater}`, 30_000).hosts());
    expect(result).toMatchObject({ hosts: [] });
    expect(ms).toBeGreaterThanOrEqual(650);

    const never = await fakeCoordinator(follower);
    const refused = await timed(client(`127.0.0.1:${await closedPort()},${never}`, 1_500).hosts());
    expect(refused.err).toBeInstanceOf(NotLeaderError);
    expect(refused.ms).toBeGreaterThanOrEqual(1_400);
  });

  it('waits the full deadline for a coordinator that accepts but answers slowly, then says so', async () => {
    const slow = await fakeCoordinator((call, cb) => setTimeout(() => answers(call, cb), 5_000));
    const { ms, err } = await timed(client(slow, 1_000).hosts());
    expect(err).toMatchObject({ code: status.DEADLINE_EXCEEDED, message: `no answer from the coordinator at ${slow} within 1 s (--timeout)` });
    expect(ms).toBeGreaterThanOrEqual(950);
  });

  it('streams events past an address that is down, and fails at once when none is up', async () => {
    const up = await fakeCoordinator(answers);
    const port = await closedPort();
    const none = await timed(client(`127.0.0.1:${port}`, 30_000).streamEvents({}, () => undefined, new AbortController().signal));
    expect((none.err as Error).message).toBe(`cannot reach the coordinator at 127.0.0.1:${port}: connection refused`);
    expect(none.ms).toBeLessThan(1000);
    // The stand-in has no WatchEvents: "does not implement" shows the stream reached it.
    const past = await timed(client(`127.0.0.1:${port},${up}`, 30_000).streamEvents({}, () => undefined, new AbortController().signal));
    expect((past.err as Error).message).toMatch(/does not implement/);
  });
});

describe('CoordinatorApi image import', () => {
  /** A coordinator stand-in for ImportImage: a follower refuses at the header; the leader counts what it got. */
  async function importer(leader: boolean, got: { bytes: number; headers: number }): Promise<string> {
    const server = new Server();
    server.addService(loadCoordinatorProto().Coordinator.service, {
      ImportImage: (call: NodeJS.ReadableStream & { on: (e: string, f: (m: pb.ImportImageChunk__Output) => void) => void }, cb: sendUnaryData<pb.Image>) => {
        if (!leader) {
          cb(toServiceError(new NotLeaderError('not the leader')));
          return;
        }
        call.on('data', (m) => {
          if (m.header) got.headers++;
          if (m.data) got.bytes += m.data.length;
        });
        call.on('end', () => cb(null, { name: 'x', kind: 'vm', format: 'raw', size: String(got.bytes), digest: '', created_at: '' }));
      },
    });
    const port = await bindServer(server, '127.0.0.1:0', ServerCredentials.createInsecure());
    servers.push(server);
    return `127.0.0.1:${port}`;
  }

  it('starts again at the leader, with fresh data, when a follower refuses at the header', async () => {
    const atFollower = { bytes: 0, headers: 0 };
    const atLeader = { bytes: 0, headers: 0 };
    const addresses = `${await importer(false, atFollower)},${await importer(true, atLeader)}`;
    let opened = 0;
    async function* data(): AsyncGenerator<Buffer> {
      opened++;
      for (let i = 0; i < 4; i++) yield Buffer.alloc(1024, i);
    }
    const image = await client(addresses, 10_000).importImage({ name: 'x', format: 'raw', size: '4096', sha256: '' }, data);
    expect(image.size).toBe('4096');
    expect(atLeader).toEqual({ bytes: 4096, headers: 1 });
    expect(opened).toBe(2);
  });
});

describe('CoordinatorApi streams', () => {
  it('reads to the end whatever the callback returns, and waits while it returns a promise', async () => {
    const server = new Server();
    server.addService(loadCoordinatorProto().Coordinator.service, {
      WatchEvents: (call: { write: (e: object) => boolean; end: () => void }) => {
        for (let i = 1; i <= 3; i++) call.write({ id: `e${i}`, type: 't', sequence: String(i) });
        call.end();
      },
      WorkloadLogs: (call: { write: (c: object) => boolean; end: () => void }) => {
        for (let i = 1; i <= 3; i++) call.write({ stream: 'stdout', data: Buffer.from(`e${i}`) });
        call.end();
      },
    });
    const address = `127.0.0.1:${await bindServer(server, '127.0.0.1:0', ServerCredentials.createInsecure())}`;
    servers.push(server);
    const seen: string[] = [];
    // Array.push returns a number: not a promise, so nothing waits on it.
    await client(address, 5_000).streamEvents({}, (e) => seen.push(e.id), new AbortController().signal);
    expect(seen).toEqual(['e1', 'e2', 'e3']);
    // A slow reader: each chunk's promise settles later, and the stream ends only after the last.
    const slow: string[] = [];
    await client(address, 5_000).streamLogs({ id: 'w' }, (c) => new Promise((r) => setTimeout(() => r(slow.push(c.data.toString())), 20)), new AbortController().signal);
    expect(slow).toEqual(['e1', 'e2', 'e3']);
  });
});
