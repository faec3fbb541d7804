import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, spawnProcess, waitForPort, type ManagedProcess } from './processes.js';

export interface NatsServer {
  url: string;
  port: number;
  process: ManagedProcess;
  /** Restarts on the same port and store, as after a crash or upgrade. */
  restart(): Promise<void>;
  /** Stops the server, keeping its store, until `up`. */
  down(): Promise<void>;
  up(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts Debian's nats-server with JetStream on a free loopback port and a fresh store. */
export async function startNatsServer(): Promise<NatsServer> {
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), 'virtfleet-nats-'));
  const launch = async () => {
    const p = spawnProcess('nats-server', 'nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir]);
    await waitForPort(port);
    return p;
  };
  const server: NatsServer = {
    url: `nats://127.0.0.1:${port}`,
    port,
    process: await launch(),
    async restart() {
      await server.process.stop();
      server.process = await launch();
    },
    async down() {
      await server.process.stop();
    },
    async up() {
      server.process = await launch();
    },
    async stop() {
      await server.process.stop();
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
  return server;
}
