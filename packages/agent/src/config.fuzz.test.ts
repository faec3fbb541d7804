import { HOST_ID } from '@virtfleet/shared';
import { describeConfigFuzz } from '../../shared/src/fuzz.test-support.js';
import { loadAgentConfig } from './config.js';

/*
 * Fuzzing the agent's config loader (issue 12, "Hardening the inputs"):
 * the deploy example, changed one place at a time, written out as YAML or
 * JSON (or damaged as text) and read back with loadAgentConfig. It
 * returns a config or throws InvalidArgumentError naming the file and the
 * field, and a config it returns loads again to itself. The tests
 * themselves are in packages/shared/src/fuzz.test-support.ts.
 */

const ABSOLUTE_PATH = { test: (s: string) => /^\/[A-Za-z0-9._+/-]*$/.test(s) && !s.split('/').includes('..') };

describeConfigFuzz({
  name: 'loadAgentConfig',
  load: loadAgentConfig,
  deployFile: 'agent.yaml',
  tempPrefix: 'virtfleet-agent-config-fuzz-',
  addKeys: ['hostId', 'grpc', 'tls', 'insecure', 'simulate', 'fencer', 'migration', '__proto__', 'constructor', 'ttlms', 'ttlMs ', 'ttl\u041cs', ''],
  deepTextKey: 'labels',
  extraTextRows: ['telemetry: &a {intervalMs: *a}'],
  // Paths the agent writes under, good and bad.
  extraNameCandidates: ['/var/lib/virtfleet/images', '/var/lib/../../etc', '/var/lib/virtfleet/..', '/a/./b', '//x', '/', 'relative/dir', '../x', '/tmp/a\0b', '/tmp/a b', '/tmp/\u0430', '/tmp/$(id)', '/tmp/`id`', '/tmp/a;b', '/tmp/a|b', '/tmp/<x>&'],
  // Names the agent puts into NATS subjects and keys, paths it writes under, each with its documented rule.
  named: [
    { path: ['hostId'], rule: HOST_ID },
    { path: ['fencing', 'bucket'], rule: /^[A-Za-z0-9_-]+$/ },
    { path: ['images', 'bucket'], rule: /^[A-Za-z0-9_-]{1,64}$/ },
    { path: ['images', 'cacheDir'], rule: ABSOLUTE_PATH },
    { path: ['drivers', 'libvirt', 'vmDir'], rule: ABSOLUTE_PATH },
    { path: ['features', 0], rule: /^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/ },
  ],
  deepOverride: ['labels'],
});
