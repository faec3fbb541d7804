import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CoordinatorApi } from '@virtfleet/cli';
import { createTestPki } from '../support/pki.js';
import { CLI_ENTRY, freePort, spawnProcess, waitForPort, type ManagedProcess } from '../support/processes.js';
import { waitUntil } from '../support/wait.js';

describe('a coordinator started before JetStream is ready waits for it instead of exiting', () => {
  const processes: ManagedProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'virtfleet-startup-'));
  afterAll(async () => {
    for (const p of processes) await p.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('retries with a clear log line while the server has no JetStream, then serves once it has', async () => {
    const natsPort = await freePort();
    const apiPort = await freePort();
    const natsWithout = spawnProcess('nats-server (no JetStream)', 'nats-server', ['-a', '127.0.0.1', '-p', String(natsPort)]);
    processes.push(natsWithout);
    await waitForPort(natsPort);
    const config = join(dir, 'coordinator.json');
    const pki = await createTestPki(join(dir, 'pki'));
    writeFileSync(config, JSON.stringify({ id: 'startup', grpc: { listen: `127.0.0.1:${apiPort}`, tls: await pki.issue('coordinator', 'startup') }, http: { listen: '127.0.0.1:0' }, nats: { servers: [`nats://127.0.0.1:${natsPort}`], anonymous: true }, auth: { certificateRoles: { e2e: { role: 'admin' } } } }));
    const coordinator = spawnProcess('coordinator', process.execPath, [CLI_ENTRY, 'coordinator', '--config', config]);
    processes.push(coordinator);

    await waitUntil('two failed attempts to be logged', () => (coordinator.tail(200).match(/the event stream VIRTFLEET_EVENTS is not available on JetStream yet; retrying/g) ?? []).length >= 2, { timeoutMs: 20_000 });
    expect(coordinator.running, coordinator.tail()).toBe(true);

    await natsWithout.stop();
    const storeDir = join(dir, 'js');
    processes.push(spawnProcess('nats-server', 'nats-server', ['-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', storeDir]));
    await waitForPort(apiPort, 60_000);
    const api = new CoordinatorApi({ address: `127.0.0.1:${apiPort}`, timeoutMs: 30_000, tls: await pki.issue('operator', 'e2e') });
    try {
      await waitUntil('the coordinator to lead and answer', async () => (await api.queue()).policy === 'fcfs', { timeoutMs: 30_000 });
      expect(coordinator.running).toBe(true);
    } finally {
      api.close();
    }
  });
});
