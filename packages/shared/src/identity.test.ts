import { describe, expect, it } from 'vitest';
import { identitiesInAltNames, identityUri } from './identity.js';

describe('identitiesInAltNames', () => {
  it.each([
    { altNames: undefined, want: [] },
    { altNames: 'DNS:localhost, IP Address:127.0.0.1', want: [] },
    { altNames: 'URI:virtfleet://agent/h-1, DNS:localhost', want: [{ role: 'agent', name: 'h-1' }] },
    { altNames: 'DNS:x, URI:virtfleet://operator/alice', want: [{ role: 'operator', name: 'alice' }] },
    { altNames: 'URI:virtfleet://coordinator/c1, URI:virtfleet://agent/h1', want: [{ role: 'coordinator', name: 'c1' }, { role: 'agent', name: 'h1' }] },
    { altNames: 'URI:virtfleet://root/h1', want: [], why: 'an unknown role' },
    { altNames: 'URI:virtfleet://agent/h1/extra', want: [], why: 'more path' },
    { altNames: 'URI:virtfleet://agent/../h1', want: [], why: 'a name outside the rules' },
    { altNames: 'URI:virtfleet://agent/', want: [], why: 'no name' },
    { altNames: 'URI:spiffe://agent/h1', want: [], why: 'another scheme' },
    { altNames: 'URI:virtfleet://agent/hа1', want: [], why: 'a Cyrillic look-alike' },
  ])('$altNames gives $want.length identities', ({ altNames, want }) => {
    expect(identitiesInAltNames(altNames)).toEqual(want);
  });

  it('reads back what identityUri writes', () => {
    expect(identitiesInAltNames(`URI:${identityUri({ role: 'agent', name: 'node-7' })}`)).toEqual([{ role: 'agent', name: 'node-7' }]);
  });
});
