import { Option, type Command } from 'commander';
import { defaultHostId } from '@virtfleet/agent';
import { InvalidArgumentError, NATS_ROLES, type NatsRole } from '@virtfleet/shared';
import { issueNatsUser, listNatsUsers, revokeNatsUser } from '../nats-users.js';
import { print, table, type OutputFormat } from '../output.js';

/** Where `virtfleet nats` keeps users, seeds and the rendered authorization unless --dir or VIRTFLEET_NATS_DIR says otherwise. */
export const DEFAULT_NATS_DIR = '/etc/virtfleet/nats';

const RELOAD_HINT = 'reload nats-server to apply it (nats-server --signal reload, or systemctl reload nats-server)';

export function registerNatsUserCommands(program: Command): void {
  const nats = program.command('nats').description('NATS users: one per coordinator, agent and monitoring consumer, each limited to its own subjects');
  const dirOption = (cmd: Command) => cmd.option('--dir <dir>', `the directory of users.json, the seeds and authorization.conf (default: $VIRTFLEET_NATS_DIR or ${DEFAULT_NATS_DIR})`);
  const dirOf = (opts: { dir?: string }) => opts.dir ?? process.env.VIRTFLEET_NATS_DIR ?? DEFAULT_NATS_DIR;
  const output = (cmd: Command) => cmd.optsWithGlobals<{ output: OutputFormat }>().output;
  const roleOption = () => new Option('--role <role>', 'coordinator, agent, monitor (reads events) or admin (everything)').choices(NATS_ROLES).makeOptionMandatory();

  dirOption(nats.command('issue').description('add a user (or keep an existing one) and write its nkey seed; renders authorization.conf'))
    .addOption(roleOption())
    .option('--name <name>', "coordinator id, agent host id or monitor name (default for coordinator and agent: this machine's short hostname)")
    .option('--hosts <ids>', 'an agent that speaks for several hosts (a simulated fleet): their ids, comma-separated')
    .option('--out <file>', 'write the seed here (default: DIR/ROLE-NAME.nk)')
    .option('--rotate', 'a new seed for an existing user')
    .action((opts: { dir?: string; role: NatsRole; name?: string; hosts?: string; out?: string; rotate?: boolean }, cmd: Command) => {
      const name = opts.name ?? (opts.role === 'coordinator' || opts.role === 'agent' ? defaultHostId() : undefined);
      if (!name) throw new InvalidArgumentError('--name', `is required for a ${opts.role} user`);
      const hostIds = opts.hosts?.split(',').map((h) => h.trim());
      const issued = issueNatsUser(dirOf(opts), { role: opts.role, name, ...(hostIds ? { hostIds } : {}), ...(opts.out ? { seedFile: opts.out } : {}), rotate: opts.rotate ?? false });
      const json = { role: issued.role, name: issued.name, nkey: issued.nkey, seed_file: issued.seedFile, authorization: issued.authorization, created: issued.created };
      print(output(cmd), json, () => `${issued.created ? 'issued' : 'kept'} NATS ${issued.role} user ${issued.name} (${issued.nkey}): seed ${issued.seedFile}; nats.nkeySeedFile in its config points there. ${issued.authorization} rendered; ${RELOAD_HINT}`);
    });

  dirOption(nats.command('revoke').description('remove a user and its seed; renders authorization.conf'))
    .addOption(roleOption())
    .requiredOption('--name <name>', 'the user')
    .action((opts: { dir?: string; role: NatsRole; name: string }, cmd: Command) => {
      const result = revokeNatsUser(dirOf(opts), opts.role, opts.name);
      print(output(cmd), result, () => `revoked NATS ${opts.role} user ${opts.name}: ${result.authorization} rendered; ${RELOAD_HINT}`);
    });

  dirOption(nats.command('ls').description('the users (public keys only)')).action((opts: { dir?: string }, cmd: Command) => {
    const users = listNatsUsers(dirOf(opts));
    print(output(cmd), users, () => table(['role', 'name', 'nkey', 'hosts', 'created'], users.map((u) => [u.role, u.name, u.nkey, (u.host_ids ?? (u.role === 'agent' ? [u.name] : [])).join(',') || '-', u.created_at])));
  });
}
