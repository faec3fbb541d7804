import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorApi } from '@virtfleet/cli';
import { uniqueHostId } from '../support/cluster.js';
import { startNatsCluster, type NatsCluster } from '../support/nats-cluster.js';
import { createTestPki } from '../support/pki.js';
import { CLI_ENTRY, freePort, spawnProcess, waitForPort, type ManagedProcess } from '../support/processes.js';
import { waitFor, waitUntil } from '../support/wait.js';
import { removeContainersOf } from '../support/cleanup.js';


describe('a three-node NATS cluster with JetStream replicas 3', () => {
  let nats: NatsCluster;
  let dir: string;
  let coordinator: ManagedProcess;
  let agent: ManagedProcess;
  let api: CoordinatorApi;
  const hostId = uniqueHostId('natscluster');

  beforeAll(async () => {
    nats = await startNatsCluster(3);
    dir = mkdtempSync(join(tmpdir(), 'virtfleet-natscluster-e2e-'));
    const pki = await createTestPki(join(dir, 'pki'));
    const apiPort = await freePort();
    const agentPort = await freePort();
    writeFileSync(
      join(dir, 'coordinator.json'),
      JSON.stringify({
        id: 'clustered',
        grpc: { listen: `127.0.0.1:${apiPort}`, tls: await pki.issue('coordinator', 'clustered') },
        http: { listen: '127.0.0.1:0' },
        nats: await nats.daemonConfig('coordinator', 'clustered'),
        hosts: { ttlMs: 5000 },
        scheduler: { retryIntervalMs: 250 },
        state: { replicas: 3 },
        auth: { certificateRoles: { e2e: { role: 'admin' } } },
        events: { replicas: 3 },
      }),
    );
    writeFileSync(
      join(dir, 'agent.json'),
      JSON.stringify({ hostId, stateDir: join(dir, 'agent-state'), grpc: { listen: `127.0.0.1:${agentPort}`, tls: await pki.issue('agent', hostId) }, http: { listen: '127.0.0.1:0' }, nats: await nats.daemonConfig('agent', hostId), telemetry: { intervalMs: 500 }, drivers: { docker: { enabled: true } } }),
    );
    coordinator = spawnProcess('coordinator', process.execPath, [CLI_ENTRY, 'coordinator', '--config', join(dir, 'coordinator.json')]);
    agent = spawnProcess('agent', process.execPath, [CLI_ENTRY, 'agent', '--config', join(dir, 'agent.json')]);
    await waitForPort(apiPort, 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${coordinator.tail()}`);
    });
    api = new CoordinatorApi({ address: `127.0.0.1:${apiPort}`, timeoutMs: 30_000, tls: await pki.issue('operator', 'e2e') });
    await waitUntil('the host to be up', async () => (await api.hosts()).hosts.some((h) => h.id === hostId && h.status === 'up'), { timeoutMs: 20_000 });
  });
  afterAll(async () => {
    api?.close();
    await agent?.stop();
    await coordinator?.stop();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
    await removeContainersOf([hostId]);
  });

  const submitAndRun = async (name: string) => {
    const w = await waitFor(`${name} to be accepted`, () => api.submit({ request_id: name, spec: { name, kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.1, memory_mib: 16, command: ['/bin/sleep', '1000'] } }), { timeoutMs: 20_000, intervalMs: 250 });
    await waitUntil(`${name} to run`, async () => (await api.get(w.id)).state === 'running', { timeoutMs: 30_000 });
    return w;
  };

  it('keeps placing workloads and serving events after one node is killed', async () => {
    const before = await submitAndRun('before-node-loss');
    // Kill the node the coordinator is connected to, so it must move to another.
    const killed = await waitFor('the coordinator connection to show', async () => {
      for (const n of nats.nodes) if ((await n.clientNames()).includes('virtfleet-coordinator-clustered')) return n;
      return undefined;
    });
    killed.process.signal('SIGKILL');
    await killed.process.waitExit();
    const lostAt = Date.now();
    const after = await submitAndRun('after-node-loss').catch((err: Error) => {
      throw new Error(`${err.message}\ncoordinator (running: ${coordinator.running}):\n${coordinator.tail(40)}`);
    });
    console.log(`node ${killed.name} killed: next workload running ${Date.now() - lostAt} ms later`);
    const { workloads } = await api.list();
    expect(workloads.map((w) => w.id).sort()).toEqual([before.id, after.id].sort());
    // The stream's replicas may still be electing a leader, and the coordinator's outbox publishes
    // what it emitted meanwhile once they have: read again until the placement shows.
    const events = await waitFor(
      'the event log to hold the placement made after the node loss',
      () =>
        new Promise<string[] | undefined>((resolve, reject) => {
          const types: string[] = [];
          const stream = api.watch({ from_start: true });
          stream.on('data', (e: { type: string; subject: string }) => e.subject === after.id && types.push(e.type));
          stream.on('end', () => resolve(types.includes('io.virtfleet.workload.placed') ? types : undefined));
          stream.on('error', reject);
        }),
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    expect(events).toEqual(expect.arrayContaining(['io.virtfleet.workload.submitted', 'io.virtfleet.workload.placed']));
  });
});
