import { describeConfigFuzz } from '../../shared/src/fuzz.test-support.js';
import { COORDINATOR_ID, loadCoordinatorConfig } from './config.js';

/*
 * Fuzzing the coordinator's config loader (issue 12, "Hardening the inputs"):
 * the deploy example, changed one place at a time, written out as YAML or
 * JSON (or damaged as text) and read back with loadCoordinatorConfig. It
 * returns a config or throws InvalidArgumentError naming the file and the
 * field, and a config it returns loads again to itself. The tests
 * themselves are in packages/shared/src/fuzz.test-support.ts.
 */

describeConfigFuzz({
  name: 'loadCoordinatorConfig',
  load: loadCoordinatorConfig,
  deployFile: 'coordinator.yaml',
  tempPrefix: 'virtfleet-config-fuzz-',
  addKeys: ['id', 'grpc', 'tls', 'insecure', 'weights', '__proto__', 'constructor', 'ttlms', 'ttlMs ', 'ttl\u041cs', ''],
  deepTextKey: 'hosts',
  extraTextRows: ['hosts: &a {ttlMs: *a}'],
  // Names the coordinator puts into NATS (bucket and stream names) and its own id, each with its documented rule.
  named: [
    { path: ['id'], rule: COORDINATOR_ID },
    { path: ['hosts', 'leaseBucket'], rule: /^[A-Za-z0-9_-]{1,64}$/ },
    { path: ['state', 'bucket'], rule: /^[A-Za-z0-9_-]{1,64}$/ },
    { path: ['images', 'bucket'], rule: /^[A-Za-z0-9_-]{1,64}$/ },
    { path: ['events', 'stream'], rule: /^[A-Za-z0-9_-]{1,64}$/ },
  ],
  deepOverride: ['scheduler', 'weights'],
});
