import { DNS_LABEL, FailedPreconditionError, opaqueIdSchema, parseOrThrow, unary, type Logger, type pb } from '@virtfleet/shared';
import { z } from 'zod';
import type { RequestLedger } from '../requests/request-ledger.js';
import { ACCESS_ROLES } from './access.js';
import { describePrincipal, principalOf } from './principal.js';
import type { TokenRecord, TokenRegistry } from './token-registry.js';

export type TokenHandlers = Pick<pb.CoordinatorHandlers, 'CreateToken' | 'ListTokens' | 'RevokeToken'>;

/** Ten years: a longer-lived token is one nobody will remember to revoke. */
export const MAX_TOKEN_TTL_SECONDS = 10 * 365 * 86_400;

const requestIdSchema = z.union([z.literal(''), opaqueIdSchema]);

const createSchema = z.object({
  request_id: requestIdSchema,
  role: z.enum(ACCESS_ROLES, { error: `must be one of ${ACCESS_ROLES.join(', ')}` }),
  tenant: z.union([z.literal(''), z.string().regex(DNS_LABEL, 'must be a DNS label (empty: every tenant)')]),
  ttl_seconds: z.coerce.number().int().min(0).max(MAX_TOKEN_TTL_SECONDS, `must be at most ${MAX_TOKEN_TTL_SECONDS} (10 years; 0: no expiry)`),
  description: z.string().max(200, 'must be at most 200 characters'),
});

const revokeSchema = z.object({ request_id: requestIdSchema, id: z.string().regex(/^[0-9a-f]{16}$/, 'must be a token id (16 hex digits)') });

const iso = (ms: number | undefined) => (ms === undefined ? '' : new Date(ms).toISOString());

export function toProtoToken(t: TokenRecord): pb.Token {
  return { id: t.id, role: t.role, tenant: t.tenant ?? '', description: t.description, created_at: iso(t.createdAtMs), expires_at: iso(t.expiresAtMs), revoked_at: iso(t.revokedAtMs), created_by: t.createdBy };
}

/**
 * CreateToken, ListTokens and RevokeToken. Changes go through the leader.
 * A create is not kept in the request ledger, which would store the secret:
 * a repeat of its request id is refused instead, naming the token it made.
 */
export function tokenHandlers(tokens: TokenRegistry, requireLeader: () => void, requests: RequestLedger, log: Logger): TokenHandlers {
  return {
    CreateToken: unary<pb.CreateTokenRequest__Output, pb.CreatedToken>(log, 'CreateToken', async (req, call) => {
      const r = parseOrThrow(createSchema, req);
      requireLeader();
      const earlier = r.request_id ? tokens.list().find((t) => t.requestId === r.request_id)?.id : undefined;
      if (earlier) throw new FailedPreconditionError(`request_id ${r.request_id} already created token ${earlier}; its secret was shown once (revoke it and create another if it was lost)`);
      const { record, bearer } = await tokens.create({
        role: r.role,
        tenant: r.tenant || undefined,
        ttlMs: r.ttl_seconds * 1000,
        description: r.description,
        createdBy: describePrincipal(principalOf(call)),
        ...(r.request_id ? { requestId: r.request_id } : {}),
      });
      return { token: toProtoToken(record), bearer };
    }),
    ListTokens: unary<pb.ListTokensRequest__Output, pb.ListTokensResponse>(log, 'ListTokens', () => Promise.resolve({ tokens: tokens.list().map(toProtoToken) })),
    RevokeToken: unary<pb.RevokeTokenRequest__Output, pb.Token>(log, 'RevokeToken', (req, call) => {
      const r = parseOrThrow(revokeSchema, req);
      return requests.run(r.request_id, { method: 'RevokeToken', subject: r.id, params: {} }, async () => {
        requireLeader();
        return toProtoToken(await tokens.revoke(r.id, describePrincipal(principalOf(call))));
      });
    }),
  };
}
