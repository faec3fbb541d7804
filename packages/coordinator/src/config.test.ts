import { describe, expect, it } from 'vitest';
import { loadCoordinatorConfig } from './config.js';

const load = (id: string) => loadCoordinatorConfig(undefined, { id, grpc: { insecure: true } });

describe('coordinator config: id', () => {
  // The id ends the fencing probe's KV key; an id NATS refuses there would keep fence-first VMs of a dead host from ever moving.
  it.each(['c1', 'coordinator-1', 'a.b', 'node_7.dc-2', 'x'.repeat(63)])('accepts %j', (id) => {
    expect(load(id).id).toBe(id);
  });
  it.each(['.', '..', 'a.', '.a', 'a..b', 'a b', 'a/b', 'a*', '', 'x'.repeat(64)])('refuses %j, naming id', (id) => {
    expect(() => load(id)).toThrow(/(^|\s)id: must be 1-63 letters, digits, "_" or "-", in parts joined by single dots/);
  });
});
