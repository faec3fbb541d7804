import { Option, type Command } from 'commander';
import { InvalidArgumentError, type pb } from '@virtfleet/shared';
import { print, table } from '../output.js';
import { parseDuration } from './host-maintenance.js';
import { withApi } from './operator.js';
import { requestIdOf } from './paging.js';

const ROLES = ['viewer', 'operator', 'admin'];
/** Ten years, as the coordinator allows. */
const MAX_TTL_SECONDS = 3650 * 86_400;

function tokenRows(tokens: pb.Token__Output[]): string {
  const state = (t: pb.Token__Output) => (t.revoked_at ? 'revoked' : t.expires_at && Date.parse(t.expires_at) <= Date.now() ? 'expired' : 'active');
  return table(
    ['id', 'role', 'tenant', 'state', 'expires', 'created', 'created by', 'description'],
    tokens.map((t) => [t.id, t.role, t.tenant || '*', state(t), t.expires_at || 'never', t.created_at, t.created_by, t.description]),
  );
}

export function registerTokenCommands(program: Command): void {
  const token = program.command('token').description('bearer tokens for operators: a role (viewer, operator, admin), optionally one tenant (admin only)');
  token
    .command('create')
    .description('make a token; its secret is printed this once')
    .addOption(new Option('--role <role>', 'viewer reads; operator runs workloads; admin runs the cluster').choices(ROLES).makeOptionMandatory())
    .option('--tenant <tenant>', 'see and act on this tenant\'s workloads only (viewer and operator)')
    .option('--ttl <duration>', 'expire after this long, e.g. 12h, 30d (default: never)')
    .option('--description <text>', 'what it is for', '')
    .option('--request-id <id>', 'idempotency key')
    .action(async (opts: { role: string; tenant?: string; ttl?: string; description: string; requestId?: string }, cmd: Command) => {
      if (opts.tenant !== undefined && opts.role === 'admin') throw new InvalidArgumentError('--tenant', 'an admin token acts across tenants; give a viewer or operator role');
      const ttlSeconds = opts.ttl === undefined ? 0 : parseDuration(opts.ttl, '--ttl', MAX_TTL_SECONDS);
      await withApi(cmd, async (api, format) => {
        const created = await api.createToken({ request_id: requestIdOf(opts), role: opts.role, tenant: opts.tenant ?? '', ttl_seconds: String(ttlSeconds), description: opts.description });
        print(format, created, () => `${created.bearer}\n(token ${created.token?.id}, ${opts.role}${opts.tenant ? ` of tenant ${opts.tenant}` : ''}; the secret is not shown again: use it as VIRTFLEET_TOKEN, --token, or token: in the CLI config)`);
      });
    });
  token
    .command('ls')
    .description('every token, revoked and expired ones too; never their secrets')
    .action(async (_opts: unknown, cmd: Command) => {
      await withApi(cmd, async (api, format) => {
        const { tokens } = await api.listTokens();
        print(format, tokens, () => tokenRows(tokens));
      });
    });
  token
    .command('revoke')
    .description('stop a token working, on every coordinator within a second')
    .argument('<id>', 'the token id (token ls)')
    .option('--request-id <id>', 'idempotency key')
    .action(async (id: string, opts: { requestId?: string }, cmd: Command) => {
      await withApi(cmd, async (api, format) => {
        const revoked = await api.revokeToken({ id, request_id: requestIdOf(opts) });
        print(format, revoked, () => `revoked token ${revoked.id} (${revoked.role}${revoked.tenant ? ` of tenant ${revoked.tenant}` : ''})`);
      });
    });
}
