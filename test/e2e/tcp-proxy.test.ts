import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isLoopbackHost, startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

/** A loopback echo server that counts the connections it accepted. */
async function startEchoServer(): Promise<{ port: number; accepted: () => number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    // The proxy resets its upstream side on cut(); that must not surface as an unhandled error.
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted: () => accepted,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface Client {
  socket: net.Socket;
  received: () => string;
  /** Settles when the socket closes, with the error it closed on, if any. */
  closed: Promise<Error | undefined>;
}

/** Connects to the proxy and collects whatever comes back. Resolves once the TCP handshake completed. */
async function connect(port: number): Promise<Client> {
  const socket = net.connect({ host: '127.0.0.1', port });
  let data = '';
  let lastError: Error | undefined;
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (data += chunk));
  socket.on('error', (err) => (lastError = err));
  const closed = new Promise<Error | undefined>((resolve) => socket.once('close', () => resolve(lastError)));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => data, closed };
}

async function waitForEcho(client: Client, text: string, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!client.received().includes(text)) {
    if (Date.now() > deadline) throw new Error(`no echo of ${JSON.stringify(text)} within ${timeoutMs} ms; got ${JSON.stringify(client.received())}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const within = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms))]);

describe('tcp proxy', () => {
  let echo: Awaited<ReturnType<typeof startEchoServer>>;
  let proxy: TcpProxy;
  const clients: Client[] = [];

  const track = (client: Client): Client => {
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    echo = await startEchoServer();
  });

  afterEach(async () => {
    for (const client of clients.splice(0)) client.socket.destroy();
    await proxy?.close();
  });

  afterAll(async () => {
    await echo?.close();
  });

  it('forwards data both ways and exposes its address', async () => {
    proxy = await startTcpProxy({ host: '127.0.0.1', port: echo.port });
    expect(proxy.url()).toBe(`127.0.0.1:${proxy.port}`);
    expect(proxy.url('nats')).toBe(`nats://127.0.0.1:${proxy.port}`);
    expect(proxy.isCut).toBe(false);

    const client = track(await connect(proxy.port));
    client.socket.write('hello');
    await waitForEcho(client, 'hello');
  });

  it('partitions on cut(): resets live connections and black-holes new ones until restore()', async () => {
    proxy = await startTcpProxy({ host: 'localhost', port: echo.port });
    const before = track(await connect(proxy.port));
    before.socket.write('before');
    await waitForEcho(before, 'before');

    proxy.cut();
    expect(proxy.isCut).toBe(true);
    const closedWith = await within(before.closed, 1_000, 'the live connection closing');
    // An abrupt reset, not an orderly end of stream.
    expect(closedWith).toMatchObject({ code: 'ECONNRESET' });

    const acceptedBeforeHeld = echo.accepted();
    const held = track(await connect(proxy.port)); // the handshake succeeds: no refusal
    held.socket.write('anyone there?');
    await new Promise((r) => setTimeout(r, 500));
    expect(held.received(), 'no data comes back while cut').toBe('');
    expect(held.socket.destroyed, 'the held connection stays open').toBe(false);
    expect(echo.accepted(), 'the target never sees the held connection').toBe(acceptedBeforeHeld);

    proxy.restore();
    expect(proxy.isCut).toBe(false);
    await within(held.closed, 1_000, 'the held connection being dropped');

    const after = track(await connect(proxy.port));
    after.socket.write('after');
    await waitForEcho(after, 'after');
  });

  it('listens on the requested port and stops accepting on close()', async () => {
    const probe = await startTcpProxy({ host: '127.0.0.1', port: echo.port });
    const port = probe.port;
    await probe.close();

    proxy = await startTcpProxy({ host: '127.0.0.1', port: echo.port }, port);
    expect(proxy.port).toBe(port);
    const client = track(await connect(port));
    client.socket.write('ping');
    await waitForEcho(client, 'ping');

    await proxy.close();
    await within(client.closed, 1_000, 'the forwarded connection closing');
    await expect(connect(port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('refuses targets outside loopback', async () => {
    for (const host of ['10.0.0.1', '192.168.1.1', '8.8.8.8', 'example.com', '0.0.0.0', '128.0.0.1', '::1', '']) {
      expect(isLoopbackHost(host), host).toBe(false);
      await expect(startTcpProxy({ host, port: 80 }), host).rejects.toThrow(/must be loopback/);
    }
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST']) expect(isLoopbackHost(host), host).toBe(true);
  });
});
