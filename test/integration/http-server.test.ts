import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueCertificate } from '@virtfleet/cli';
import { CertificateFiles, createLogger, type MutualTlsFiles, type RunningHttpServer, startHttpServer } from '@virtfleet/shared';
import { createTestPki, type TestPki } from '../support/pki.js';
import { waitFor } from '../support/wait.js';

const log = createLogger('http-server-test', 'silent');

/** One GET presenting `client` (or no certificate), answering the status, the body and the serial of the certificate the server presented. */
function get(port: number, ca: string, client?: MutualTlsFiles): Promise<{ status: number; body: string; serverSerial: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/whoami', ca: readFileSync(ca), ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}), agent: false }, (res) => {
      const serverSerial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, serverSerial }));
    });
    req.on('error', reject);
    req.end();
  });
}

// The daemons' HTTPS server against the CLI's real PKI (openssl): who the client certificate says the caller is, and renewal.
describe('the HTTPS server (startHttpServer with the daemon’s certificates)', () => {
  let dir: string;
  let pki: TestPki;
  let serverFiles: MutualTlsFiles;
  let certificates: CertificateFiles;
  let server: RunningHttpServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'virtfleet-https-'));
    pki = await createTestPki(join(dir, 'pki'));
    serverFiles = await pki.issue('agent', 'h1');
    certificates = new CertificateFiles(serverFiles, 'grpc.tls', { refreshMs: 100 });
    server = await startHttpServer({
      listen: '127.0.0.1:0',
      certificates,
      log,
      routes: [{ method: 'GET', path: '/whoami', guard: () => undefined, handler: (r) => ({ body: r.peer ? `${r.peer.role}/${r.peer.name}` : 'nobody' }) }],
    });
  });
  afterAll(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('knows a client by a certificate its CA issued, and nobody by none or by another CA’s', async () => {
    const stranger = await (await createTestPki(join(dir, 'other-pki'))).issue('operator', 'prometheus');
    expect(server.tls).toBe(true);
    expect((await get(server.port, pki.ca, await pki.issue('operator', 'prometheus'))).body).toBe('operator/prometheus');
    expect((await get(server.port, pki.ca, await pki.issue('coordinator', 'c1'))).body).toBe('coordinator/c1');
    expect((await get(server.port, pki.ca)).body).toBe('nobody');
    expect((await get(server.port, pki.ca, stranger)).body, 'a certificate of another CA').toBe('nobody');
  });

  it('serves a renewed certificate to new connections without a restart', async () => {
    const before = (await get(server.port, pki.ca)).serverSerial;
    await issueCertificate(pki.dir, { role: 'agent', name: 'h1', out: serverFiles.cert.replace(/\.crt$/, '') });
    const after = await waitFor('the renewed certificate to be served', async () => {
      const serial = (await get(server.port, pki.ca)).serverSerial;
      return serial !== before ? { serial } : undefined;
    });
    expect(after.serial.toUpperCase()).toBe(new X509Certificate(readFileSync(serverFiles.cert)).serialNumber.toUpperCase());
  });
});
