import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats, createLogger, natsClientOptions, type NatsConfig } from '@virtfleet/shared';
import { createTestPki, type TestPki } from '../support/pki.js';
import { freePort, spawnProcess, waitForPort, type ManagedProcess } from '../support/processes.js';

const log = createLogger('nats-tls-test', 'silent');

// nats.tls: the daemons' connection to a real nats-server that requires TLS, and one that also requires client certificates.
describe('TLS to nats-server (nats.tls)', () => {
  let dir: string;
  let pki: TestPki;
  const servers: ManagedProcess[] = [];

  const start = async (verify: boolean): Promise<string> => {
    const port = await freePort();
    const server = await pki.issue('coordinator', 'nats');
    const config = join(dir, `nats-${port}.conf`);
    writeFileSync(config, [`listen: "127.0.0.1:${port}"`, `tls { cert_file: "${server.cert}", key_file: "${server.key}", ca_file: "${pki.ca}", verify: ${verify} }`, ''].join('\n'));
    servers.push(spawnProcess('nats-server (tls)', 'nats-server', ['-c', config]));
    await waitForPort(port);
    return `nats://127.0.0.1:${port}`;
  };
  /** Whether a client with `config` gets in (one attempt, no reconnects). */
  const getsIn = async (config: NatsConfig) =>
    connect({ ...natsClientOptions(config), reconnect: false, timeout: 3_000 }).then(
      (nc) => nc.close().then(() => 'connected'),
      (err: Error) => `refused: ${err.message}`,
    );

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'virtfleet-nats-tls-'));
    pki = await createTestPki(join(dir, 'pki'));
  });
  afterAll(async () => {
    for (const s of servers) await s.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('connects through TLS with the CA of the server’s certificate, and not without it', async () => {
    const url = await start(false);
    const nc = await connectNats({ servers: [url], anonymous: true, tls: { ca: pki.ca } }, 'tls-test', log);
    expect(nc.info?.tls_required).toBe(true);
    await nc.close();
    expect(await getsIn({ servers: [url], anonymous: true })).toMatch(/^refused/);
    const other = await createTestPki(join(dir, 'other-pki'));
    expect(await getsIn({ servers: [url], anonymous: true, tls: { ca: other.ca } }), 'another CA').toMatch(/^refused/);
  });

  it('presents its certificate when the server asks for one, and is refused without', async () => {
    const url = await start(true);
    const agent = await pki.issue('agent', 'h1');
    expect(await getsIn({ servers: [url], anonymous: true, tls: { ca: pki.ca, cert: agent.cert, key: agent.key } })).toBe('connected');
    expect(await getsIn({ servers: [url], anonymous: true, tls: { ca: pki.ca } })).toMatch(/^refused/);
  });
});
