import { Kvm } from '@nats-io/kv';
import type { NatsUsers } from './nats-server.js';
import { LEADER_KEY, type LeaseRecord } from '../../packages/coordinator/src/ha/leader-lease.js';

/**
 * The coordinators' leader lease as stored in their state bucket: who holds
 * it (`coordinatorId`) and in which term. Read from NATS directly, not through
 * a coordinator, so it answers the same whichever coordinator is up.
 */
export async function readLeaderLease(nats: NatsUsers, bucket: string): Promise<LeaseRecord | undefined> {
  const nc = await nats.connect();
  try {
    const entry = await (await new Kvm(nc).open(bucket)).get(LEADER_KEY);
    return entry && entry.operation === 'PUT' ? entry.json<LeaseRecord>() : undefined;
  } finally {
    await nc.close();
  }
}
