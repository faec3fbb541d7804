import { describe, expect, it } from 'vitest';
import { createLogger } from '@virtfleet/shared';
import { TokenRegistry, type TokenBackend, type TokenRecord } from './token-registry.js';

/** An in-memory store shared by several registries, as coordinators share the bucket. */
function sharedBackend() {
  const stored = new Map<string, TokenRecord>();
  const followers = new Set<(r: TokenRecord) => void>();
  const backend: TokenBackend = {
    load: () => Promise.resolve([...stored.values()]),
    put: (r) => {
      stored.set(r.id, r);
      for (const f of followers) f(r);
      return Promise.resolve();
    },
    follow: (f) => {
      followers.add(f);
      return Promise.resolve(() => followers.delete(f));
    },
  };
  return { backend, stored };
}

const log = createLogger('test', 'silent');

describe('TokenRegistry', () => {
  it('authenticates the bearer string it made, stores only the hash of its secret, and names role and tenant', async () => {
    const { backend, stored } = sharedBackend();
    const tokens = await TokenRegistry.open(backend, log);
    const { record, bearer } = await tokens.create({ role: 'operator', tenant: 'blue', description: 'ci', createdBy: 'operator certificate e2e (admin)' });
    expect(bearer).toMatch(/^vft_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(JSON.stringify([...stored.values()])).not.toContain(bearer.slice(21));
    expect(tokens.authenticate(bearer)).toEqual({ principal: { kind: 'token', id: record.id, role: 'operator', tenant: 'blue' } });
  });

  it.each([
    { what: 'a malformed string', bearer: () => 'hunter2', refusal: /malformed/ },
    { what: 'an unknown id', bearer: () => `vft_${'0'.repeat(16)}_${'A'.repeat(43)}`, refusal: /not one this cluster issued/ },
  ])('refuses $what', async ({ bearer, refusal }) => {
    const tokens = await TokenRegistry.open(sharedBackend().backend, log);
    expect(tokens.authenticate(bearer())).toEqual({ refusal: expect.stringMatching(refusal) });
  });

  it('refuses a known id with a wrong secret, in the words it uses for an unknown id', async () => {
    const tokens = await TokenRegistry.open(sharedBackend().backend, log);
    const { bearer } = await tokens.create({ role: 'viewer', description: '', createdBy: 'x' });
    const tampered = `${bearer.slice(0, -1)}${bearer.endsWith('A') ? 'B' : 'A'}`;
    expect(tokens.authenticate(tampered)).toEqual({ refusal: 'the bearer token is not one this cluster issued' });
  });

  it('refuses an expired token', async () => {
    let now = 1_000_000;
    const tokens = await TokenRegistry.open(sharedBackend().backend, log, () => now);
    const { record, bearer } = await tokens.create({ role: 'viewer', ttlMs: 60_000, description: '', createdBy: 'x' });
    expect('principal' in tokens.authenticate(bearer)).toBe(true);
    now += 60_000;
    expect(tokens.authenticate(bearer)).toEqual({ refusal: `token ${record.id} expired at ${new Date(now).toISOString()}` });
  });

  it('hears a revocation made by another coordinator, and a late older copy does not undo it', async () => {
    const { backend } = sharedBackend();
    const leader = await TokenRegistry.open(backend, log);
    const { record, bearer } = await leader.create({ role: 'admin', description: '', createdBy: 'x' });
    const follower = await TokenRegistry.open(backend, log);
    expect('principal' in follower.authenticate(bearer)).toBe(true);
    await leader.revoke(record.id, 'token abc');
    expect(follower.authenticate(bearer)).toEqual({ refusal: expect.stringMatching(new RegExp(`^token ${record.id} was revoked at `)) });
    await backend.put(record); // the pre-revocation copy, delivered late
    expect('refusal' in follower.authenticate(bearer)).toBe(true);
    expect(follower.list().map((t) => t.revokedAtMs !== undefined)).toEqual([true]);
  });

  it('revokes an unknown id with NOT_FOUND', async () => {
    const tokens = await TokenRegistry.open(sharedBackend().backend, log);
    await expect(tokens.revoke('0123456789abcdef', 'x')).rejects.toThrow(/token "0123456789abcdef" not found/);
  });
});
