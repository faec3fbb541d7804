import { connect, type NatsConnection } from '@nats-io/transport-node';

export { headers } from '@nats-io/transport-node';
import type { Logger } from './logger.js';

export type { NatsConnection, Subscription, Msg } from '@nats-io/transport-node';

/**
 * Connects to NATS and keeps reconnecting for as long as the process lives:
 * an outage pauses telemetry and events, it does not end the daemon.
 */
export async function connectNats(servers: string[], name: string, log: Logger): Promise<NatsConnection> {
  // noAsyncTraces: without it every request builds an Error up front for its stack, a tenth of a busy coordinator's CPU.
  const nc = await connect({ servers, name, maxReconnectAttempts: -1, waitOnFirstConnect: true, reconnectTimeWait: 500, pingInterval: 5_000, noAsyncTraces: true });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error') log.info({ nats: s.type }, `nats ${s.type}`);
    }
  })();
  return nc;
}
