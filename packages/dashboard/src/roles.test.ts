import { describe, expect, it } from 'vitest';
import { allowed, type Need } from './roles.js';
import type { Principal, Role } from './types.js';

const who = (role: Role, tenant = ''): Principal => ({ kind: 'token', id: 't', role, tenant });

describe('allowed: which buttons a caller sees', () => {
  const operate: Need = { role: 'operator' };
  const backup: Need = { role: 'operator', clusterWide: true };
  const administer: Need = { role: 'admin', clusterWide: true };
  it.each([
    { name: 'nobody signed in', principal: undefined, need: operate, want: false },
    { name: 'a viewer: no lifecycle', principal: who('viewer'), need: operate, want: false },
    { name: 'a viewer: no host actions', principal: who('viewer'), need: administer, want: false },
    { name: 'an operator: lifecycle', principal: who('operator'), need: operate, want: true },
    { name: 'an operator: backups', principal: who('operator'), need: backup, want: true },
    { name: 'an operator: no host actions', principal: who('operator'), need: administer, want: false },
    { name: 'an admin: everything', principal: who('admin'), need: administer, want: true },
    { name: 'a tenant’s operator: lifecycle of its workloads', principal: who('operator', 'blue'), need: operate, want: true },
    { name: 'a tenant’s operator: no backups (cluster-wide)', principal: who('operator', 'blue'), need: backup, want: false },
    { name: 'a tenant’s admin: no host actions (cluster-wide)', principal: who('admin', 'blue'), need: administer, want: false },
  ])('$name → $want', ({ principal, need, want }) => {
    expect(allowed(principal, need)).toBe(want);
  });
});
