import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { hostPortSchema, InvalidArgumentError, loadConfig, tlsFilesSchema, type MutualTlsFiles } from '@virtfleet/shared';
import { z } from 'zod';

/** The CLI's own config file: where the coordinator is and how to prove who is calling. */
export const cliConfigSchema = z
  .object({
    /** host:port of the coordinator API, or several separated by commas. */
    coordinator: z.string().min(1).optional(),
    tls: tlsFilesSchema.optional(),
    /** Plaintext, for a coordinator run with grpc.insecure: true. */
    insecure: z.boolean().optional(),
    /** A bearer token from `virtfleet token create`. */
    token: z.string().min(1).optional(),
  })
  .strict();
export type CliConfig = z.output<typeof cliConfigSchema>;

/** `$VIRTFLEET_CLI_CONFIG`, else `~/.config/virtfleet/cli.yaml` (XDG_CONFIG_HOME respected). */
export function cliConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.VIRTFLEET_CLI_CONFIG ?? join(env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'virtfleet', 'cli.yaml');
}

/** The CLI config file's contents; none when the default file does not exist (a named one must). */
export function readCliConfig(env: NodeJS.ProcessEnv = process.env): CliConfig {
  const path = cliConfigPath(env);
  if (!env.VIRTFLEET_CLI_CONFIG && !existsSync(path)) return {};
  return loadConfig(cliConfigSchema, path);
}

/** What flags and environment said, each undefined when left out. */
export interface ConnectionFlags {
  /** undefined when --coordinator fell back to its default. */
  coordinator?: string | undefined;
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  insecure?: boolean | undefined;
  token?: string | undefined;
}

export const DEFAULT_COORDINATOR = '127.0.0.1:7100';

/**
 * How to reach the coordinator: flags (and their environment variables)
 * first, then the config file. Mutual TLS unless insecure is asked for by
 * name; with neither, an error that says how to get certificates.
 * @throws InvalidArgumentError naming the flag
 */
export function resolveConnection(flags: ConnectionFlags, config: CliConfig): { address: string; tls?: MutualTlsFiles; token?: string } {
  const address = flags.coordinator ?? config.coordinator ?? DEFAULT_COORDINATOR;
  // An empty --token (or VIRTFLEET_TOKEN) means none, even when the config file has one.
  const token = flags.token !== undefined ? flags.token || undefined : config.token;
  if (token !== undefined && !/^\S+$/.test(token)) throw new InvalidArgumentError('--token', 'must be one word: the vft_... string `virtfleet token create` printed');
  const withToken = <T extends object>(c: T) => (token === undefined ? c : { ...c, token });
  for (const a of address.split(',').map((s) => s.trim())) {
    if (!hostPortSchema.safeParse(a).success) throw new InvalidArgumentError('--coordinator', `${JSON.stringify(a)} is not host:port`);
  }
  const given = { ca: flags.ca, cert: flags.cert, key: flags.key };
  const anyGiven = Object.values(given).some((v) => v !== undefined);
  if (flags.insecure) {
    if (anyGiven) throw new InvalidArgumentError('--insecure', 'cannot go with --ca, --cert or --key');
    return withToken({ address });
  }
  if (anyGiven) {
    for (const [name, value] of Object.entries(given)) if (value === undefined) throw new InvalidArgumentError(`--${name}`, 'is required with the other TLS flags (--ca, --cert and --key go together)');
    return withToken({ address, tls: given as MutualTlsFiles });
  }
  if (config.tls) return withToken({ address, tls: config.tls });
  if (config.insecure) return withToken({ address });
  throw new InvalidArgumentError(
    '--cert',
    `the coordinator API takes mutual TLS: give --ca, --cert and --key (or VIRTFLEET_CA, VIRTFLEET_CERT and VIRTFLEET_KEY, or tls in ${cliConfigPath()}, which \`npm run cluster\` writes; certificates come from \`virtfleet pki issue --role operator\`), or --insecure for a coordinator run with grpc.insecure: true`,
  );
}
