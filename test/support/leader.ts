import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { LEADER_KEY, type LeaseRecord } from '../../packages/coordinator/src/ha/leader-lease.js';

/**
 * The coordinators' leader lease as stored in their state bucket: who holds
 * it (`coordinatorId`) and in which term. Read from NATS directly, not through
 * a coordinator, so it answers the same whichever coordinator is up.
 */
export async function readLeaderLease(natsUrl: string, bucket: string): Promise<LeaseRecord | undefined> {
  const nc = await connect({ servers: [natsUrl] });
  try {
    const entry = await (await new Kvm(nc).open(bucket)).get(LEADER_KEY);
    return entry && entry.operation === 'PUT' ? entry.json<LeaseRecord>() : undefined;
  } finally {
    await nc.close();
  }
}
