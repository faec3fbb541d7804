import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateFiles, InvalidArgumentError, loadTlsMaterial, type MutualTlsFiles, type Role } from '@virtfleet/shared';
import { describeCertificate, initCa, issueCertificate } from './pki.js';

function thrown(f: () => unknown): InvalidArgumentError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return err as InvalidArgumentError;
  }
  throw new Error('expected an InvalidArgumentError');
}

async function rejected(p: Promise<unknown>): Promise<InvalidArgumentError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InvalidArgumentError);
  return err as InvalidArgumentError;
}

describe('the cluster PKI (real openssl)', () => {
  let dir: string;
  let otherDir: string;
  let agent: MutualTlsFiles;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'virtfleet-pki-'));
    otherDir = mkdtempSync(join(tmpdir(), 'virtfleet-pki-other-'));
    await initCa(dir);
    await initCa(otherDir);
    agent = await issueCertificate(dir, { role: 'agent', name: 'h-1' });
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(otherDir, { recursive: true, force: true });
  });

  it('keeps an existing CA when asked to create one again', async () => {
    const before = readFileSync(join(dir, 'ca.crt'), 'utf8');
    const again = await initCa(dir);
    expect(again.created).toBe(false);
    expect(readFileSync(again.cert, 'utf8')).toBe(before);
  });

  it.each<{ role: Role; name: string; serves: boolean }>([
    { role: 'coordinator', name: 'c1', serves: true },
    { role: 'agent', name: 'node-2', serves: true },
    { role: 'operator', name: 'alice', serves: false },
  ])('issues a $role certificate carrying its identity, usable as issued', async ({ role, name, serves }) => {
    const issued = await issueCertificate(dir, { role, name, dns: ['api.example.net'], ips: ['192.0.2.7'] });
    expect(issued.identity).toEqual({ role, name });
    const material = loadTlsMaterial(issued, 'tls');
    expect(material.identity).toEqual({ role, name });
    const summary = describeCertificate(issued.cert);
    expect(summary.altNames).toContain(`URI:virtfleet://${role}/${name}`);
    expect(summary.altNames).toContain('DNS:api.example.net');
    expect(summary.altNames).toContain('IP Address:192.0.2.7');
    expect(summary.altNames.includes('DNS:localhost')).toBe(serves);
    expect(summary.daysLeft).toBeGreaterThanOrEqual(395);
    expect(summary.renewNow).toBe(false);
  });

  it('marks a certificate close to expiry for renewal', async () => {
    const short = await issueCertificate(dir, { role: 'operator', name: 'temp', days: 10 });
    expect(describeCertificate(short.cert)).toMatchObject({ daysLeft: 9, renewNow: true });
  });

  it.each<{ what: string; options: Parameters<typeof issueCertificate>[1]; field: string }>([
    { what: 'a name with a path in it', options: { role: 'agent', name: '../etc' }, field: '--name' },
    { what: 'a name with a shell metacharacter', options: { role: 'agent', name: 'h1;rm' }, field: '--name' },
    { what: 'a name with a look-alike letter', options: { role: 'agent', name: 'hоst' }, field: '--name' },
    { what: 'a DNS name with a comma (an extra SAN)', options: { role: 'agent', name: 'h1', dns: ['a,URI:virtfleet://coordinator/x'] }, field: '--dns' },
    { what: 'an address that is not one', options: { role: 'agent', name: 'h1', ips: ['300.1.1.1'] }, field: '--ip' },
    { what: 'zero days', options: { role: 'agent', name: 'h1', days: 0 }, field: '--days' },
    { what: 'an unknown role', options: { role: 'root' as Role, name: 'h1' }, field: '--role' },
  ])('refuses $what, naming $field', async ({ options, field }) => {
    expect((await rejected(issueCertificate(dir, options))).field).toBe(field);
  });

  it('refuses to issue from a directory without a CA', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'virtfleet-pki-empty-'));
    try {
      expect((await rejected(issueCertificate(empty, { role: 'agent', name: 'h1' }))).field).toBe('--dir');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it.each<{ what: string; files: () => MutualTlsFiles; field: string; reason: RegExp }>([
    { what: 'a missing certificate', files: () => ({ ...agent, cert: join(dir, 'nope.crt') }), field: 'grpc.tls.cert', reason: /cannot read .*nope\.crt: ENOENT/ },
    { what: 'a file that is not PEM', files: () => ({ ...agent, ca: writeText('junk.pem', 'not a certificate') }), field: 'grpc.tls.ca', reason: /not a PEM certificate/ },
    { what: 'another certificate’s key', files: () => ({ ...agent, key: join(dir, 'operator-alice.key') }), field: 'grpc.tls.key', reason: /is not the key of/ },
    { what: 'a CA that did not issue it', files: () => ({ ...agent, ca: join(otherDir, 'ca.crt') }), field: 'grpc.tls.cert', reason: /was not issued by the CA/ },
    { what: 'the CA itself as the certificate', files: () => ({ cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key'), ca: join(dir, 'ca.crt') }), field: 'grpc.tls.cert', reason: /exactly one virtfleet identity/ },
  ])('loadTlsMaterial refuses $what, naming $field', ({ files, field, reason }) => {
    const err = thrown(() => loadTlsMaterial(files(), 'grpc.tls'));
    expect(err.field).toBe(field);
    expect(err.reason).toMatch(reason);
  });

  it('CertificateFiles refuses a certificate naming another identity than the process runs as', () => {
    const err = thrown(() => new CertificateFiles(agent, 'grpc.tls', { identity: { role: 'agent', name: 'h-2' } }));
    expect(err.field).toBe('grpc.tls.cert');
    expect(err.reason).toMatch(/names agent h-1; this process is agent h-2/);
  });

  it('CertificateFiles takes a renewal, and keeps the previous pair when changed files do not fit together', async () => {
    const live = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key'), ca: agent.ca };
    copyFileSync(agent.cert, live.cert);
    copyFileSync(agent.key, live.key);
    const rejections: string[] = [];
    const files = new CertificateFiles(live, 'grpc.tls', { identity: { role: 'agent', name: 'h-1' }, onRejected: (e) => rejections.push(e.message) });
    const first = files.current.cert.toString();
    expect(files.refresh(), 'nothing changed').toBe(false);

    const renewed = await issueCertificate(dir, { role: 'agent', name: 'h-1', out: join(dir, 'renewed') });
    copyFileSync(renewed.cert, live.cert); // the key not yet
    expect(files.refresh()).toBe(false);
    expect(rejections).toHaveLength(1);
    expect(rejections[0]).toMatch(/is not the key of/);
    expect(files.current.cert.toString()).toBe(first);

    copyFileSync(renewed.key, live.key);
    expect(files.refresh()).toBe(true);
    expect(files.current.cert.toString()).toBe(readFileSync(renewed.cert, 'utf8'));
  });

  function writeText(name: string, text: string): string {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  }
});
