import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INCLUDE_AUTHORIZATION, natsUsers, type NatsUsers } from './nats-server.js';
import { freePort, spawnProcess, waitForPort, type ManagedProcess } from './processes.js';
import { waitUntil } from './wait.js';

export interface NatsClusterNode {
  name: string;
  url: string;
  process: ManagedProcess;
  /** Names of the clients connected to this node, from its monitoring endpoint. */
  clientNames(): Promise<string[]>;
}

export interface NatsCluster extends NatsUsers {
  nodes: NatsClusterNode[];
  urls: string[];
  stop(): Promise<void>;
}

/** Three (or `size`) nats-server processes on loopback, routed to each other, with clustered JetStream and `virtfleet nats` users. */
export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'virtfleet-natscluster-'));
  const ports = await Promise.all(Array.from({ length: size }, async () => ({ client: await freePort(), route: await freePort(), monitor: await freePort() })));
  const routes = ports.map((p) => `nats://127.0.0.1:${p.route}`).join(',');
  const usersDir = join(dir, 'users');
  const users = natsUsers(usersDir, ports.map((p) => `nats://127.0.0.1:${p.client}`), () => nodes.forEach((n) => n.process.child.kill('SIGHUP')));
  const nodes = ports.map((p, i) => {
    const name = `n${i + 1}`;
    // All in the file: nats-server reloads only a config whose options all come from it.
    const configFile = join(usersDir, `${name}.conf`);
    writeFileSync(
      configFile,
      [
        `server_name: ${name}`,
        `listen: "127.0.0.1:${p.client}"`,
        `http: "127.0.0.1:${p.monitor}"`,
        `jetstream { store_dir: "${join(dir, name)}" }`,
        `cluster { name: virtfleet-test, listen: "127.0.0.1:${p.route}", routes: [${routes.split(',').map((r) => `"${r}"`).join(', ')}] }`,
        INCLUDE_AUTHORIZATION,
        '',
      ].join('\n'),
    );
    const args = ['-c', configFile];
    return {
      name,
      url: `nats://127.0.0.1:${p.client}`,
      process: spawnProcess(`nats ${name}`, 'nats-server', args),
      async clientNames() {
        const res = await fetch(`http://127.0.0.1:${p.monitor}/connz`);
        const body = (await res.json()) as { connections?: { name?: string }[] };
        return (body.connections ?? []).map((c) => c.name ?? '');
      },
    };
  });
  await Promise.all(ports.map((p) => waitForPort(p.client)));
  // Clients may only create replicated streams once JetStream's meta group has a leader and every peer.
  await waitUntil(
    'the JetStream cluster to form',
    async () => {
      type Jsz = { meta_cluster?: { leader?: string; replicas?: { current?: boolean }[] } };
      const views = await Promise.all(ports.map(async (p) => ((await (await fetch(`http://127.0.0.1:${p.monitor}/jsz`)).json()) as Jsz).meta_cluster));
      const leader = views[0]?.leader;
      if (!leader || views.some((v) => v?.leader !== leader)) return false;
      // Only the leader lists its followers.
      const leaderView = views[Number(leader.slice(1)) - 1];
      return (leaderView?.replicas ?? []).filter((r) => r.current).length === size - 1;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  return {
    ...users,
    nodes,
    urls: nodes.map((n) => n.url),
    async stop() {
      await Promise.all(nodes.map((n) => n.process.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
