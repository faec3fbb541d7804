import { Command, CommanderError, Option } from 'commander';
import { registerBackupCommands } from './commands/backups.js';
import { registerDaemonCommands } from './commands/daemons.js';
import { registerImageCommands } from './commands/images.js';
import { registerOperatorCommands } from './commands/operator.js';
import { registerNatsUserCommands } from './commands/nats-users.js';
import { registerPkiCommands } from './commands/pki.js';
import { registerTokenCommands } from './commands/tokens.js';
import { registerSchedulingCommands } from './commands/scheduling.js';
import { registerRebalanceCommand } from './commands/rebalance.js';
import { registerRebalanceApply } from './commands/rebalance-apply.js';
import { registerSimulateCommand } from './commands/simulate.js';
import { registerCompletionCommand } from './commands/completion.js';
import { cliConfigPath, DEFAULT_COORDINATOR } from './connection.js';
import { EXIT } from './exit-codes.js';
import { OUTPUT_FORMATS } from './output.js';

/** The `virtfleet` command with every verb; parsing errors throw CommanderError rather than exit. */
export function buildProgram(): Command {
  const program = new Command('virtfleet')
    .description(`virtfleet: VMs and containers across a fleet of hosts\n\nConnection settings not given as flags come from ${cliConfigPath()} (or $VIRTFLEET_CLI_CONFIG): coordinator, tls: { ca, cert, key }, token, insecure.`)
    .version('0.1.0')
    .addOption(new Option('--coordinator <host:port>', `coordinator API address; several, comma-separated, for a highly available set (default: the CLI config's, else ${DEFAULT_COORDINATOR})`).env('VIRTFLEET_COORDINATOR'))
    .addOption(new Option('--ca <file>', 'the cluster CA certificate (PEM)').env('VIRTFLEET_CA'))
    .addOption(new Option('--cert <file>', 'your operator certificate (PEM), from `virtfleet pki issue --role operator`').env('VIRTFLEET_CERT'))
    .addOption(new Option('--key <file>', 'the key of --cert (PEM)').env('VIRTFLEET_KEY'))
    .addOption(new Option('--token <token>', 'a bearer token from `virtfleet token create`').env('VIRTFLEET_TOKEN'))
    .addOption(new Option('--insecure', 'plaintext, for a coordinator run with grpc.insecure: true (or VIRTFLEET_INSECURE=1)'))
    .addOption(new Option('-o, --output <format>', 'output format: table, wide (more columns), json or yaml').choices([...OUTPUT_FORMATS]).default('table'))
    .addOption(
      new Option('--timeout <seconds>', 'deadline for each API call')
        .default(60)
        .argParser((v) => {
          const n = Number(v);
          if (!Number.isFinite(n) || n <= 0) throw new CommanderError(EXIT.invalidInput, 'virtfleet.invalidTimeout', '--timeout must be a positive number of seconds');
          return n;
        }),
    )
    .showHelpAfterError()
    .exitOverride();

  registerDaemonCommands(program);
  registerOperatorCommands(program);
  registerSchedulingCommands(program);
  registerImageCommands(program);
  registerBackupCommands(program);
  registerSimulateCommand(program);
  registerPkiCommands(program);
  registerNatsUserCommands(program);
  registerTokenCommands(program);
  registerRebalanceApply(registerRebalanceCommand(program));
  registerCompletionCommand(program);
  const exitOverride = (cmd: Command): void => {
    cmd.exitOverride();
    cmd.commands.forEach(exitOverride);
  };
  exitOverride(program);
  return program;
}
