import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A Docker API call the proxy is holding: it has not reached Docker. */
export interface HeldCall {
  method: string;
  path: string;
  /** Closes the caller's connection without answering: the call never reaches Docker. */
  drop(): void;
}

/**
 * A transparent proxy for the Docker Engine API on a unix socket of its own,
 * in front of the real engine (`/var/run/docker.sock`). Give an agent its
 * `socketPath` (`drivers.docker.socketPath`) and every call goes to the real
 * Docker, except the one a test asks to hold: so a test can stop an agent
 * between two steps of a driver operation (a container created but not
 * started) for certain, instead of hoping to be quick enough.
 */
export interface DockerProxy {
  /** The unix socket to give the agent. */
  socketPath: string;
  /**
   * Holds the next call for which `match` is true (it is not forwarded) and
   * resolves with it; rejects after `timeoutMs` if none came. One hold at a time.
   */
  holdNext(what: string, match: (method: string, path: string) => boolean, timeoutMs: number): Promise<HeldCall>;
  close(): Promise<void>;
}

export async function startDockerProxy(target = '/var/run/docker.sock'): Promise<DockerProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'virtfleet-docker-proxy-'));
  const socketPath = join(dir, 'docker.sock');
  let hold: { match: (method: string, path: string) => boolean; found: (call: HeldCall) => void } | undefined;

  const forward = (req: IncomingMessage, res: ServerResponse) => {
    const upstream = request({ socketPath: target, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', (err) => res.destroy(err));
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  };

  const server = createServer((req, res) => {
    const method = req.method ?? '';
    const path = req.url ?? '';
    if (hold?.match(method, path)) {
      const { found } = hold;
      hold = undefined;
      found({ method, path, drop: () => req.socket.destroy() });
      return;
    }
    forward(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });

  return {
    socketPath,
    holdNext(what, match, timeoutMs) {
      if (hold) throw new Error('the Docker proxy already holds out for another call');
      return new Promise<HeldCall>((resolve, reject) => {
        const timer = setTimeout(() => {
          hold = undefined;
          reject(new Error(`no Docker API call matching ${what} came within ${timeoutMs} ms`));
        }, timeoutMs);
        hold = {
          match,
          found: (call) => {
            clearTimeout(timer);
            resolve(call);
          },
        };
      });
    },
    async close() {
      hold = undefined;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
