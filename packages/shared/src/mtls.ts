import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';
import { credentials, experimental, ServerCredentials, ServerInterceptingCall, status, type ChannelCredentials, type ServerInterceptor } from '@grpc/grpc-js';
import { InvalidArgumentError } from './errors.js';
import type { Logger } from './logger.js';
import { describeIdentity, identitiesInAltNames, identityOfPeer, type Identity, type Role } from './identity.js';

/** Mutual TLS material as PEM file paths: this side's certificate and key, and the cluster CA that vouches for the other side. */
export interface MutualTlsFiles {
  cert: string;
  key: string;
  ca: string;
}

/** How errors name the files: `grpc.tls` gives grpc.tls.cert and so on; a function names each part (a CLI flag, say). */
export type TlsField = string | ((part: keyof MutualTlsFiles) => string);

/** Certificate material read and checked. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
  identity: Identity;
  /** When the certificate expires (epoch ms). */
  notAfterMs: number;
}

function readPem(path: string, field: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new InvalidArgumentError(field, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * Reads and checks a certificate, its key and the CA: the key belongs to
 * the certificate, the CA signed it, it is valid now and it carries exactly
 * one virtfleet identity.
 * @throws InvalidArgumentError naming `field.cert`, `field.key` or `field.ca`
 */
export function loadTlsMaterial(files: MutualTlsFiles, field: TlsField, now = Date.now()): TlsMaterial {
  const name = (part: keyof MutualTlsFiles) => (typeof field === 'string' ? `${field}.${part}` : field(part));
  const [cert, key, ca] = [readPem(files.cert, name('cert')), readPem(files.key, name('key')), readPem(files.ca, name('ca'))];
  const parse = <T>(what: keyof MutualTlsFiles, f: () => T): T => {
    try {
      return f();
    } catch (err) {
      throw new InvalidArgumentError(name(what), `not a PEM ${what === 'key' ? 'private key' : 'certificate'}: ${(err as Error).message}`);
    }
  };
  const x509 = parse('cert', () => new X509Certificate(cert));
  const caCert = parse('ca', () => new X509Certificate(ca));
  const privateKey = parse('key', () => createPrivateKey(key));
  if (!x509.checkPrivateKey(privateKey)) throw new InvalidArgumentError(name('key'), `is not the key of ${files.cert}`);
  if (!x509.checkIssued(caCert) || !x509.verify(caCert.publicKey)) throw new InvalidArgumentError(name('cert'), `${files.cert} was not issued by the CA in ${files.ca}`);
  const notAfterMs = Date.parse(x509.validTo);
  if (notAfterMs <= now) throw new InvalidArgumentError(name('cert'), `${files.cert} expired on ${new Date(notAfterMs).toISOString()}; renew it with \`virtfleet pki issue\``);
  if (Date.parse(x509.validFrom) > now) throw new InvalidArgumentError(name('cert'), `${files.cert} is not valid before ${x509.validFrom}`);
  const identities = identitiesInAltNames(x509.subjectAltName);
  if (identities.length !== 1) throw new InvalidArgumentError(name('cert'), `${files.cert} must name exactly one virtfleet identity (a URI virtfleet://ROLE/NAME); it names ${identities.length}`);
  return { cert, key, ca, identity: identities[0]!, notAfterMs };
}

type IdentityListener = (update: { certificate: Buffer; privateKey: Buffer } | null) => void;
type CaListener = (update: { caCertificate: Buffer } | null) => void;

export interface CertificateFilesOptions {
  /** The identity the certificate must carry: the one this process runs as. */
  identity?: ExpectedPeer;
  /** How often the files are checked for a renewal. @default 5_000 */
  refreshMs?: number;
  /** A renewed certificate was loaded. */
  onRenewed?: (material: TlsMaterial) => void;
  /** Changed files did not hold a usable certificate; the previous one stays in use. */
  onRejected?: (err: Error) => void;
}

/**
 * A certificate, key and CA from files, for grpc-js's certificate-provider
 * credentials: renewing the files in place takes effect without a restart.
 * A change is checked as at start (`loadTlsMaterial`) before it is used, so
 * a renewal written half-way (new certificate, old key) keeps the previous
 * pair in service instead of breaking every connection.
 */
export class CertificateFiles implements experimental.CertificateProvider {
  private material: TlsMaterial;
  private stamp: string;
  private readonly identityListeners = new Set<IdentityListener>();
  private readonly caListeners = new Set<CaListener>();
  private timer: NodeJS.Timeout | undefined;

  /** @throws InvalidArgumentError when the files do not hold a usable certificate */
  constructor(
    readonly files: MutualTlsFiles,
    private readonly field: TlsField,
    private readonly options: CertificateFilesOptions = {},
  ) {
    this.stamp = this.stampNow();
    this.material = this.load();
  }

  private load(): TlsMaterial {
    const material = loadTlsMaterial(this.files, this.field);
    const expected = this.options.identity;
    if (expected && identityMismatch(material.identity, expected))
      throw new InvalidArgumentError(typeof this.field === 'string' ? `${this.field}.cert` : this.field('cert'), `${this.files.cert} names ${describeIdentity(material.identity)}; this process is ${describeExpected(expected)}`);
    return material;
  }

  /** The certificate in use now. */
  get current(): TlsMaterial {
    return this.material;
  }

  /** Loads the files again if they changed; returns whether a renewed certificate is now in use. */
  refresh(): boolean {
    const stamp = this.stampNow();
    if (stamp === this.stamp) return false;
    this.stamp = stamp;
    try {
      this.material = this.load();
    } catch (err) {
      this.options.onRejected?.(err as Error);
      return false;
    }
    this.options.onRenewed?.(this.material);
    for (const l of this.identityListeners) l({ certificate: this.material.cert, privateKey: this.material.key });
    for (const l of this.caListeners) l({ caCertificate: this.material.ca });
    return true;
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    this.watch();
    // Asynchronously, as grpc-js's own providers do: credentials register their watchers after adding listeners.
    process.nextTick(listener, { certificate: this.material.cert, privateKey: this.material.key });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
    this.unwatchIfUnused();
  }

  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    this.watch();
    process.nextTick(listener, { caCertificate: this.material.ca });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
    this.unwatchIfUnused();
  }

  private stampNow(): string {
    return [this.files.cert, this.files.key, this.files.ca]
      .map((f) => {
        try {
          const s = statSync(f);
          return `${s.ino}:${s.size}:${s.mtimeMs}`;
        } catch {
          return 'missing';
        }
      })
      .join('|');
  }

  private watch(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.refresh(), this.options.refreshMs ?? 5_000);
    this.timer.unref();
  }

  private unwatchIfUnused(): void {
    if (this.identityListeners.size > 0 || this.caListeners.size > 0 || !this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

/**
 * Server credentials: mutual TLS from `certificates`, or plaintext when
 * there are none. Client certificates are asked for but not required by
 * the handshake, so that a caller without a valid one gets a gRPC status
 * (UNAUTHENTICATED from `peerAuthorization`) instead of a dropped connection.
 */
export function serverCredentials(certificates: CertificateFiles | undefined): ServerCredentials {
  return certificates ? experimental.createCertificateProviderServerCredentials(certificates, certificates, false) : ServerCredentials.createInsecure();
}

/** What a client requires of the server's certificate. */
export interface ExpectedPeer {
  role: Role;
  /** Required name; any name of the role when left out. */
  name?: string;
}

const identityMismatch = (identity: Identity | undefined, expected: ExpectedPeer): boolean => identity?.role !== expected.role || (expected.name !== undefined && identity.name !== expected.name);
const describeExpected = (expected: ExpectedPeer): string => (expected.name === undefined ? `a ${expected.role}` : `${expected.role} ${expected.name}`);

function peerMismatch(identity: Identity | undefined, expected: ExpectedPeer): string | undefined {
  return identityMismatch(identity, expected) ? `the server's certificate names ${describeIdentity(identity)}, not ${describeExpected(expected)}` : undefined;
}

/**
 * Client credentials: mutual TLS presenting `certificates`, accepting only a
 * server whose certificate (issued by the same CA) carries the expected
 * identity. The identity stands in for the host name check: an agent's
 * address comes from its own telemetry, so the address proves nothing, but
 * only the real host holds a certificate naming its host id. Plaintext when
 * there are no certificates.
 */
export function channelCredentials(certificates: CertificateFiles | undefined, expected: ExpectedPeer): ChannelCredentials {
  if (!certificates) return credentials.createInsecure();
  return experimental.createCertificateProviderChannelCredentials(certificates, certificates, {
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      const mismatch = peerMismatch(identityOfPeer(cert), expected);
      return mismatch === undefined ? undefined : new Error(mismatch);
    },
  });
}

/**
 * Channel options for `channelCredentials`: the TLS server name is a fixed
 * word rather than the address, which is often an IP (not allowed as SNI)
 * and proves nothing here; the identity check replaces the name check.
 */
export const TLS_CHANNEL_OPTIONS = { 'grpc.ssl_target_name_override': 'virtfleet' } as const;

/** The identity of a call's client, when it presented a certificate the server's CA issued. */
export function callerIdentity(call: { getAuthContext(): { sslPeerCertificate?: PeerCertificate | undefined } }): Identity | undefined {
  return identityOfPeer(call.getAuthContext().sslPeerCertificate);
}

/** Methods anyone may call: health checks say nothing about the cluster. */
const OPEN_SERVICE_PREFIXES = ['/grpc.health.v1.Health/'];

/**
 * Refuses every call (health checks aside) whose client did not present a
 * certificate from the cluster CA (UNAUTHENTICATED) or whose certificate's
 * role is not in `allowed` (PERMISSION_DENIED), before the handler sees
 * the request. `onRefused` hears of each refusal.
 */
export function peerAuthorization(allowed: readonly Role[], onRefused: (method: string, code: status, reason: string, identity: Identity | undefined) => void = () => undefined): ServerInterceptor {
  return (method, call) =>
    new ServerInterceptingCall(call, {
      start: (next) => {
        if (OPEN_SERVICE_PREFIXES.some((p) => method.path.startsWith(p))) return next();
        const peer = call.getAuthContext().sslPeerCertificate;
        const identity = identityOfPeer(peer);
        let refusal: { code: status; details: string } | undefined;
        if (!peer) refusal = { code: status.UNAUTHENTICATED, details: 'a client certificate issued by the cluster CA is required (see `virtfleet pki issue`)' };
        else if (!identity || !allowed.includes(identity.role))
          refusal = { code: status.PERMISSION_DENIED, details: `${describeIdentity(identity)} may not call ${method.path}: it takes a ${allowed.join(' or ')} certificate` };
        if (!refusal) return next();
        onRefused(method.path, refusal.code, refusal.details, identity);
        call.sendStatus(refusal);
      },
    });
}

const DAY_MS = 86_400_000;
/** Daemons warn from this many days before their certificate expires (`virtfleet pki show` says the same). */
export const CERTIFICATE_WARN_DAYS = 30;

/**
 * The certificates a daemon serves and calls with, checked to carry the
 * identity it runs as; renewals are picked up from the files. Without
 * files (`insecure: true`) it logs `insecureWarning` at warn level and
 * returns undefined: plaintext.
 * @throws InvalidArgumentError naming the field when the files are not usable
 */
export function openDaemonCertificates(files: MutualTlsFiles | undefined, field: string, identity: ExpectedPeer, log: Logger, insecureWarning: string): CertificateFiles | undefined {
  if (!files) {
    log.warn({ insecure: true }, insecureWarning);
    return undefined;
  }
  const warnIfExpiring = (m: TlsMaterial) => {
    const daysLeft = Math.floor((m.notAfterMs - Date.now()) / DAY_MS);
    if (daysLeft < CERTIFICATE_WARN_DAYS) log.warn({ cert: files.cert, notAfter: new Date(m.notAfterMs).toISOString(), daysLeft }, 'certificate expires soon: renew it with `virtfleet pki issue` (the new files are picked up without a restart)');
  };
  const certificates = new CertificateFiles(files, field, {
    identity,
    onRenewed: (m) => {
      log.info({ cert: files.cert, identity: describeIdentity(m.identity), notAfter: new Date(m.notAfterMs).toISOString() }, 'renewed certificate in use');
      warnIfExpiring(m);
    },
    onRejected: (err) => log.error({ cert: files.cert, err: err.message }, 'changed certificate files are not usable; the previous certificate stays in use'),
  });
  log.info({ cert: files.cert, identity: describeIdentity(certificates.current.identity), notAfter: new Date(certificates.current.notAfterMs).toISOString() }, 'mutual TLS on');
  warnIfExpiring(certificates.current);
  setInterval(() => warnIfExpiring(certificates.current), DAY_MS).unref();
  return certificates;
}
