import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { NotFoundError, errorMessage, type Logger } from '@virtfleet/shared';
import { z } from 'zod';
import { ACCESS_ROLES, type AccessRole } from './access.js';
import type { Principal } from './principal.js';

/** A token as stored: the secret only as its SHA-256. */
export interface TokenRecord {
  id: string;
  role: AccessRole;
  tenant?: string;
  description: string;
  /** hex SHA-256 of the secret part of the bearer string. */
  secretHash: string;
  createdAtMs: number;
  expiresAtMs?: number;
  revokedAtMs?: number;
  /** Who created it (a token id or certificate identity, described). */
  createdBy: string;
  /** The request id it was created with, so a repeat is recognised (and refused: the secret is not kept). */
  requestId?: string;
}

export const tokenRecordSchema = z
  .object({
    id: z.string().regex(/^[0-9a-f]{16}$/),
    role: z.enum(ACCESS_ROLES),
    tenant: z.string().optional(),
    description: z.string().max(200),
    secretHash: z.string().regex(/^[0-9a-f]{64}$/),
    createdAtMs: z.number().int(),
    expiresAtMs: z.number().int().optional(),
    revokedAtMs: z.number().int().optional(),
    createdBy: z.string(),
    requestId: z.string().optional(),
  })
  .strict();

/** Where token records are kept: durable, shared by every coordinator. */
export interface TokenBackend {
  /** Every stored record; unreadable ones are left out (and logged). */
  load(): Promise<TokenRecord[]>;
  /** Resolves once the record is stored. */
  put(record: TokenRecord): Promise<void>;
  /** Hears every record stored from the moment it resolves, by any coordinator; resolves to a stop function. */
  follow(onStored: (record: TokenRecord) => void): Promise<() => void>;
}

/** `vft_<16 hex id>_<43 base64url secret>`: the prefix makes a leaked token easy to spot (and to scan for). */
const BEARER = /^vft_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

export type Authentication = { principal: Principal } | { refusal: string };

/**
 * The operators' bearer tokens. Every coordinator keeps all of them in
 * memory and follows the backend, so a token created or revoked on the
 * leader counts everywhere as soon as the store delivers it (milliseconds).
 * Secrets are never stored: a token is checked by the hash of its secret,
 * in constant time.
 */
export class TokenRegistry {
  private readonly tokens = new Map<string, TokenRecord>();
  private stopFollowing: () => void = () => undefined;

  private constructor(
    private readonly backend: TokenBackend,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  static async open(backend: TokenBackend, log: Logger, now: () => number = Date.now): Promise<TokenRegistry> {
    const registry = new TokenRegistry(backend, log, now);
    // Following first, so that nothing stored while loading is missed; a record is a whole value, and revocation only ever adds revokedAtMs.
    registry.stopFollowing = await backend.follow((r) => registry.remember(r));
    for (const r of await backend.load()) registry.remember(r);
    return registry;
  }

  close(): void {
    this.stopFollowing();
  }

  private remember(record: TokenRecord): void {
    const known = this.tokens.get(record.id);
    // A revocation is never undone by an older copy arriving late.
    if (known?.revokedAtMs !== undefined && record.revokedAtMs === undefined) return;
    this.tokens.set(record.id, record);
  }

  /** Makes a token; returns its record and the bearer string, which exists nowhere else. */
  async create(options: { role: AccessRole; tenant?: string | undefined; ttlMs?: number | undefined; description: string; createdBy: string; requestId?: string }): Promise<{ record: TokenRecord; bearer: string }> {
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const now = this.now();
    const record: TokenRecord = {
      id,
      role: options.role,
      ...(options.tenant ? { tenant: options.tenant } : {}),
      description: options.description,
      secretHash: sha256(secret),
      createdAtMs: now,
      ...(options.ttlMs ? { expiresAtMs: now + options.ttlMs } : {}),
      createdBy: options.createdBy,
      ...(options.requestId ? { requestId: options.requestId } : {}),
    };
    await this.backend.put(record);
    this.remember(record);
    this.log.info({ token: id, role: record.role, tenant: record.tenant, createdBy: record.createdBy }, 'token created');
    return { record, bearer: `vft_${id}_${secret}` };
  }

  /**
   * Revokes a token (kept, marked revoked, so `token ls` shows it).
   * @throws NotFoundError for an unknown id
   */
  async revoke(id: string, by: string): Promise<TokenRecord> {
    const record = this.tokens.get(id);
    if (!record) throw new NotFoundError('token', id);
    if (record.revokedAtMs !== undefined) return record;
    const revoked = { ...record, revokedAtMs: this.now() };
    await this.backend.put(revoked);
    this.remember(revoked);
    this.log.info({ token: id, by }, 'token revoked');
    return revoked;
  }

  list(): TokenRecord[] {
    return [...this.tokens.values()].sort((a, b) => a.createdAtMs - b.createdAtMs || a.id.localeCompare(b.id));
  }

  /** Who a bearer string speaks for, or why it is refused (the same words for an unknown id and a wrong secret). */
  authenticate(bearer: string): Authentication {
    const m = BEARER.exec(bearer);
    if (!m) return { refusal: 'the bearer token is malformed (expected vft_<id>_<secret>, from `virtfleet token create`)' };
    const [, id = '', secret = ''] = m;
    const record = this.tokens.get(id);
    const presented = Buffer.from(sha256(secret), 'hex');
    if (!record || !timingSafeEqual(presented, Buffer.from(record.secretHash, 'hex'))) return { refusal: 'the bearer token is not one this cluster issued' };
    if (record.revokedAtMs !== undefined) return { refusal: `token ${id} was revoked at ${new Date(record.revokedAtMs).toISOString()}` };
    if (record.expiresAtMs !== undefined && record.expiresAtMs <= this.now()) return { refusal: `token ${id} expired at ${new Date(record.expiresAtMs).toISOString()}` };
    return { principal: { kind: 'token', id, role: record.role, ...(record.tenant ? { tenant: record.tenant } : {}) } };
  }
}

/** Parses a stored record; undefined (after a warning) when it is not one. */
export function readTokenRecord(raw: unknown, key: string, log: Logger): TokenRecord | undefined {
  const parsed = tokenRecordSchema.safeParse(raw);
  if (parsed.success) return parsed.data as TokenRecord;
  log.warn({ key, err: errorMessage(parsed.error) }, 'unreadable token record; ignored');
  return undefined;
}
