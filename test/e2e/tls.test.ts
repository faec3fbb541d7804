import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '@virtfleet/coordinator';
import { UnavailableError } from '@virtfleet/shared';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { removeContainersOf } from '../support/cleanup.js';

const DEADLINE_MS = 3000;
/** The client preface every HTTP/2 connection opens with (RFC 9113, section 3.4). */
const HTTP2_PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

/** Sends a plaintext HTTP/2 preface to the port and collects every byte it answers with until it closes. */
function plaintextReply(port: number): Promise<{ bytes: number; closedMs: number }> {
  return new Promise((resolve, reject) => {
    const startedAt = performance.now();
    let bytes = 0;
    const socket = net.connect(port, '127.0.0.1', () => socket.write(HTTP2_PREFACE));
    socket.setTimeout(DEADLINE_MS, () => reject(new Error(`127.0.0.1:${port} neither answered nor closed within ${DEADLINE_MS} ms`)));
    socket.on('data', (d: Buffer) => (bytes += d.length));
    socket.on('error', () => undefined); // a reset ends it as well as a close
    socket.on('close', () => resolve({ bytes, closedMs: performance.now() - startedAt }));
  });
}

/** A bare TLS handshake with the port, trusting `ca`: whether the agent's certificate verified, and the protocol it chose. */
function tlsHandshake(port: number, ca: string): Promise<{ authorized: boolean; error?: string; alpn: string | false | null }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(ca), ALPNProtocols: ['h2'], rejectUnauthorized: false }, () => {
      // authorizationError is OpenSSL's verification code, e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE.
      resolve({ authorized: socket.authorized, ...(socket.authorizationError ? { error: String(socket.authorizationError) } : {}), alpn: socket.alpnProtocol });
      socket.destroy();
    });
    socket.setTimeout(DEADLINE_MS, () => reject(new Error(`no TLS handshake with 127.0.0.1:${port} within ${DEADLINE_MS} ms`)));
    socket.on('error', reject);
  });
}

/** The error a call rejected with (the test fails if it resolved). */
async function refusal(call: Promise<unknown>): Promise<Error & { code?: number }> {
  const outcome = await call.then(
    () => undefined,
    (err: unknown) => err as Error & { code?: number },
  );
  if (!outcome) throw new Error('the call succeeded; expected a refusal');
  return outcome;
}

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
    const agent = cluster.agents[0]!;
    const w = await cluster.api.submit({ request_id: 'tls-1', spec: { name: 'tls-web', kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.1, memory_mib: 16, command: ['/bin/sleep', '1000'] } });
    await waitForState(cluster, w.id, 'running');
    expect((await cluster.api.act('PauseWorkload', { id: w.id })).state).toBe('paused');

    const address = `127.0.0.1:${agent.port}`;
    // The agent's port speaks TLS (with HTTP/2 inside) and nothing else: a plaintext HTTP/2 preface is closed without a byte of reply.
    expect(await tlsHandshake(agent.port, certs.ca)).toEqual({ authorized: true, alpn: 'h2' });
    expect((await plaintextReply(agent.port)).bytes, 'no HTTP/2 SETTINGS in reply to plaintext').toBe(0);

    // So a plaintext gRPC client is refused when the connection is set up, not at its deadline, and not for want of a listener.
    const plain = new AgentClient('tls-host', address, { deadlineMs: DEADLINE_MS, maxAttempts: 1 });
    const plainRefusal = await refusal(plain.ping());
    plain.close();
    expect(plainRefusal).toBeInstanceOf(UnavailableError);
    expect(plainRefusal.code).toBe(status.UNAVAILABLE);
    expect(plainRefusal.message).toMatch(/^host tls-host: cannot reach its agent at 127\.0\.0\.1:\d+: (Failed to connect|read ECONNRESET)\b/);

    const otherDir = mkdtempSync(join(tmpdir(), 'virtfleet-tls-other-'));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=other-ca', '-keyout', 'ca.key', '-out', 'ca.pem'], { cwd: otherDir, stdio: 'pipe' });
      const otherCa = join(otherDir, 'ca.pem');
      expect(await tlsHandshake(agent.port, otherCa), 'a bare handshake trusting another CA').toMatchObject({ authorized: false, error: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
      const wrongCa = new AgentClient('tls-host', address, { deadlineMs: DEADLINE_MS, maxAttempts: 1, tls: { ca: otherCa } });
      const wrongCaRefusal = await refusal(wrongCa.ping());
      wrongCa.close();
      expect(wrongCaRefusal).toBeInstanceOf(UnavailableError);
      expect(wrongCaRefusal.code).toBe(status.UNAVAILABLE);
      expect(wrongCaRefusal.message).toMatch(/^host tls-host: cannot reach its agent at 127\.0\.0\.1:\d+: unable to verify the first certificate\b/);
    } finally {
      rmSync(otherDir, { recursive: true, force: true });
    }

    // The agent still serves, directly and through the coordinator.
    expect(agent.process.running, 'the agent survived the refusals').toBe(true);
    const trusted = new AgentClient('tls-host', address, { deadlineMs: DEADLINE_MS, maxAttempts: 1, tls: { ca: certs.ca } });
    expect((await trusted.ping()).host_id).toBe(agent.hostId);
    trusted.close();
    expect((await cluster.api.act('ResumeWorkload', { id: w.id })).state).toBe('running');
    expect((await cluster.api.act('DeleteWorkload', { id: w.id })).state).toBe('deleted');
  });
});
