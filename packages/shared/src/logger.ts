import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/** JSON logs on stderr, so stdout stays free for command output. Level from VIRTFLEET_LOG_LEVEL. */
export function createLogger(name: string, level = process.env.VIRTFLEET_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level }, pino.destination(2));
}
