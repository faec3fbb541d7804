import { statSync } from 'node:fs';
import { fromSeed } from '@nats-io/nkeys';
import { connect, nkeyAuthenticator, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';

export { headers } from '@nats-io/transport-node';
import type { NatsConfig } from './config.js';
import { readTextFile } from './config.js';
import { InvalidArgumentError } from './errors.js';
import type { Logger } from './logger.js';

export type { NatsConnection, Subscription, Msg } from '@nats-io/transport-node';

/** How a process connects: its config's `nats` section and, for agents, the inbox prefix its NATS user may subscribe to. */
export interface NatsConnectOptions {
  /** `natsInboxPrefix(role, name)`; replies to this connection arrive under it. @default '_INBOX' */
  inboxPrefix?: string;
}

/**
 * Connects to NATS and keeps reconnecting for as long as the process lives:
 * an outage pauses telemetry and events, it does not end the daemon.
 * @throws InvalidArgumentError naming `nats.nkeySeedFile` when the seed is unreadable or not a user seed.
 */
export async function connectNats(config: NatsConfig, name: string, log: Logger, options: NatsConnectOptions = {}): Promise<NatsConnection> {
  // noAsyncTraces: without it every request builds an Error up front for its stack, a tenth of a busy coordinator's CPU.
  const nc = await connect({ ...natsClientOptions(config, log), name, inboxPrefix: options.inboxPrefix, maxReconnectAttempts: -1, waitOnFirstConnect: true, reconnectTimeWait: 500, pingInterval: 5_000, noAsyncTraces: true });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error') log.info({ nats: s.type, err: s.type === 'error' ? s.error.message : undefined }, `nats ${s.type}`);
    }
  })();
  return nc;
}

/** Servers, credentials and TLS of a `nats` config section, as connect options. */
export function natsClientOptions(config: NatsConfig, log?: Logger): ConnectionOptions {
  const options: ConnectionOptions = { servers: config.servers };
  if (config.nkeySeedFile) options.authenticator = nkeyAuthenticator(readNkeySeed(config.nkeySeedFile, log));
  else log?.warn({ servers: config.servers }, 'nats.anonymous: connecting to NATS without credentials');
  if (config.tls) options.tls = { caFile: config.tls.ca, certFile: config.tls.cert, keyFile: config.tls.key };
  return options;
}

/** Reads and checks a user nkey seed file (`SU…`). */
export function readNkeySeed(path: string, log?: Logger): Uint8Array {
  const field = 'nats.nkeySeedFile';
  let text: string;
  try {
    text = readTextFile(path).trim();
  } catch (err) {
    throw new InvalidArgumentError(field, err instanceof Error ? err.message : String(err), { cause: err });
  }
  const seed = new TextEncoder().encode(text);
  try {
    if (!text.startsWith('SU')) throw new Error('not a user seed');
    // A copy: clear() zeroes the key pair's seed in place.
    fromSeed(seed.slice()).clear();
  } catch (err) {
    throw new InvalidArgumentError(field, `${path} is not a NATS user nkey seed (SU…, from \`virtfleet nats issue\`)`, { cause: err });
  }
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) log?.warn({ path, mode: mode.toString(8) }, 'the NATS seed file is readable by others than its owner; chmod 600 it');
  return seed;
}
