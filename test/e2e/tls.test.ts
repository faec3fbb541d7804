import { readFileSync, rmSync, mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { credentials, status, type ChannelCredentials, type Client } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueCertificate } from '@virtfleet/cli';
import { AgentClient } from '@virtfleet/coordinator';
import { callUnary, CertificateFiles, loadAgentProto, loadCoordinatorProto, UnavailableError, type MutualTlsFiles } from '@virtfleet/shared';
import { startCluster, waitForHostsUp, waitForState, type TestCluster } from '../support/cluster.js';
import { removeContainersOf } from '../support/cleanup.js';
import { createTestPki, type TestPki } from '../support/pki.js';
import { refusal } from '../support/refusal.js';
import { waitUntil } from '../support/wait.js';

const DEADLINE_MS = 3000;
/** The client preface every HTTP/2 connection opens with (RFC 9113, section 3.4). */
const HTTP2_PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

/** Sends a plaintext HTTP/2 preface to the port and counts the bytes it answers with until it closes. */
function plaintextReply(port: number): Promise<{ bytes: number }> {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    const socket = net.connect(port, '127.0.0.1', () => socket.write(HTTP2_PREFACE));
    socket.setTimeout(DEADLINE_MS, () => reject(new Error(`127.0.0.1:${port} neither answered nor closed within ${DEADLINE_MS} ms`)));
    socket.on('data', (d: Buffer) => (bytes += d.length));
    socket.on('error', () => undefined); // a reset ends it as well as a close
    socket.on('close', () => resolve({ bytes }));
  });
}

/** A bare TLS handshake trusting `ca`: whether the server's certificate verified, and its serial number. */
function handshake(port: number, ca: string): Promise<{ authorized: boolean; serial: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(ca), ALPNProtocols: ['h2'], rejectUnauthorized: false }, () => {
      resolve({ authorized: socket.authorized, serial: socket.getPeerCertificate().serialNumber });
      socket.destroy();
    });
    socket.setTimeout(DEADLINE_MS, () => reject(new Error(`no TLS handshake with 127.0.0.1:${port} within ${DEADLINE_MS} ms`)));
    socket.on('error', reject);
  });
}

/** Raw grpc-js credentials, for callers the project's own clients would refuse to build: no certificate, or one from another CA. */
function rawCredentials(ca: string, own?: { cert: string; key: string }): ChannelCredentials {
  // The identity check is the one the project's clients make; these callers skip it to reach the server's own checks.
  return credentials.createSsl(readFileSync(ca), own ? readFileSync(own.key) : null, own ? readFileSync(own.cert) : null, { checkServerIdentity: () => undefined });
}

/** One call with raw credentials; the error comes back as grpc-js gives it (code and details). */
async function rawCall<Res>(client: Client, method: string, request: object): Promise<Res> {
  try {
    return await callUnary<Res>(client, method, request, new Date(Date.now() + DEADLINE_MS), (err) => err);
  } finally {
    client.close();
  }
}

const listWorkloads = (address: string, creds: ChannelCredentials) => rawCall(new (loadCoordinatorProto().Coordinator)(address, creds), 'ListWorkloads', {});
const submit = (address: string, creds: ChannelCredentials, name: string) =>
  rawCall(new (loadCoordinatorProto().Coordinator)(address, creds), 'SubmitWorkload', { request_id: name, spec: { name, kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.1, memory_mib: 16 } });
const pingAgent = (address: string, creds: ChannelCredentials) => rawCall(new (loadAgentProto().Agent)(address, creds), 'Ping', {});

