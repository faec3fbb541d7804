import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { createNatsUserKey, HOST_ID, InvalidArgumentError, NATS_ROLES, parseOrThrow, renderNatsAuthorization, type NatsAuthAssets, type NatsRole } from '@virtfleet/shared';

/**
 * A cluster's NATS users, kept in one directory (default /etc/virtfleet/nats):
 * - `users.json`: role, name, public nkey and (agents) host ids of each user;
 * - `<role>-<name>.nk`: each user's seed, the secret its process connects with (mode 0600);
 * - `authorization.conf`: the nats-server `authorization` block for all of
 *   them, rendered again on every change; nats-server includes it and takes
 *   a change on reload (`nats-server --signal reload` or SIGHUP).
 */
export const NATS_USERS_FILE = 'users.json';
export const NATS_AUTHORIZATION_FILE = 'authorization.conf';

const userSchema = z
  .object({
    role: z.enum(NATS_ROLES),
    name: z.string().regex(HOST_ID),
    nkey: z.string().startsWith('U'),
    host_ids: z.array(z.string().regex(HOST_ID)).optional(),
    seed_file: z.string().optional(),
    created_at: z.string(),
  })
  .strict();
const directorySchema = z
  .object({
    assets: z.object({ leaseBucket: z.string().optional(), imageBucket: z.string().optional(), eventStream: z.string().optional() }).strict().default({}),
    users: z.array(userSchema).default([]),
  })
  .strict();

export type NatsUser = z.output<typeof userSchema>;

export interface IssueNatsUserOptions {
  role: NatsRole;
  name: string;
  /** An agent user's hosts, when one process speaks for several (a simulated fleet). @default [name] */
  hostIds?: string[];
  /** Where the seed goes. @default DIR/ROLE-NAME.nk */
  seedFile?: string;
  /** A new seed even when the user exists (the old one stops working at the server's next reload). */
  rotate?: boolean;
  /** Bucket and stream names, when the cluster does not use the defaults; kept for every later render. */
  assets?: NatsAuthAssets;
}

export interface IssuedNatsUser {
  role: NatsRole;
  name: string;
  nkey: string;
  seedFile: string;
  authorization: string;
  /** False when the user existed and kept its seed. */
  created: boolean;
}

/** The seed file of a user in `dir`. */
export function natsSeedFile(dir: string, role: NatsRole, name: string): string {
  return resolve(dir, `${role}-${name}.nk`);
}

/**
 * Adds a user (or updates its host ids), writes its seed and renders
 * `authorization.conf`. An existing user keeps its seed unless `rotate`, so
 * running the same issue twice changes nothing.
 */
export function issueNatsUser(dir: string, options: IssueNatsUserOptions): IssuedNatsUser {
  const { role, name } = options;
  if (!HOST_ID.test(name)) throw new InvalidArgumentError('--name', `${JSON.stringify(name)} must be 1-63 letters, digits, "-" or "_", starting and ending alphanumeric`);
  if (options.hostIds && role !== 'agent') throw new InvalidArgumentError('--hosts', 'only an agent user speaks for hosts');
  options.hostIds?.forEach((id, i) => {
    if (!HOST_ID.test(id)) throw new InvalidArgumentError(`--hosts[${i}]`, `${JSON.stringify(id)} is not a host id`);
  });
  const state = readDirectory(dir);
  if (options.assets) state.assets = { ...state.assets, ...options.assets };
  const existing = state.users.find((u) => u.role === role && u.name === name);
  const seedFile = resolve(options.seedFile ?? existing?.seed_file ?? natsSeedFile(dir, role, name));
  const created = !existing || options.rotate === true || !existsSync(seedFile);
  const key = created ? createNatsUserKey() : undefined;
  const hostIds = role === 'agent' ? (options.hostIds ?? existing?.host_ids) : undefined;
  const user: NatsUser = {
    role,
    name,
    nkey: key?.publicKey ?? existing!.nkey,
    ...(hostIds && !(hostIds.length === 1 && hostIds[0] === name) ? { host_ids: hostIds } : {}),
    ...(seedFile !== natsSeedFile(dir, role, name) ? { seed_file: seedFile } : {}),
    created_at: key ? new Date().toISOString() : existing!.created_at,
  };
  state.users = [...state.users.filter((u) => u !== existing), user];
  const text = renderAuthorization(state);
  // The seed before the config that admits it: a daemon never finds itself listed without a secret.
  if (key) writeReplacing(seedFile, `${key.seed}\n`, 0o600);
  return { role, name, nkey: user.nkey, seedFile, authorization: writeDirectory(dir, state, text), created };
}

/** Removes a user and its seed; nats-server refuses it after its next reload. */
export function revokeNatsUser(dir: string, role: NatsRole, name: string): { authorization: string } {
  const state = readDirectory(dir);
  const user = state.users.find((u) => u.role === role && u.name === name);
  state.users = state.users.filter((u) => u !== user);
  if (!user) throw new InvalidArgumentError('--name', `no ${role} user ${name} in ${resolve(dir, NATS_USERS_FILE)}`);
  const authorization = writeDirectory(dir, state, renderAuthorization(state));
  rmSync(user.seed_file ?? natsSeedFile(dir, role, name), { force: true });
  return { authorization };
}

export function listNatsUsers(dir: string): NatsUser[] {
  return readDirectory(dir).users;
}

function readDirectory(dir: string): z.output<typeof directorySchema> {
  const file = resolve(dir, NATS_USERS_FILE);
  if (!existsSync(file)) return { assets: {}, users: [] };
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new InvalidArgumentError(file, `is not JSON: ${(err as Error).message}`, { cause: err });
  }
  return parseOrThrow(directorySchema, parsed, `${file}:`);
}

/** Validates everything (names, nkeys, a host claimed by two agents) and renders; nothing is written yet. */
function renderAuthorization(state: z.output<typeof directorySchema>): string {
  const byRole = (role: NatsRole) => state.users.filter((u) => u.role === role);
  return renderNatsAuthorization({
    ...state.assets,
    coordinators: byRole('coordinator'),
    agents: byRole('agent').map((u) => ({ name: u.name, nkey: u.nkey, ...(u.host_ids ? { hostIds: u.host_ids } : {}) })),
    monitors: byRole('monitor'),
    admins: byRole('admin'),
  });
}

function writeDirectory(dir: string, state: z.output<typeof directorySchema>, text: string): string {
  const authorization = resolve(dir, NATS_AUTHORIZATION_FILE);
  writeReplacing(resolve(dir, NATS_USERS_FILE), `${JSON.stringify(state, null, 2)}\n`, 0o600);
  writeReplacing(authorization, text, 0o644);
  return authorization;
}

/** Writes beside `file` and renames over it, so readers (nats-server on reload) never see half a file. */
function writeReplacing(file: string, text: string, mode: number): void {
  mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, text, { mode });
  chmodSync(temp, mode);
  renameSync(temp, file);
}
