import { execFile } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { identitiesInAltNames, identityUri, IDENTITY_NAME, InvalidArgumentError, loadTlsMaterial, ROLES, type Identity, type Role } from '@virtfleet/shared';

const run = promisify(execFile);

/** The cluster CA's files in a PKI directory. */
export const CA_CERT_FILE = 'ca.crt';
export const CA_KEY_FILE = 'ca.key';

/** A CA lasts ten years; certificates a little over one (browsers' 397-day rule), renewed well before. */
export const DEFAULT_CA_DAYS = 3650;
export const DEFAULT_CERT_DAYS = 397;
/** Renew when fewer days than this are left: the daemons warn from then on. */
export const RENEW_WITHIN_DAYS = 30;
const DAY_MS = 86_400_000;

const DNS_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** What each role's certificate may do: coordinators and agents serve and call, operators only call. */
const EXTENDED_KEY_USAGE: Record<Role, string> = { coordinator: 'serverAuth,clientAuth', agent: 'serverAuth,clientAuth', operator: 'clientAuth' };

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args, { timeout: 30_000 });
  } catch (err) {
    const e = err as { code?: string; stderr?: string; message: string };
    if (e.code === 'ENOENT') throw new Error('openssl is not installed (apt-get install openssl)');
    throw new Error(`openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** A private directory beside `target`, so that finished files move into place by rename. */
function workDirBeside(target: string): string {
  mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
  return mkdtempSync(join(dirname(target), '.pki-'));
}

export interface CaFiles {
  cert: string;
  key: string;
  /** False when the directory already held a CA, which was kept. */
  created: boolean;
}

/**
 * Creates the cluster CA in `dir` (ca.crt, and ca.key readable by root only).
 * A directory that already holds one keeps it: certificates it issued stay
 * valid, and running this twice is harmless.
 */
export async function initCa(dir: string, options: { days?: number } = {}): Promise<CaFiles> {
  const cert = resolve(dir, CA_CERT_FILE);
  const key = resolve(dir, CA_KEY_FILE);
  if (existsSync(cert) && existsSync(key)) return { cert, key, created: false };
  const days = checkDays(options.days ?? DEFAULT_CA_DAYS, '--days');
  const work = workDirBeside(cert);
  try {
    await openssl([
      'req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-sha256',
      '-keyout', join(work, 'key'), '-out', join(work, 'crt'), '-days', String(days),
      '-subj', `/O=virtfleet/CN=virtfleet cluster CA ${randomBytes(4).toString('hex')}`,
      '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    chmodSync(join(work, 'key'), 0o600);
    chmodSync(join(work, 'crt'), 0o644);
    renameSync(join(work, 'key'), key);
    renameSync(join(work, 'crt'), cert);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { cert, key, created: true };
}

export interface IssueOptions {
  role: Role;
  name: string;
  /** More DNS names the certificate is good for; coordinators and agents always get localhost. */
  dns?: string[];
  /** More IP addresses; coordinators and agents always get 127.0.0.1 and ::1. */
  ips?: string[];
  days?: number;
  /** Path without extension of the files written (PREFIX.crt, PREFIX.key). @default `<dir>/<role>-<name>` */
  out?: string;
}

export interface IssuedFiles {
  cert: string;
  key: string;
  ca: string;
  identity: Identity;
  notAfter: Date;
}

function checkDays(days: number, field: string): number {
  if (!Number.isInteger(days) || days < 1 || days > 36_500) throw new InvalidArgumentError(field, 'must be a whole number of days from 1 to 36500');
  return days;
}

/**
 * Issues a certificate for `role`/`name` signed by the CA in `dir`: an EC
 * P-256 key, the identity as a URI SAN (virtfleet://ROLE/NAME), the DNS
 * names and addresses given, and the role's key usages. Issuing again for
 * the same files renews them in place (key first, then certificate, each
 * by rename); running daemons pick the new pair up by themselves.
 * @throws InvalidArgumentError naming the option that is wrong
 */
export async function issueCertificate(dir: string, options: IssueOptions): Promise<IssuedFiles> {
  if (!ROLES.includes(options.role)) throw new InvalidArgumentError('--role', `must be one of ${ROLES.join(', ')}`);
  if (!IDENTITY_NAME.test(options.name)) throw new InvalidArgumentError('--name', 'must be 1-63 letters, digits, "-" or "_", starting and ending alphanumeric');
  for (const d of options.dns ?? []) if (!DNS_NAME.test(d)) throw new InvalidArgumentError('--dns', `${JSON.stringify(d)} is not a DNS name`);
  for (const ip of options.ips ?? []) if (isIP(ip) === 0) throw new InvalidArgumentError('--ip', `${JSON.stringify(ip)} is not an IP address`);
  const days = checkDays(options.days ?? DEFAULT_CERT_DAYS, '--days');
  const caCert = resolve(dir, CA_CERT_FILE);
  const caKey = resolve(dir, CA_KEY_FILE);
  if (!existsSync(caCert) || !existsSync(caKey)) throw new InvalidArgumentError('--dir', `${resolve(dir)} holds no CA; create one with \`virtfleet pki init --dir ${dir}\``);
  const identity: Identity = { role: options.role, name: options.name };
  const prefix = resolve(options.out ?? join(dir, `${options.role}-${options.name}`));
  const serves = options.role !== 'operator';
  const altNames = [
    `URI:${identityUri(identity)}`,
    ...(serves ? ['DNS:localhost', ...(options.dns ?? []).map((d) => `DNS:${d}`), 'IP:127.0.0.1', 'IP:::1'] : (options.dns ?? []).map((d) => `DNS:${d}`)),
    ...(options.ips ?? []).filter((ip) => !serves || (ip !== '127.0.0.1' && ip !== '::1')).map((ip) => `IP:${ip}`),
  ];
  const work = workDirBeside(`${prefix}.crt`);
  try {
    const ext = join(work, 'ext.cnf');
    writeFileSync(
      ext,
      ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', `extendedKeyUsage=${EXTENDED_KEY_USAGE[options.role]}`, `subjectAltName=${altNames.join(',')}`, 'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid'].join('\n') + '\n',
    );
    await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(work, 'key'), '-out', join(work, 'csr'), '-subj', `/O=virtfleet/OU=${options.role}/CN=${options.name}`]);
    await openssl(['x509', '-req', '-in', join(work, 'csr'), '-CA', caCert, '-CAkey', caKey, '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', String(days), '-sha256', '-extfile', ext, '-out', join(work, 'crt')]);
    chmodSync(join(work, 'key'), 0o600);
    chmodSync(join(work, 'crt'), 0o644);
    const material = loadTlsMaterial({ cert: join(work, 'crt'), key: join(work, 'key'), ca: caCert }, 'issued');
    renameSync(join(work, 'key'), `${prefix}.key`);
    renameSync(join(work, 'crt'), `${prefix}.crt`);
    return { cert: `${prefix}.crt`, key: `${prefix}.key`, ca: caCert, identity: material.identity, notAfter: new Date(material.notAfterMs) };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export interface CertificateSummary {
  file: string;
  identity: Identity | undefined;
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  daysLeft: number;
  /** Fewer than RENEW_WITHIN_DAYS days left, or expired. */
  renewNow: boolean;
  altNames: string;
}

/** What a certificate file says about itself, for `pki show`. */
export function describeCertificate(file: string, now = Date.now()): CertificateSummary {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(readFileSync(file));
  } catch (err) {
    throw new InvalidArgumentError(file, `not a readable PEM certificate: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const identities = identitiesInAltNames(x509.subjectAltName);
  const notAfter = new Date(x509.validTo);
  const daysLeft = Math.floor((notAfter.getTime() - now) / DAY_MS);
  return {
    file,
    identity: identities.length === 1 ? identities[0] : undefined,
    subject: x509.subject.replace(/\n/g, ', '),
    issuer: x509.issuer.replace(/\n/g, ', '),
    notBefore: new Date(x509.validFrom),
    notAfter,
    daysLeft,
    renewNow: daysLeft < RENEW_WITHIN_DAYS,
    altNames: x509.subjectAltName ?? '',
  };
}
