import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { spawnProcess, type ManagedProcess } from './processes.js';
import { waitUntil } from './wait.js';

const run = promisify(execFile);

/**
 * A dockerd of the test's own, with its own data root, exec root, socket and
 * pid file (ENVIRONMENT.md, "A second host on one machine"), so a test can
 * freeze or kill it without touching the machine's dockerd that other tests
 * and people use. It starts its own containerd. No bridge, no iptables.
 */
export interface PrivateDockerd {
  /** The unix socket path, for the agent's `drivers.docker.socketPath`. */
  socketPath: string;
  /** `unix://…`, for `docker -H`. */
  host: string;
  process: ManagedProcess;
  /** A client of this daemon. */
  docker: Docker;
  /** Copies an image from the machine's dockerd into this one (`docker save | docker -H … load`). */
  loadImage(image: string): Promise<void>;
  /** SIGSTOP to dockerd alone: containers keep running under containerd, the API stops answering. */
  freeze(): void;
  /** SIGCONT. */
  thaw(): void;
  /** Removes its containers, stops it and deletes its directories. Safe to call twice. */
  stop(): Promise<void>;
}

export async function startPrivateDockerd(name = `vf-dockerd-${randomBytes(3).toString('hex')}`): Promise<PrivateDockerd> {
  const dir = mkdtempSync(join('/var/tmp', `${name}-`));
  const dataRoot = join(dir, 'data');
  const execRoot = join(dir, 'exec');
  const socketPath = `/run/${name}.sock`;
  const pidFile = join(dir, 'dockerd.pid');
  const p = spawnProcess(`dockerd ${name}`, 'dockerd', [
    '--data-root', dataRoot,
    '--exec-root', execRoot,
    '-H', `unix://${socketPath}`,
    '--pidfile', pidFile,
    '--bridge=none',
    '--iptables=false',
    '--ip-masq=false',
  ]);
  const docker = new Docker({ socketPath });
  let stopped = false;
  const self: PrivateDockerd = {
    socketPath,
    host: `unix://${socketPath}`,
    process: p,
    docker,
    async loadImage(image: string) {
      await run('bash', ['-o', 'pipefail', '-c', `docker save ${image} | docker -H unix://${socketPath} load`], { maxBuffer: 16 * 1024 * 1024 });
    },
    freeze: () => p.signal('SIGSTOP'),
    thaw: () => p.signal('SIGCONT'),
    async stop() {
      if (stopped) return;
      stopped = true;
      p.signal('SIGCONT');
      if (p.running) {
        const containers = await docker.listContainers({ all: true }).catch(() => []);
        await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
        await p.stop('SIGTERM', 20_000);
      }
      // A dockerd that had to be killed leaves its containerd behind: stop that one too, by its pid file.
      const containerdPid = join(execRoot, 'containerd', 'containerd.pid');
      if (existsSync(containerdPid)) {
        const pid = Number(readFileSync(containerdPid, 'utf8').trim());
        if (pid > 0) {
          try {
            process.kill(pid, 'SIGTERM');
          } catch {
            // already gone
          }
        }
      }
      await run('bash', ['-c', `findmnt -rn -o TARGET | grep -F '${dir}/' | sort -r | xargs -r umount -l`]).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
      rmSync(socketPath, { force: true });
    },
  };
  try {
    await waitUntil(`private dockerd ${name} to answer on ${socketPath}`, async () => {
      if (!p.running) throw new Error(`dockerd exited:\n${p.tail()}`);
      await docker.ping();
      return true;
    }, { timeoutMs: 60_000, intervalMs: 250 });
  } catch (err) {
    await self.stop();
    throw err;
  }
  return self;
}