describe('mutual TLS on every gRPC link', () => {
  let cluster: TestCluster;
  let other: TestPki;
  let otherDir: string;

  beforeAll(async () => {
    otherDir = mkdtempSync(join(tmpdir(), 'virtfleet-tls-other-'));
    other = await createTestPki(otherDir);
    cluster = await startCluster({ agents: [{ drivers: { docker: { enabled: true } } }] });
    await waitForHostsUp(cluster);
  });
  afterAll(async () => {
    const hostId = cluster?.agents[0]?.hostId;
    await cluster?.stop();
    if (hostId) await removeContainersOf([hostId]);
    rmSync(otherDir, { recursive: true, force: true });
  });

  it('dispatches commands to the agent over mutual TLS', async () => {
    const w = await cluster.api.submit({ request_id: 'tls-1', spec: { name: 'tls-web', kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.1, memory_mib: 16, command: ['/bin/sleep', '1000'] } });
    await waitForState(cluster, w.id, 'running');
    expect((await cluster.api.act('PauseWorkload', { id: w.id })).state).toBe('paused');
    expect((await cluster.api.act('ResumeWorkload', { id: w.id })).state).toBe('running');
    expect((await cluster.api.act('DeleteWorkload', { id: w.id })).state).toBe('deleted');
  });

  it('refuses operator API callers without a certificate, with one from another CA, or with an agent certificate, and changes nothing', async () => {
    const address = cluster.coordinatorAddress;
    const before = (await cluster.api.list({})).workloads.map((w) => `${w.id}:${w.state}`);
    const mallory = await other.issue('operator', 'mallory');
    const agentCert = await cluster.pki.issue('agent', cluster.agents[0]!.hostId);
    const callers = [
      { who: 'no client certificate', creds: rawCredentials(cluster.pki.ca), code: status.UNAUTHENTICATED, details: /client certificate issued by the cluster CA is required/ },
      { who: 'an operator certificate from another CA', creds: rawCredentials(cluster.pki.ca, mallory), code: status.UNAUTHENTICATED, details: /client certificate issued by the cluster CA is required/ },
      { who: 'an agent certificate', creds: rawCredentials(cluster.pki.ca, agentCert), code: status.PERMISSION_DENIED, details: /^agent \S+ may not call \/virtfleet\.v1\.Coordinator\/SubmitWorkload: it takes a operator or coordinator certificate$/ },
    ];
    for (const [i, c] of callers.entries()) {
      const err = await refusal(submit(address, c.creds, `tls-refused-${i}`));
      expect(err.code, c.who).toBe(c.code);
      expect(err.details, c.who).toMatch(c.details);
      expect((await refusal(listWorkloads(address, c.creds))).code, `${c.who} cannot read either`).toBe(c.code);
    }
    const plain = await refusal(listWorkloads(address, credentials.createInsecure()));
    expect(plain.code, 'a plaintext client').toBe(status.UNAVAILABLE);
    expect((await cluster.api.list({})).workloads.map((w) => `${w.id}:${w.state}`), 'no refused call changed anything').toEqual(before);
    expect(cluster.coordinator.running).toBe(true);
  });

  it('lets only a coordinator certificate command an agent, and a coordinator talks only to the host its certificate names', async () => {
    const agent = cluster.agents[0]!;
    const address = `127.0.0.1:${agent.port}`;
    const operator = cluster.operatorTls;
    const operatorRefusal = await refusal(pingAgent(address, rawCredentials(cluster.pki.ca, operator)));
    expect(operatorRefusal.code).toBe(status.PERMISSION_DENIED);
    expect(operatorRefusal.details).toMatch(/^operator e2e may not call \/virtfleet\.v1\.Agent\/Ping: it takes a coordinator certificate$/);
    expect((await refusal(pingAgent(address, rawCredentials(cluster.pki.ca)))).code).toBe(status.UNAUTHENTICATED);
    // Plaintext reaches nothing: the port speaks TLS only.
    expect((await plaintextReply(agent.port)).bytes).toBe(0);

    const coordinatorCerts = new CertificateFiles(await cluster.pki.issue('coordinator', 'e2e'), 'tls');
    const right = new AgentClient(agent.hostId, address, { deadlineMs: DEADLINE_MS, maxAttempts: 1, certificates: coordinatorCerts });
    expect((await right.ping()).host_id).toBe(agent.hostId);
    right.close();
    // An address claimed for another host (as forged telemetry would) leads nowhere: the certificate there names this agent.
    const impostor = new AgentClient('someone-else', address, { deadlineMs: DEADLINE_MS, maxAttempts: 1, certificates: coordinatorCerts });
    const mismatch = await refusal(impostor.ping());
    impostor.close();
    expect(mismatch).toBeInstanceOf(UnavailableError);
    expect(mismatch.message).toContain(`the server's certificate names agent ${agent.hostId}, not agent someone-else`);
    expect(agent.process.running, 'the agent survived the refusals').toBe(true);
  });

  it('picks up a renewed certificate without a restart, and keeps the old one when the new files do not match', async () => {
    const agent = cluster.agents[0]!;
    const files: MutualTlsFiles = await cluster.pki.issue('agent', agent.hostId);
    const first = await handshake(agent.port, cluster.pki.ca);
    expect(first.authorized).toBe(true);

    // A renewal written half-way: a certificate whose key is not the one on disk.
    const stray = await issueCertificate(cluster.pki.dir, { role: 'agent', name: agent.hostId, out: join(cluster.pki.dir, 'stray') });
    const goodCert = readFileSync(files.cert);
    writeFileSync(files.cert, readFileSync(stray.cert));
    await waitUntil('the agent to reject the mismatched files', () => agent.process.tail(200).includes('changed certificate files are not usable'), { timeoutMs: 15_000 });
    expect((await handshake(agent.port, cluster.pki.ca)).serial, 'the previous certificate stays in use').toBe(first.serial);
    writeFileSync(files.cert, goodCert);

    // A proper renewal: `pki issue` again onto the same files.
    await issueCertificate(cluster.pki.dir, { role: 'agent', name: agent.hostId, out: files.cert.replace(/\.crt$/, '') });
    await waitUntil('the agent to serve the renewed certificate', async () => (await handshake(agent.port, cluster.pki.ca)).serial !== first.serial, { timeoutMs: 15_000 });
    // The coordinator keeps commanding it.
    const w = await cluster.api.submit({ request_id: 'tls-renewed', spec: { name: 'tls-renewed', kind: 'container', image: 'virtfleet-test/busybox:latest', vcpus: 0.1, memory_mib: 16, command: ['/bin/sleep', '1000'] } });
    await waitForState(cluster, w.id, 'running');
    expect((await cluster.api.act('DeleteWorkload', { id: w.id })).state).toBe('deleted');
  });
});
