import net from 'node:net';

/** A loopback TCP forwarder that a test can partition and heal at will. */
export interface TcpProxy {
  /** The port the proxy listens on, on 127.0.0.1. */
  readonly port: number;
  /**
   * The proxy's address: `127.0.0.1:PORT` (the form gRPC targets take) without a
   * scheme, `scheme://127.0.0.1:PORT` with one, e.g. url('nats').
   */
  url(scheme?: string): string;
  /**
   * Starts a partition: resets every forwarded connection, then accepts new ones
   * but never answers or forwards them, so clients run into their timeouts.
   */
  cut(): void;
  /** Ends the partition: drops the black-holed connections and forwards new ones again. */
  restore(): void;
  readonly isCut: boolean;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

export interface TcpTarget {
  host: string;
  port: number;
}

/** True for 'localhost' and IPv4 addresses in 127.0.0.0/8. */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  return net.isIPv4(host) && host.split('.')[0] === '127';
}

/** Destroys a socket with a TCP RST when it is connected, so the peer sees a reset rather than an orderly FIN. */
function abort(socket: net.Socket): void {
  if (socket.destroyed) return;
  // resetAndDestroy() itself destroys a socket that is not connected yet (with an error, which our handlers absorb).
  if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  else socket.destroy();
}

/**
 * Starts a proxy on 127.0.0.1 (at `listenPort`, or a port the kernel picks) that
 * forwards each accepted connection to `target`.
 * @throws Error when `target.host` is not a loopback address: tests must never send traffic elsewhere.
 */
export async function startTcpProxy(target: TcpTarget, listenPort?: number): Promise<TcpProxy> {
  if (!isLoopbackHost(target.host)) throw new Error(`tcp proxy target must be loopback (127.0.0.0/8 or localhost), got ${JSON.stringify(target.host)}`);
  if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65_535) throw new Error(`tcp proxy target port must be 1-65535, got ${target.port}`);

  /** Forwarded connections, each as its client side and upstream side. */
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  /** Connections accepted during a cut, held open without reading or answering. */
  const held = new Set<net.Socket>();
  let cut = false;
  let closed = false;

  const forward = (client: net.Socket): void => {
    // allowHalfOpen lets pipe() carry a half-close across instead of closing both directions at once.
    const upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    const pair = { client, upstream };
    pairs.add(pair);
    // A failure on either side resets both, as a broken path would; a side that closed in order just takes the other with it.
    const fail = (): void => {
      pairs.delete(pair);
      abort(client);
      abort(upstream);
    };
    const ended = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', fail);
    upstream.on('error', fail);
    client.on('close', ended);
    upstream.on('close', ended);
    client.pipe(upstream);
    upstream.pipe(client);
  };

  const blackHole = (client: net.Socket): void => {
    held.add(client);
    // Never read: the client's writes pile up in kernel buffers as they would on a dead link.
    client.on('error', () => client.destroy());
    client.on('close', () => held.delete(client));
  };

  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    if (closed) {
      client.on('error', () => undefined);
      abort(client);
    } else if (cut) {
      blackHole(client);
    } else {
      forward(client);
    }
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: listenPort ?? 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // After listen() succeeded the server has nothing left to fail on that a test could act on; keep it from crashing the run.
  server.on('error', () => undefined);
  const port = (server.address() as net.AddressInfo).port;

  const dropHeld = (): void => {
    for (const socket of held) abort(socket);
    held.clear();
  };
  const dropPairs = (): void => {
    for (const { client, upstream } of pairs) {
      abort(client);
      abort(upstream);
    }
    pairs.clear();
  };

  return {
    port,
    url: (scheme?: string) => (scheme ? `${scheme}://127.0.0.1:${port}` : `127.0.0.1:${port}`),
    cut() {
      cut = true;
      dropPairs();
    },
    restore() {
      cut = false;
      dropHeld();
    },
    get isCut() {
      return cut;
    },
    async close() {
      if (closed) return;
      closed = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      dropPairs();
      dropHeld();
      await stopped;
    },
  };
}
