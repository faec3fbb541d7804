import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { issueNatsUser, listNatsUsers, NATS_AUTHORIZATION_FILE, natsSeedFile, revokeNatsUser } from './nats-users.js';

const dirs: string[] = [];
const fresh = () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtfleet-nats-users-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('NATS user directory', () => {
  it('issues a user once: the same issue again keeps its seed and changes nothing; --rotate makes a new one', () => {
    const dir = fresh();
    const first = issueNatsUser(dir, { role: 'agent', name: 'h1' });
    const seed = readFileSync(first.seedFile, 'utf8');
    expect(seed).toMatch(/^SU[A-Z2-7]+\n$/);
    expect(statSync(first.seedFile).mode & 0o777).toBe(0o600);
    const config = readFileSync(join(dir, NATS_AUTHORIZATION_FILE), 'utf8');
    expect(config).toContain(first.nkey);
    expect(config).toContain('"virtfleet.telemetry.h1"');

    const again = issueNatsUser(dir, { role: 'agent', name: 'h1' });
    expect([again.created, again.nkey, readFileSync(first.seedFile, 'utf8')]).toEqual([false, first.nkey, seed]);
    expect(readFileSync(join(dir, NATS_AUTHORIZATION_FILE), 'utf8')).toBe(config);

    const rotated = issueNatsUser(dir, { role: 'agent', name: 'h1', rotate: true });
    expect(rotated.nkey).not.toBe(first.nkey);
    expect(readFileSync(join(dir, NATS_AUTHORIZATION_FILE), 'utf8')).not.toContain(first.nkey);
  });

  it('writes the seed where --out says and removes it from there on revoke', () => {
    const dir = fresh();
    const out = join(dir, 'elsewhere', 'agent.nk');
    const issued = issueNatsUser(dir, { role: 'agent', name: 'h1', seedFile: out });
    expect(issued.seedFile).toBe(out);
    expect(issueNatsUser(dir, { role: 'agent', name: 'h1' }).seedFile, 'found again without --out').toBe(out);
    revokeNatsUser(dir, 'agent', 'h1');
    expect([existsSync(out), listNatsUsers(dir)]).toEqual([false, []]);
    expect(readFileSync(join(dir, NATS_AUTHORIZATION_FILE), 'utf8')).not.toContain(issued.nkey);
  });

  it.each([
    { name: 'a name that is no host id', issue: { role: 'agent' as const, name: '../etc' }, field: '--name' },
    { name: 'a name with a subject wildcard', issue: { role: 'agent' as const, name: 'h1.>' }, field: '--name' },
    { name: 'a look-alike letter', issue: { role: 'monitor' as const, name: 'grаfana' }, field: '--name' },
    { name: 'hosts for a monitor', issue: { role: 'monitor' as const, name: 'm1', hostIds: ['h1'] }, field: '--hosts' },
    { name: 'a host id with a wildcard', issue: { role: 'agent' as const, name: 'fleet', hostIds: ['h-1', '*'] }, field: '--hosts[1]' },
    { name: "another agent's host", issue: { role: 'agent' as const, name: 'fleet', hostIds: ['h1'] }, field: 'agents[1].hostIds[0]' },
  ])('refuses $name, naming $field, and writes nothing', ({ issue, field }) => {
    const dir = fresh();
    issueNatsUser(dir, { role: 'agent', name: 'h1' });
    const before = { users: readFileSync(join(dir, 'users.json'), 'utf8'), config: readFileSync(join(dir, NATS_AUTHORIZATION_FILE), 'utf8') };
    expect(() => issueNatsUser(dir, issue)).toThrow(expect.objectContaining({ field }) as Error);
    expect({ users: readFileSync(join(dir, 'users.json'), 'utf8'), config: readFileSync(join(dir, NATS_AUTHORIZATION_FILE), 'utf8') }).toEqual(before);
    expect(existsSync(natsSeedFile(dir, issue.role, issue.name)), 'no seed for a user that was refused').toBe(false);
  });

  it('refuses to revoke a user it does not have', () => {
    expect(() => revokeNatsUser(fresh(), 'agent', 'h9')).toThrow(/no agent user h9/);
  });
});
