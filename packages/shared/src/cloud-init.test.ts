import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { buildNoCloudSeed } from './cloud-init.js';
import { parseWorkloadSpec } from './spec.js';

const cloudInitOf = (cloud_init: Record<string, unknown>) => parseWorkloadSpec({ name: 'db', kind: 'vm', vcpus: 1, memory_mib: 64, cloud_init }).cloud_init!;
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI me@laptop';

describe('buildNoCloudSeed', () => {
  it.each([
    { name: 'fills instance-id and local-hostname', input: {}, meta: { 'instance-id': 'db-1a2b', 'local-hostname': 'db' } },
    { name: 'keeps what meta-data sets', input: { meta_data: 'instance-id: mine\nlocal-hostname: other\n' }, meta: { 'instance-id': 'mine', 'local-hostname': 'other' } },
    { name: 'the hostname shorthand wins', input: { meta_data: 'local-hostname: other\n', hostname: 'short' }, meta: { 'instance-id': 'db-1a2b', 'local-hostname': 'short' } },
  ])('$name', ({ input, meta }) => {
    expect(parse(buildNoCloudSeed(cloudInitOf(input), 'db-1a2b', 'db')['meta-data'])).toEqual(meta);
  });

  it('passes user-data through untouched without shorthands, and leaves network-config out when unset', () => {
    const seed = buildNoCloudSeed(cloudInitOf({ user_data: '#!/bin/sh\necho hi\n' }), 'i', 'n');
    expect(seed['user-data']).toBe('#!/bin/sh\necho hi\n');
    expect(seed).not.toHaveProperty('network-config');
  });

  it('merges keys into #cloud-config after its own, once each, keeping the rest', () => {
    const seed = buildNoCloudSeed(cloudInitOf({ user_data: `#cloud-config\nruncmd: [echo hi]\nssh_authorized_keys: ['${KEY}']\n`, ssh_authorized_keys: [KEY, 'ssh-rsa AAAA x'] }), 'i', 'n');
    expect(seed['user-data'].startsWith('#cloud-config\n')).toBe(true);
    expect(parse(seed['user-data'])).toEqual({ runcmd: ['echo hi'], ssh_authorized_keys: [KEY, 'ssh-rsa AAAA x'] });
  });

  it('makes #cloud-config from keys alone, and carries network-config', () => {
    const seed = buildNoCloudSeed(cloudInitOf({ ssh_authorized_keys: [KEY], network_config: 'version: 2\n' }), 'i', 'n');
    expect(parse(seed['user-data'])).toEqual({ ssh_authorized_keys: [KEY] });
    expect(seed['network-config']).toBe('version: 2\n');
  });
});
