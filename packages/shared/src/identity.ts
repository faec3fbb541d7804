import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { HOST_ID } from './validation.js';

/**
 * Who a certificate speaks for. Each role has its own links: a coordinator
 * serves operators and calls agents, an agent serves coordinators, an
 * operator calls coordinators.
 */
export const ROLES = ['coordinator', 'agent', 'operator'] as const;
export type Role = (typeof ROLES)[number];

export interface Identity {
  role: Role;
  /** A coordinator's id, an agent's host id, an operator's name. */
  name: string;
}

/** Names in certificates follow the host id rule: 1-63 letters, digits, "-" or "_", alphanumeric at both ends. */
export const IDENTITY_NAME = HOST_ID;

const URI_PREFIX = 'virtfleet://';

/** The SAN URI that carries an identity: `virtfleet://agent/host-1`. */
export function identityUri(identity: Identity): string {
  return `${URI_PREFIX}${identity.role}/${identity.name}`;
}

/**
 * The identities a certificate's subjectAltName names (Node's
 * "DNS:a, URI:virtfleet://agent/h1" form). Entries that are not ours, or
 * whose role or name break the rules, are ignored.
 */
export function identitiesInAltNames(subjectAltName: string | undefined): Identity[] {
  const out: Identity[] = [];
  for (const entry of (subjectAltName ?? '').split(/,\s*/)) {
    if (!entry.startsWith(`URI:${URI_PREFIX}`)) continue;
    const [role, name, ...rest] = entry.slice(`URI:${URI_PREFIX}`.length).split('/');
    if (rest.length > 0 || !name || !IDENTITY_NAME.test(name)) continue;
    const known = ROLES.find((r) => r === role);
    if (known) out.push({ role: known, name });
  }
  return out;
}

/** The identity a verified peer certificate carries; undefined without one (or with several, which no issued certificate has). */
export function identityOfPeer(cert: PeerCertificate | undefined): Identity | undefined {
  const found = identitiesInAltNames(cert?.subjectaltname);
  return found.length === 1 ? found[0] : undefined;
}

/** The identity of a PEM certificate, as `identityOfPeer` would read it once presented. */
export function identityOfPem(pem: string | Buffer): Identity | undefined {
  const found = identitiesInAltNames(new X509Certificate(pem).subjectAltName);
  return found.length === 1 ? found[0] : undefined;
}

export const describeIdentity = (identity: Identity | undefined): string => (identity ? `${identity.role} ${identity.name}` : 'a certificate without a virtfleet identity');
