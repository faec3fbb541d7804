import { describe, expect, it } from 'vitest';
import { loadAgentConfig } from '@virtfleet/agent';
import { loadCoordinatorConfig } from '@virtfleet/coordinator';
import { REPO_ROOT } from '../support/processes.js';

describe('the example configs in deploy/config', () => {
  it('are valid, and fence agents before the coordinator calls their host down', () => {
    const agent = loadAgentConfig(`${REPO_ROOT}deploy/config/agent.yaml`);
    const coordinator = loadCoordinatorConfig(`${REPO_ROOT}deploy/config/coordinator.yaml`);
    expect(agent.fencing.timeoutMs).toBeLessThan(coordinator.hosts.ttlMs);
    expect(agent.fencing.bucket).toBe(coordinator.hosts.leaseBucket);
  });
});
