import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '@virtfleet/coordinator';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { removeContainersOf } from '../support/cleanup.js';


describe('coordinator to agent over TLS', () => {
  let cluster: TestCluster;
  let dir: string;
  let certs: { ca: string; cert: string; key: string };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'virtfleet-tls-'));
    const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=virtfleet-test-ca', '-keyout', 'ca.key', '-out', 'ca.pem']);
    run(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=agent', '-keyout', 'agent.key', '-out', 'agent.csr']);
    writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
    run(['x509', '-req', '-in', 'agent.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'san.ext', '-out', 'agent.pem']);
    certs = { ca: join(dir, 'ca.pem'), cert: join(dir, 'agent.pem'), key: join(dir, 'agent.key') };
    cluster = await startCluster({ dispatchTls: { ca: certs.ca }, agents: [{ drivers: { docker: { enabled: true } }, tls: { cert: certs.cert, key: certs.key } }] });
    await waitForHostsUp(cluster);
  });
  afterAll(async () => {
    const hostId = cluster?.agents[0]?.hostId;
    await cluster?.stop();
    if (hostId) await removeContainersOf([hostId]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('dispatches commands over TLS and refuses plaintext and unknown CAs', async () => {
    const w = await cluster.api.submit({ request_id: 'tls-1', spec: { name: 'tls-web', kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.1, memory_mib: 16, command: ['/bin/sleep', '1000'] } });
    await waitForState(cluster, w.id, 'running');
    expect((await cluster.api.act('PauseWorkload', { id: w.id })).state).toBe('paused');

    const address = `127.0.0.1:${cluster.agents[0]!.port}`;
    const plain = new AgentClient('tls-host', address, { deadlineMs: 3000, maxAttempts: 1 });
    await expect(plain.ping()).rejects.toMatchObject({ code: expect.any(Number) });
    plain.close();

    const otherDir = mkdtempSync(join(tmpdir(), 'virtfleet-tls-other-'));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=other-ca', '-keyout', 'ca.key', '-out', 'ca.pem'], { cwd: otherDir, stdio: 'pipe' });
      const wrongCa = new AgentClient('tls-host', address, { deadlineMs: 3000, maxAttempts: 1, tls: { ca: join(otherDir, 'ca.pem') } });
      await expect(wrongCa.ping()).rejects.toBeDefined();
      wrongCa.close();
    } finally {
      rmSync(otherDir, { recursive: true, force: true });
    }

    const trusted = new AgentClient('tls-host', address, { deadlineMs: 3000, maxAttempts: 1, tls: { ca: certs.ca } });
    expect((await trusted.ping()).host_id).toBe(cluster.agents[0]!.hostId);
    trusted.close();
    expect((await cluster.api.act('DeleteWorkload', { id: w.id })).state).toBe('deleted');
  });
});
